import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { CeleriacError } from "../src/errors.js";
import { createEnvelope } from "../src/envelope.js";
import { celeryJsonCodec } from "../src/codec/celery-json.js";
import { decodeTask } from "../src/codec/index.js";
import { fromKombuEnvelope, parseKombuEnvelope, stringifyKombuEnvelope, toKombuEnvelope } from "../src/kombu-envelope.js";

const ROOT = fileURLToPath(new URL("../../../", import.meta.url));
const GOLDEN = join(ROOT, "fixtures/golden");

const goldenTexts = readdirSync(GOLDEN)
  .filter((f) => f.endsWith(".json"))
  .map((f) => (JSON.parse(readFileSync(join(GOLDEN, f), "utf8")) as { envelope_text: string }).envelope_text);

/** Parses and re-frames an envelope text without touching the body. */
function reframe(text: string): string {
  const parsed = parseKombuEnvelope(text);
  const raw = JSON.parse(text) as { properties: { delivery_info: { exchange: string } } };
  return stringifyKombuEnvelope(
    toKombuEnvelope(parsed.message, {
      exchange: raw.properties.delivery_info.exchange,
      routingKey: parsed.routingKey ?? "",
      deliveryTag: parsed.deliveryTag ?? "",
    }),
  );
}

function decodeFailure(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(CeleriacError);
    expect((err as CeleriacError).code).toBe("decode_failed");
    return (err as Error).message;
  }
  throw new Error("expected decode_failed");
}

describe("kombu envelope", () => {
  it("re-frames every golden envelope to identical bytes", () => {
    expect(goldenTexts.length).toBeGreaterThan(0);
    for (const text of goldenTexts) expect(reframe(text)).toBe(text);
  });

  it("writes properties in kombu's order, expiration before delivery_info", () => {
    const wire = celeryJsonCodec.encode(createEnvelope({ task: "t", id: "i", properties: { expiration: "1000", priority: 3, replyTo: "r" } }));
    const env = toKombuEnvelope(wire, { routingKey: "q", deliveryTag: "tag" });
    expect(Object.keys(env)).toEqual(["body", "content-encoding", "content-type", "headers", "properties"]);
    expect(Object.keys(env.properties)).toEqual([
      "correlation_id",
      "reply_to",
      "delivery_mode",
      "expiration",
      "delivery_info",
      "priority",
      "body_encoding",
      "delivery_tag",
    ]);
    expect(stringifyKombuEnvelope(env)).toMatch(
      /^\{"body": "[A-Za-z0-9+/=]+", "content-encoding": "utf-8", "content-type": "application\/json", "headers": \{"lang": "py", /,
    );
  });

  it("writes header values with Python's JSON (big ints, non-ASCII)", () => {
    const wire = celeryJsonCodec.encode(createEnvelope({ task: "tâche", id: "i", headers: { extra: { "x-big": 2n ** 70n, "x-f": 1e16 } } }));
    const text = stringifyKombuEnvelope(toKombuEnvelope(wire, { routingKey: "q", deliveryTag: "t" }));
    expect(text).toContain('"task": "t\\u00e2che"');
    expect(text).toContain('"x-big": 1180591620717411303424, "x-f": 1e+16}');
    expect(parseKombuEnvelope(text).message.headers["x-big"]).toBe(2n ** 70n);
  });

  it("reads a body without body_encoding as UTF-8 text", () => {
    const { message } = fromKombuEnvelope({ body: "[[], {}, {}]", "content-type": "application/json", headers: { task: "t", id: "i" }, properties: {} });
    expect(decodeTask(message).headers.task).toBe("t");
  });

  it.each([
    ["not an object", [1], /not a JSON object/],
    ["no body", { headers: {} }, /no string body/],
    ["a numeric body", { body: 1 }, /no string body/],
    ["base64 with bad characters", { body: "a$b=", properties: { body_encoding: "base64" } }, /base64/],
    ["base64 with bad padding", { body: "abc", properties: { body_encoding: "base64" } }, /base64/],
    ["an unknown body_encoding", { body: "", properties: { body_encoding: "rot13" } }, /body_encoding/],
    ["headers as a list", { body: "", headers: [] }, /headers/],
    ["a numeric content-type", { body: "", "content-type": 5 }, /content-type/],
  ])("refuses %s", (_what, value, pattern) => {
    expect(decodeFailure(() => fromKombuEnvelope(value))).toMatch(pattern);
  });

  it("refuses text that is not JSON", () => {
    expect(decodeFailure(() => parseKombuEnvelope('{"body": '))).toMatch(/invalid JSON/);
    expect(decodeFailure(() => parseKombuEnvelope(42 as never))).toMatch(/not text/);
  });
});
