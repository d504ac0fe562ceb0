/**
 * Worker fuzzing: 10,000 mutated golden messages (captured from real Celery) and random junk go
 * through a running worker. Each must end settled (or held for a valid future ETA), either
 * rejected with a readable reason or run to a stored state; nothing may crash the worker, and it
 * must still run a valid task after.
 */
import { readdirSync, readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { parseKombuEnvelope, type WireMessage } from "@celeriac/core/transport";
import { harness, message } from "./helpers.js";
import { seededRandom } from "../../../test-support/prng.js";

const GOLDEN = fileURLToPath(new URL("../../../fixtures/golden/", import.meta.url));
const bases: WireMessage[] = readdirSync(GOLDEN)
  .filter((f) => f.endsWith(".json"))
  .map((f) => parseKombuEnvelope((JSON.parse(readFileSync(join(GOLDEN, f), "utf8")) as { envelope_text: string }).envelope_text).message);

const rand = seededRandom(20261201);
const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)]!;
const WEIRD: unknown[] = [
  null,
  true,
  -1,
  0,
  1.5,
  2 ** 63,
  "",
  "x",
  "not-a-date",
  "2026-13-45T99:99:99",
  [],
  [1, "a"],
  {},
  { a: 1 },
  [null, null, null],
  -1e308,
  "1970-01-01T00:00:00",
];
const enc = new TextEncoder();

function randomJson(depth = 0): unknown {
  const r = rand();
  if (depth > 3 || r < 0.4) return pick(WEIRD);
  if (r < 0.7) return Array.from({ length: Math.floor(rand() * 4) }, () => randomJson(depth + 1));
  return Object.fromEntries(Array.from({ length: Math.floor(rand() * 4) }, (_, i) => [`k${i}`, randomJson(depth + 1)]));
}

function mutate(base: WireMessage): WireMessage {
  const m: WireMessage = { ...base, body: base.body.slice(), headers: { ...base.headers }, properties: { ...base.properties } };
  switch (Math.floor(rand() * 9)) {
    case 0: // flip bytes in the body
      for (let i = 0, n = 1 + Math.floor(rand() * 4); i < n && m.body.length > 0; i++) m.body[Math.floor(rand() * m.body.length)] = Math.floor(rand() * 256);
      break;
    case 1: // truncate the body
      m.body = m.body.slice(0, Math.floor(rand() * m.body.length));
      break;
    case 2: {
      // a header of the wrong type (eta/expires only get values that are not future times)
      const key = pick([
        "task",
        "id",
        "eta",
        "expires",
        "retries",
        "timelimit",
        "root_id",
        "parent_id",
        "group",
        "group_index",
        "ignore_result",
        "lang",
        "shadow",
        "argsrepr",
      ]);
      m.headers[key] = pick(WEIRD);
      break;
    }
    case 3: // a header removed
      delete m.headers[pick(Object.keys(m.headers))];
      break;
    case 4: // a content type or encoding nobody should trust
      m.contentType = pick(["application/x-python-serialize", "application/x-protobuf", "text/plain", "", "application/x-yaml", "application/json; charset=x"]);
      break;
    case 5: // a random JSON body
      m.body = enc.encode(JSON.stringify(randomJson()));
      break;
    case 6: {
      // a body of the right shape with wrong parts
      m.body = enc.encode(
        JSON.stringify([randomJson(), randomJson(), { callbacks: randomJson(), errbacks: randomJson(), chain: randomJson(), chord: randomJson() }]),
      );
      break;
    }
    case 7: // a compression header over a body that is not compressed
      m.headers["compression"] = pick(["application/x-gzip", "zlib", "application/x-bz2", 7]);
      break;
    default: // a task name no worker knows
      m.headers["task"] = `fuzz.unknown.${Math.floor(rand() * 1000)}`;
  }
  return m;
}

describe("worker fuzz", () => {
  it("settles 10,000 mutated messages with readable reasons and keeps serving", async () => {
    const h = harness();
    const worker = h.worker({ concurrency: 50, silent: true });
    worker.register("golden.add", (_ctx, ...args: unknown[]) => args.length);
    worker.register("golden.echo", (_ctx, ...args: unknown[]) => args.length);
    await worker.start();

    const N = 10_000;
    for (let i = 0; i < N; i++) await h.transport.publish("celery", mutate(pick(bases)));
    const deadline = Date.now() + 60_000;
    // Messages whose (valid) ETA lies in the future, like the golden one for 2030, stay held.
    while (h.transport.size("celery") > 0 || h.transport.inflightCount("celery") > worker.counters.heldEta) {
      expect(
        Date.now(),
        `worker did not settle every message within 60 s: ${h.transport.size("celery")} waiting, ${h.transport.inflightCount("celery")} in flight, ${JSON.stringify(worker.counters)}`,
      ).toBeLessThan(deadline);
      expect(worker.state).toBe("running");
      await new Promise((r) => setTimeout(r, 20));
    }

    // Every rejection says why, in words.
    expect(h.transport.deadLetters.length).toBeGreaterThan(N / 10);
    for (const dl of h.transport.deadLetters) {
      expect(typeof dl.reason).toBe("string");
      expect(dl.reason.length).toBeGreaterThan(5);
      expect(dl.reason, dl.reason).not.toMatch(/undefined|\[object Object\]/);
    }
    // Every stored failure carries Celery's exception triple with a message.
    const failures = h.history.filter((m) => m.status === "FAILURE");
    expect(failures.length).toBeGreaterThan(0);
    for (const f of failures) {
      const exc = f.result as { exc_type?: unknown; exc_message?: unknown };
      expect(typeof exc.exc_type).toBe("string");
      expect(Array.isArray(exc.exc_message)).toBe(true);
    }
    // Pickle was refused, never run.
    expect(h.transport.deadLetters.some((d) => /pickle/.test(d.reason))).toBe(true);
    expect(h.history.some((m) => m.status === "SUCCESS")).toBe(true);
    const c = worker.counters;
    expect(c.rejected + c.processed + c.revoked + c.heldEta).toBeGreaterThanOrEqual(N);

    // And the worker still runs a valid task.
    const valid = message("golden.add", { args: [2, 3] });
    await h.transport.publish("celery", valid.message);
    const meta = await h.backend.waitFor(valid.id, { timeoutMs: 5000 });
    expect(meta).toMatchObject({ status: "SUCCESS", result: 2 });
    expect(worker.state).toBe("running");
    await h.cleanup();
  }, 120_000);
});
