/**
 * Decoder fuzzing: mutated golden messages and random junk must either decode or fail with
 * CeleriacError("decode_failed") and a message. Nothing else may escape (no TypeError, no
 * RangeError from deep recursion, no crash). Deterministic: a seeded PRNG drives every choice.
 */
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { deflateSync } from "node:zlib";
import { describe, expect, it } from "vitest";
import { CeleriacError } from "../src/errors.js";
import { createCeleryJsonCodec } from "../src/codec/celery-json.js";
import { decodeTask } from "../src/codec/index.js";
import { pyStringify } from "../src/codec/py-json.js";
import { fromKombuEnvelope, parseKombuEnvelope } from "../src/kombu-envelope.js";
import { seededRandom } from "../../../test-support/prng.js";

const ROOT = fileURLToPath(new URL("../../../", import.meta.url));
const GOLDEN = join(ROOT, "fixtures/golden");
const texts = readdirSync(GOLDEN)
  .filter((f) => f.endsWith(".json"))
  .sort()
  .map((f) => (JSON.parse(readFileSync(join(GOLDEN, f), "utf8")) as { envelope_text: string }).envelope_text);

const kombu53 = createCeleryJsonCodec({ dialect: "kombu53" });

const rnd = seededRandom(0xce1e12ac);
const int = (n: number): number => Math.floor(rnd() * n);
function pick<T>(xs: readonly T[]): T {
  return xs[int(xs.length)] as T;
}

const SCALARS: unknown[] = [
  null,
  true,
  false,
  0,
  -1,
  1,
  1.5,
  -0,
  NaN,
  Infinity,
  -Infinity,
  2 ** 53,
  2n ** 70n,
  -(2n ** 63n),
  "",
  "x",
  "é😀",
  "\ud800",
  "2024-01-01T00:00:00Z",
  "not a date",
  "application/json",
  "py",
  [],
  {},
  [null],
  { a: 1 },
];

function randomValue(depth = 0): unknown {
  const r = rnd();
  if (depth > 4 || r < 0.55) return pick(SCALARS);
  if (r < 0.7) return Array.from({ length: int(4) }, () => randomValue(depth + 1));
  if (r < 0.8) return { __type__: pick(["datetime", "date", "time", "decimal", "uuid", "bytes", "base64", "nope", 5]), __value__: randomValue(depth + 1) };
  if (r < 0.9) {
    return {
      task: pick(["t", "", 1, null]),
      args: randomValue(depth + 1),
      kwargs: randomValue(depth + 1),
      options: randomValue(depth + 1),
      subtask_type: randomValue(depth + 1),
      immutable: randomValue(depth + 1),
      chord_size: randomValue(depth + 1),
    };
  }
  const o: Record<string, unknown> = {};
  for (let i = int(4); i > 0; i--) o[pick(["a", "task", "id", "args", "__proto__", "callbacks", "chain"])] = randomValue(depth + 1);
  return o;
}

function deep(depth: number, leaf: unknown = 1): unknown {
  let v = leaf;
  for (let i = 0; i < depth; i++) v = rnd() < 0.5 ? [v] : { k: v };
  return v;
}

function deepText(depth: number): string {
  return "[".repeat(depth) + "1" + "]".repeat(depth);
}

const b64 = (s: string | Uint8Array): string => Buffer.from(s).toString("base64");
const unb64 = (s: string): Buffer => Buffer.from(s, "base64");

type Raw = Record<string, unknown> & { headers: Record<string, unknown>; properties: Record<string, unknown>; body: string };

function baseEnvelope(): Raw {
  return JSON.parse(pick(texts)) as Raw;
}

function bodyOf(env: Raw): unknown {
  const raw = unb64(env.body);
  const text = env.headers["compression"] ? "[[], {}, {}]" : raw.toString("utf8");
  try {
    return JSON.parse(text.replace(/\bNaN\b|-?Infinity\b/g, "0"));
  } catch {
    return [[], {}, {}];
  }
}

/** One fuzz input: either envelope text or an already-parsed envelope value. */
type Input = { text: string } | { value: unknown };

const MUTATORS: Record<string, () => Input> = {
  textFlip: () => {
    const t = pick(texts);
    const chars = t.split("");
    for (let n = 1 + int(4); n > 0; n--) chars[int(chars.length)] = String.fromCharCode(int(rnd() < 0.8 ? 128 : 0x10000));
    return { text: chars.join("") };
  },
  textTruncate: () => {
    const t = pick(texts);
    return { text: t.slice(0, int(t.length)) };
  },
  bodyByteFlip: () => {
    const env = baseEnvelope();
    const bytes = unb64(env.body);
    for (let n = 1 + int(3); n > 0; n--) if (bytes.length) bytes[int(bytes.length)] = int(256);
    env.body = b64(bytes);
    return { value: env };
  },
  bodyTruncate: () => {
    const env = baseEnvelope();
    const bytes = unb64(env.body);
    env.body = b64(bytes.subarray(0, int(bytes.length)));
    return { value: env };
  },
  headerTypeSwap: () => {
    const env = baseEnvelope();
    const keys = Object.keys(env.headers);
    for (let n = 1 + int(2); n > 0; n--) {
      const key = rnd() < 0.9 && keys.length ? pick(keys) : pick(["stamps", "replaced_task_nesting", "compression", "x-new"]);
      if (rnd() < 0.15) delete env.headers[key];
      else env.headers[key] = randomValue();
    }
    return { text: pyStringify(env) };
  },
  bodyTypeSwap: () => {
    const env = baseEnvelope();
    delete env.headers["compression"];
    const body = bodyOf(env);
    let target: unknown = body;
    // Walk a random path into the body and replace what is there.
    for (let d = int(4); d > 0; d--) {
      if (Array.isArray(target) && target.length) {
        const i = int(target.length);
        if (d === 1 || typeof target[i] !== "object" || target[i] === null) {
          target[i] = randomValue();
          break;
        }
        target = target[i];
      } else if (target && typeof target === "object") {
        const keys = Object.keys(target);
        if (!keys.length) break;
        const k = pick(keys);
        const rec = target as Record<string, unknown>;
        if (d === 1 || typeof rec[k] !== "object" || rec[k] === null) {
          rec[k] = randomValue();
          break;
        }
        target = rec[k];
      }
    }
    env.body = b64(pyStringify(rnd() < 0.1 ? randomValue() : body));
    return { value: env };
  },
  randomJsonEnvelope: () => ({ text: pyStringify(randomValue()) }),
  randomBody: () => {
    const env = baseEnvelope();
    delete env.headers["compression"];
    env.body = b64(pyStringify(rnd() < 0.5 ? [randomValue(), randomValue(), randomValue()] : randomValue()));
    if (rnd() < 0.3) env.headers = {};
    return { value: env };
  },
  garbageContentType: () => {
    const env = baseEnvelope();
    env["content-type"] = pick(["application/x-python-serialize", "application/x-yaml", "", "APPLICATION/JSON", "text/plain", 5, null]);
    env["content-encoding"] = pick(["utf-8", "binary", "latin-1", "", 7, null, "UTF8"]);
    return { value: env };
  },
  badBase64: () => {
    const env = baseEnvelope();
    const junk = ["@@@@", "abc", "a===", "====", "\u00e9\u00e9", env.body.slice(1), `${env.body}=`, " ", "QQ"];
    env.body = pick(junk);
    if (rnd() < 0.2) env.properties["body_encoding"] = pick(["base64", "hex", null, 1]);
    return { value: env };
  },
  deepNesting: () => {
    const env = baseEnvelope();
    delete env.headers["compression"];
    const depth = pick([10, 200, 999, 1001, 3000, 20000]);
    if (rnd() < 0.5) {
      env.body = b64(`[[${deepText(depth)}], {}, {}]`);
      return { value: env };
    }
    if (rnd() < 0.5 && depth < 990) {
      env.headers["x-deep"] = deep(depth);
      return { text: pyStringify(env) };
    }
    const text = pyStringify(env);
    return { text: `${text.slice(0, -1)}, "x-deep": ${deepText(depth)}}` };
  },
  compression: () => {
    const env = baseEnvelope();
    const plain = env.headers["compression"] ? Buffer.from("[[], {}, {}]") : unb64(env.body);
    env.headers["compression"] = pick(["application/x-gzip", "zlib", "application/x-bz2", 3, ""]);
    const r = rnd();
    const z = deflateSync(plain);
    if (r < 0.3) env.body = b64(z);
    else if (r < 0.6) env.body = b64(z.subarray(0, int(z.length)));
    else if (r < 0.8) env.body = b64(deflateSync(Buffer.from(pyStringify(randomValue()))));
    else env.body = b64(plain);
    return { value: env };
  },
  envelopeTypeSwap: () => {
    const env = baseEnvelope() as Record<string, unknown>;
    const key = pick(["body", "headers", "properties", "content-type", "content-encoding"]);
    env[key] = randomValue();
    if (rnd() < 0.5 && typeof env["properties"] === "object" && env["properties"] !== null) {
      const props = env["properties"] as Record<string, unknown>;
      props[pick(["correlation_id", "reply_to", "delivery_mode", "priority", "expiration", "delivery_info", "delivery_tag"])] = randomValue();
    }
    return { value: env };
  },
};

describe("decoder fuzzing", () => {
  it("every mutated or random message decodes or fails with decode_failed", () => {
    const names = Object.keys(MUTATORS);
    const perMutator = Math.ceil(13_000 / names.length);
    const stats: Record<string, { ok: number; failed: number }> = {};
    const escaped: string[] = [];
    let total = 0;
    for (const name of names) {
      const s = (stats[name] = { ok: 0, failed: 0 });
      for (let i = 0; i < perMutator; i++) {
        const input = MUTATORS[name]!();
        total++;
        try {
          const framed = "text" in input ? parseKombuEnvelope(input.text) : fromKombuEnvelope(input.value);
          const envelope = decodeTask(framed.message);
          // Whatever decodes must also encode again (kombu53 can write every decoded value).
          kombu53.encode(envelope);
          s.ok++;
        } catch (err) {
          if (err instanceof CeleriacError && err.code === "decode_failed" && err.message.length > 0) {
            s.failed++;
          } else if (escaped.length < 5) {
            const what = err instanceof Error ? `${err.name} ${(err as { code?: string }).code ?? ""} ${err.message}` : String(err);
            escaped.push(`${name}: ${what}\n${"text" in input ? input.text.slice(0, 300) : pyStringify(input.value).slice(0, 300)}`);
          }
        }
      }
    }
    if (process.env["FUZZ_STATS"]) console.log(stats);
    expect(escaped).toEqual([]);
    expect(total).toBeGreaterThanOrEqual(10_000);
    // Each strategy must exercise the failure path; most also produce decodable messages.
    for (const name of names) expect(stats[name]!.failed, name).toBeGreaterThan(0);
    const decoded = Object.values(stats).reduce((n, s) => n + s.ok, 0);
    expect(decoded).toBeGreaterThan(1000);
  });
});
