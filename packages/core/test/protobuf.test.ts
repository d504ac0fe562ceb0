import { execFileSync } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { celeryJsonCodec } from "../src/codec/celery-json.js";
import { decodeTask, defaultCodecs } from "../src/codec/index.js";
import {
  decodeResultMeta,
  encodeResultMeta,
  fromProtoEnvelope,
  toProtoEnvelope,
  writeEnvelope,
  MAX_VALUE_NESTING,
  PROTOBUF_CONTENT_TYPE,
  protobufCodec,
} from "../src/codec/protobuf.js";
import { createEnvelope, type ResultMeta, type Signature, type TaskEnvelope } from "../src/envelope.js";
import { CeleriacError } from "../src/errors.js";
import { stringifyKombuEnvelope, toKombuEnvelope } from "../src/kombu-envelope.js";
import { messages } from "../src/gen/celeriac/v1/envelope.js";
import type { WireMessage } from "../src/wire.js";

const repo = fileURLToPath(new URL("../../../", import.meta.url));

function roundTrip(e: TaskEnvelope): TaskEnvelope {
  const wire = protobufCodec.encode(e);
  // Through a fresh buffer, as a transport would hand it over.
  return protobufCodec.decode({ ...wire, body: new Uint8Array(Array.from(wire.body)) });
}

function expectDecodeFailed(fn: () => unknown): CeleriacError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(CeleriacError);
    expect((err as CeleriacError).code).toBe("decode_failed");
    return err as CeleriacError;
  }
  throw new Error("expected decode_failed, nothing was thrown");
}

/** The envelope decoded with the generated decoder only (the reference for the codec's fast path). */
function viaGeneratedDecoder(body: Uint8Array): TaskEnvelope | CeleriacError {
  try {
    return fromProtoEnvelope(messages.TaskEnvelope.decode(body));
  } catch (err) {
    return err instanceof CeleriacError ? err : new CeleriacError("decode_failed", String(err));
  }
}

function protoMessage(body: Uint8Array): WireMessage {
  return { body, contentType: PROTOBUF_CONTENT_TYPE, contentEncoding: "binary", headers: {}, properties: {} };
}

/** A task message as Celery's `add.apply_async((2, 3), countdown=10)` would send it. */
function typicalEnvelope(): TaskEnvelope {
  const id = "9b5cbb2c-6c6b-4d7a-9f22-3f1d0b6c1a10";
  return createEnvelope({
    task: "proj.tasks.add",
    id,
    args: [2, 3],
    kwargs: { debug: false },
    headers: {
      eta: "2026-12-01T04:00:10.123456+00:00",
      argsrepr: "(2, 3)",
      kwargsrepr: "{'debug': False}",
      origin: "gen12345@worker-host",
      timelimit: [null, null],
    },
    properties: { replyTo: "5a1c3b5e-8a55-3d2b-9a4f-8f1c7d0e2b11", priority: 5 },
  });
}

const sig = (task: string, extra: Partial<Signature> = {}): Signature => ({
  task,
  args: [],
  kwargs: {},
  options: {},
  subtaskType: null,
  immutable: false,
  ...extra,
});

/** Every header and property off its default, every embed member used. */
function fullEnvelope(): TaskEnvelope {
  const proto: Record<string, unknown> = {};
  Object.defineProperty(proto, "__proto__", { value: "own key", enumerable: true, writable: true, configurable: true });
  return createEnvelope({
    task: "proj.tasks.everything",
    id: "id-1",
    args: [
      0,
      -1,
      2 ** 40,
      Number.MAX_SAFE_INTEGER,
      -Number.MAX_SAFE_INTEGER,
      2 ** 60, // an integral double beyond 2^53 stays a double
      1.5,
      -0,
      Number.NaN,
      Number.POSITIVE_INFINITY,
      Number.NEGATIVE_INFINITY,
      0n,
      5n,
      -(2n ** 63n),
      2n ** 200n,
      -(3n ** 99n),
      "",
      "héllo wörld ✓ 𝄞",
      true,
      false,
      null,
      new Uint8Array([0, 1, 2, 255]),
      new Uint8Array(0),
      new Date("2026-12-01T04:00:10.123Z"),
      new Date(-1), // before the epoch: seconds -1, nanos 999,000,000
      [],
      [[1, [2, [3, "x"]]], {}],
      { nested: { deeper: { list: [1n, null, "s"] } }, "": "empty key", "with space": 1 },
    ],
    kwargs: { when: "2026-12-01T04:00:10.123456+00:00", none: null, obj: proto, bytes: new Uint8Array([7]) },
    headers: {
      lang: "ts",
      shadow: "shadow-name",
      eta: "2026-12-01T04:00:10.123456+00:00",
      expires: "", // present but empty is not None
      group: "g-1",
      groupIndex: 0, // 0 is not None
      retries: 3,
      timelimit: [30, 25.5],
      rootId: "root-1",
      parentId: "parent-1",
      argsrepr: "(...)",
      kwargsrepr: "{...}",
      origin: "gen1@host",
      ignoreResult: true,
      replacedTaskNesting: 2,
      stamps: { stamp: ["a", "b"], n: 1 },
      extra: { stamped_headers: ["stamp"], custom: { big: 12345678901234567890n } },
    },
    properties: {
      correlationId: "corr-1",
      replyTo: "reply-q",
      contentType: "application/json",
      contentEncoding: "utf-8",
      deliveryMode: 1,
      priority: 0,
      expiration: "60000",
    },
    embed: {
      callbacks: [sig("cb", { args: [1], options: { queue: "q1", countdown: 2.5 }, immutable: true })],
      errbacks: [], // [] is not None
      chain: [sig("step3"), sig("step2", { kwargs: { k: "v" }, subtaskType: "chain" })],
      chord: sig("body", { chordSize: 3, subtaskType: "chord" }),
    },
  });
}

describe("protobuf codec: round trips", () => {
  it("round-trips a typical Celery task message exactly", () => {
    const e = typicalEnvelope();
    expect(roundTrip(e)).toStrictEqual(e);
  });

  it("round-trips every field, with bigint, bytes, dates, NaN, -0 and None vs missing", () => {
    const e = fullEnvelope();
    const back = roundTrip(e);
    expect(back).toStrictEqual(e);
    // Type fidelity that toStrictEqual alone would not spell out.
    const args = back.args;
    expect(typeof args[2]).toBe("number");
    expect(Object.is(args[7], -0)).toBe(true);
    expect(Number.isNaN(args[8])).toBe(true);
    expect(args[12]).toBe(5n);
    expect(args[14]).toBe(2n ** 200n);
    expect(args[21]).toBeInstanceOf(Uint8Array);
    expect(Buffer.isBuffer(args[21])).toBe(false);
    expect((args[23] as Date).toISOString()).toBe("2026-12-01T04:00:10.123Z");
    expect((args[24] as Date).getTime()).toBe(-1);
    expect(back.headers.expires).toBe("");
    expect(back.headers.groupIndex).toBe(0);
    expect(back.embed.errbacks).toEqual([]);
    expect(back.embed.chord?.chordSize).toBe(3);
    expect(Object.keys(back.kwargs["obj"] as object)).toEqual(["__proto__"]);
    expect(Object.getPrototypeOf(back.kwargs["obj"])).toBe(Object.prototype);
  });

  it("keeps None and missing apart where Celery does", () => {
    const e = createEnvelope({
      task: "t",
      id: "i",
      embed: {
        callbacks: null,
        errbacks: [],
        chain: [sig("a", { chordSize: null }), sig("b")],
        chord: null,
      },
    });
    const back = roundTrip(e);
    expect(back).toStrictEqual(e);
    expect(back.embed.chain?.[0]).toHaveProperty("chordSize", null);
    expect(back.embed.chain?.[1]).not.toHaveProperty("chordSize");
    expect(back.headers.eta).toBeNull();
    expect(back.properties.priority).toBeNull();
    expect(back.properties.expiration).toBeNull();
  });

  it("reads args and kwargs exactly as the generated decoder does", () => {
    // Concatenated encodings of one message are one message with the fields merged: a kwargs
    // entry whose value repeats (lists concatenate, dicts merge) and a value whose kind repeats.
    const entry = (...parts: Parameters<typeof messages.Entry.encode>[0][]): number[] => {
      const bytes = parts.flatMap((p) => [...messages.Entry.encode(p)]);
      return [0x22, bytes.length, ...bytes]; // TaskEnvelope.kwargs (field 4), length < 128
    };
    const merged = new Uint8Array([
      ...messages.TaskEnvelope.encode({ headers: { task: "t", id: "i" } }),
      ...entry({ key: "list", value: { listValue: { values: [{ intValue: 1 }] } } }, { value: { listValue: { values: [{ intValue: 2 }] } } }),
      ...entry(
        { key: "map", value: { mapValue: { entries: [{ key: "a", value: { intValue: 1 } }] } } },
        { value: { mapValue: { entries: [{ key: "b", value: { intValue: 2 } }] } } },
      ),
      ...entry({ key: "replaced", value: { stringValue: "x" } }, { value: { intValue: 3 } }),
      ...entry({ key: "ts", value: { timestampValue: { seconds: 1 } } }, { value: { timestampValue: { nanos: 5_000_000 } } }),
    ]);
    expect(protobufCodec.decode(protoMessage(merged)).kwargs).toStrictEqual({
      list: [1, 2],
      map: { a: 1, b: 2 },
      replaced: 3,
      ts: new Date(1005),
    });
    for (const body of [protobufCodec.encode(typicalEnvelope()).body, protobufCodec.encode(fullEnvelope()).body, merged]) {
      expect(protobufCodec.decode(protoMessage(body))).toStrictEqual(viaGeneratedDecoder(body));
    }
  });

  it("writes exactly the bytes the generated encoder writes", () => {
    const long = "x".repeat(200);
    const wide = "é✓𝄞".repeat(3000);
    class WithToJSON {
      toJSON(): unknown {
        return { as: "json", drop: undefined };
      }
    }
    let deep: unknown = "leaf";
    for (let i = 0; i < MAX_VALUE_NESTING; i++) deep = i % 2 ? [deep] : { k: deep };
    const corpus: TaskEnvelope[] = [
      typicalEnvelope(),
      fullEnvelope(),
      createEnvelope({
        task: "",
        id: "",
        headers: { lang: "", retries: -1, groupIndex: -2147483648 },
        properties: { deliveryMode: 0, priority: -5, correlationId: "", replyTo: "", contentType: "", contentEncoding: "" },
      }),
      createEnvelope({
        task: long,
        id: wide,
        args: [
          long,
          wide,
          "",
          2 ** 30,
          -(2 ** 30),
          2 ** 30 - 1,
          -(2 ** 30) - 1,
          2 ** 31,
          -(2 ** 31),
          2 ** 32,
          -(2 ** 32) - 1,
          Number.MAX_SAFE_INTEGER,
          -Number.MAX_SAFE_INTEGER,
          1e300,
          -1e-300,
        ],
        kwargs: { [long]: [undefined, () => 1, Symbol("s")], "": { "": null }, drop: undefined, json: new WithToJSON(), deep },
        headers: { extra: { big: new Uint8Array(70_000), when: new Date(-8.64e15), later: new Date(8.64e15) } },
        embed: { chain: [sig(long, { chordSize: -1, kwargs: { wide } })], chord: sig("", { chordSize: null }) },
      }),
    ];
    for (const e of corpus) {
      const fast = writeEnvelope(e);
      expect(Buffer.from(fast).equals(Buffer.from(messages.TaskEnvelope.encode(toProtoEnvelope(e))))).toBe(true);
      const reference = viaGeneratedDecoder(fast);
      if (reference instanceof CeleriacError) expectDecodeFailed(() => protobufCodec.decode(protoMessage(fast)));
      else expect(protobufCodec.decode(protoMessage(fast))).toStrictEqual(reference);
    }
  });

  it("writes random envelopes byte for byte like the generated encoder, and reads them back", () => {
    let seed = 0xc0ffee;
    const rand = (): number => {
      seed = (seed + 0x6d2b79f5) | 0;
      let t = seed;
      t = Math.imul(t ^ (t >>> 15), t | 1);
      t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
      return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
    };
    const int = (n: number): number => Math.floor(rand() * n);
    const str = (): string => {
      const alphabet = ["a", "Z", "0", " ", "é", "✓", "𝄞", "\u0000", '"'];
      let s = "";
      for (let i = int(int(2) ? 12 : 300); i > 0; i--) s += alphabet[int(alphabet.length)];
      return s;
    };
    const value = (depth: number): unknown => {
      switch (int(depth > 4 ? 9 : 11)) {
        case 0:
          return null;
        case 1:
          return rand() < 0.5;
        case 2:
          return int(2 ** 20) - 2 ** 19;
        case 3:
          return (rand() - 0.5) * 2 ** int(70);
        case 4:
          return BigInt(int(2 ** 30)) ** BigInt(1 + int(4)) * (rand() < 0.5 ? -1n : 1n);
        case 5:
          return str();
        case 6:
          return new Uint8Array(int(300)).map(() => int(256));
        case 7:
          return new Date(int(2 ** 42) - 2 ** 41);
        case 8:
          return Math.round((rand() - 0.5) * 2 ** 60);
        case 9:
          return Array.from({ length: int(5) }, () => value(depth + 1));
        default:
          return Object.fromEntries(Array.from({ length: int(5) }, () => [str(), value(depth + 1)]));
      }
    };
    const maybe = <T>(v: () => T): T | null => (rand() < 0.5 ? null : v());
    for (let i = 0; i < 300; i++) {
      const e = createEnvelope({
        task: "t" + str(),
        id: "i" + str(),
        args: Array.from({ length: int(4) }, () => value(0)),
        kwargs: Object.fromEntries(Array.from({ length: int(4) }, () => [str(), value(0)])),
        headers: {
          shadow: maybe(str),
          eta: maybe(str),
          groupIndex: maybe(() => int(1000)),
          retries: int(3),
          timelimit: [maybe(() => rand() * 100), maybe(() => int(100))],
          ignoreResult: rand() < 0.5,
          stamps: rand() < 0.2 ? { s: value(3) } : {},
          extra: rand() < 0.3 ? { x: value(2) } : {},
        },
        properties: { priority: maybe(() => int(10)), expiration: maybe(() => String(int(1e6))) },
        embed: {
          callbacks: maybe(() => [sig(str(), { args: [value(3)], options: { queue: str() } })]),
          chain: maybe(() => [sig(str()), sig(str(), { immutable: true, chordSize: maybe(() => int(9)) })]),
          chord: maybe(() => sig(str(), { chordSize: int(9) })),
        },
      });
      const fast = writeEnvelope(e);
      const reference = messages.TaskEnvelope.encode(toProtoEnvelope(e));
      expect(Buffer.from(fast).equals(Buffer.from(reference)), `envelope ${i}`).toBe(true);
      expect(roundTrip(e), `envelope ${i}`).toStrictEqual(e);
    }
  });

  it("keeps dict key order", () => {
    const e = createEnvelope({ task: "t", id: "i", kwargs: { z: 1, a: 2, m: { y: 1, b: 2 } } });
    const back = roundTrip(e);
    expect(Object.keys(back.kwargs)).toEqual(["z", "a", "m"]);
    expect(Object.keys(back.kwargs["m"] as object)).toEqual(["y", "b"]);
  });

  it("drops undefined like JSON: null in lists, key left out in dicts", () => {
    const e = createEnvelope({ task: "t", id: "i", args: [undefined, 1], kwargs: { gone: undefined, kept: 1 } });
    const back = roundTrip(e);
    expect(back.args).toEqual([null, 1]);
    expect(back.kwargs).toStrictEqual({ kept: 1 });
  });

  it("reads int64 values from other producers: safe ones as numbers, others as bigint", () => {
    const body = messages.TaskEnvelope.encode({
      headers: { task: "t", id: "i" },
      args: [{ intValue: "9007199254740993" }, { intValue: "-42" }, { intValue: "9223372036854775807" }],
    });
    const back = protobufCodec.decode(protoMessage(body));
    expect(back.args).toEqual([9007199254740993n, -42, 9223372036854775807n]);
  });

  it("writes only the routing headers into the wire message, and the protobuf content type", () => {
    const e = fullEnvelope();
    const wire = protobufCodec.encode(e);
    expect(wire.contentType).toBe("application/x-protobuf");
    expect(wire.contentEncoding).toBe("binary");
    // Everything else is in the body only, so nothing travels twice.
    expect(wire.headers).toStrictEqual({ lang: "ts", task: "proj.tasks.everything", id: "id-1" });
    expect(wire.properties).toEqual({ correlationId: "corr-1", replyTo: "reply-q", deliveryMode: 1, priority: 0, expiration: "60000" });
    // The body is authoritative: headers a broker rewrote do not change the decoded task.
    const back = protobufCodec.decode({ ...wire, headers: { task: "other", id: "other" } });
    expect(back).toStrictEqual(e);
  });

  it("is registered in defaultCodecs, so decodeTask reads it", () => {
    expect(defaultCodecs.get("application/x-protobuf")).toBe(protobufCodec);
    const e = typicalEnvelope();
    expect(decodeTask(protobufCodec.encode(e))).toStrictEqual(e);
  });

  it("is exported from the package entry points: the codec for users, result-meta framing for backend authors", async () => {
    const core = await import("@celeriac/core");
    const forAuthors = await import("@celeriac/core/transport");
    expect(core.protobufCodec).toBe(protobufCodec);
    expect(typeof forAuthors.encodeResultMeta).toBe("function");
    expect(typeof forAuthors.decodeResultMeta).toBe("function");
  });

  it("refuses to encode what it cannot represent, with invalid_argument", () => {
    const cyclic: Record<string, unknown> = {};
    cyclic["self"] = cyclic;
    let deep: unknown = 1;
    for (let i = 0; i <= MAX_VALUE_NESTING; i++) deep = [deep];
    let ok: unknown = 1;
    for (let i = 0; i < MAX_VALUE_NESTING; i++) ok = { k: ok };
    const cases: TaskEnvelope[] = [
      createEnvelope({ task: "t", id: "i", kwargs: cyclic }),
      createEnvelope({ task: "t", id: "i", args: [new Date(Number.NaN)] }),
      createEnvelope({ task: "t", id: "i", args: [new Map()] }),
      createEnvelope({ task: "t", id: "i", args: [deep] }),
      createEnvelope({ task: "t", id: "i", headers: { retries: 1.5 } }),
    ];
    for (const e of cases) {
      expect(() => protobufCodec.encode(e)).toThrow(CeleriacError);
      try {
        protobufCodec.encode(e);
      } catch (err) {
        expect((err as CeleriacError).code).toBe("invalid_argument");
      }
    }
    // The deepest value allowed, inside a chord body's kwargs, still decodes everywhere.
    const e = createEnvelope({ task: "t", id: "i", embed: { chord: sig("body", { kwargs: { ok } }) } });
    expect(roundTrip(e)).toStrictEqual(e);
  });

  /**
   * The protobuf body carries the whole envelope; a Celery JSON message carries the same
   * information in its body plus its headers and properties, so those are counted too.
   */
  const jsonMessageBytes = (e: TaskEnvelope): number => {
    const wire = celeryJsonCodec.encode(e);
    return wire.body.byteLength + Buffer.byteLength(JSON.stringify(wire.headers)) + Buffer.byteLength(JSON.stringify(wire.properties));
  };

  it("encodes a typical message smaller than celery-json", () => {
    const e = typicalEnvelope();
    const pb = protobufCodec.encode(e).body.byteLength;
    const json = jsonMessageBytes(e);
    expect(pb).toBeLessThan(json);
    // At least a third smaller: field tags instead of repeated key names and no JSON nulls.
    expect(pb).toBeLessThan((json * 2) / 3);
    // A chain with options, where JSON repeats every key per signature.
    const chained = createEnvelope({
      task: "proj.tasks.add",
      id: "9b5cbb2c-6c6b-4d7a-9f22-3f1d0b6c1a10",
      args: [2, 3],
      embed: { chain: [sig("proj.tasks.mul", { args: [4], options: { queue: "math" } }), sig("proj.tasks.add", { args: [1] })] },
    });
    expect(protobufCodec.encode(chained).body.byteLength).toBeLessThan(jsonMessageBytes(chained));
  });

  it("is smaller than celery-json once framed for a broker (kombu's envelope)", () => {
    const framed = (wire: ReturnType<typeof protobufCodec.encode>) =>
      stringifyKombuEnvelope(toKombuEnvelope(wire, { routingKey: "celery", deliveryTag: "9b5cbb2c-6c6b-4d7a-9f22-3f1d0b6c1a10" })).length;
    const e = typicalEnvelope();
    expect(framed(protobufCodec.encode(e))).toBeLessThan(framed(celeryJsonCodec.encode(e)));
  });
});

describe("protobuf codec: malformed input", () => {
  it("names the problem for missing headers, task or id", () => {
    expect(expectDecodeFailed(() => protobufCodec.decode(protoMessage(new Uint8Array(0)))).message).toMatch(/no headers/);
    const noTask = messages.TaskEnvelope.encode({ headers: { id: "i" } });
    expect(expectDecodeFailed(() => protobufCodec.decode(protoMessage(noTask))).message).toMatch(/headers\.task/);
    const noId = messages.TaskEnvelope.encode({ headers: { task: "t" } });
    expect(expectDecodeFailed(() => protobufCodec.decode(protoMessage(noId))).message).toMatch(/headers\.id/);
  });

  it("rejects bad values: non-decimal big ints, out-of-range timestamps, empty values", () => {
    const bad = [
      { bigIntValue: "12a" },
      { bigIntValue: "" },
      { timestampValue: { seconds: 0, nanos: 1_000_000_000 } },
      { timestampValue: { seconds: "9223372036854775807", nanos: 0 } },
      {},
    ];
    for (const value of bad) {
      const body = messages.TaskEnvelope.encode({ headers: { task: "t", id: "i" }, args: [value] });
      expectDecodeFailed(() => protobufCodec.decode(protoMessage(body)));
    }
  });

  it("rejects truncated bodies, JSON bodies and non-bytes", () => {
    const body = protobufCodec.encode(fullEnvelope()).body;
    // Protobuf has no end marker: a cut between two fields is a shorter valid message. A cut
    // inside the first field (headers: tag 0x0a, a one- or two-byte length, then the message)
    // never is.
    expect(body[0]).toBe(0x0a);
    const headersEnd = body[1]! < 128 ? 2 + body[1]! : 3 + ((body[1]! & 127) | (body[2]! << 7));
    for (let cut = 1; cut < headersEnd; cut++) {
      expectDecodeFailed(() => protobufCodec.decode(protoMessage(body.subarray(0, cut))));
    }
    expectDecodeFailed(() => protobufCodec.decode(celeryJsonCodec.encode(typicalEnvelope())));
    expectDecodeFailed(() => protobufCodec.decode(protoMessage("not bytes" as unknown as Uint8Array)));
  });

  it("rejects nesting deeper than protobuf's recursion limit without overflowing the stack", () => {
    // Value{list_value: ListValue{values: [ ... Value{null_value} ]}}, 5,000 lists deep, by hand:
    // the encoder itself refuses to write it.
    const depth = 5000;
    const varint = (n: number): number[] => {
      const out: number[] = [];
      while (n > 127) {
        out.push((n & 127) | 128);
        n >>>= 7;
      }
      out.push(n);
      return out;
    };
    const sizes: number[] = [2]; // the innermost Value{null_value: 0}
    for (let i = 0; i < depth; i++) {
      const inner = sizes[sizes.length - 1]!;
      const list = 1 + varint(inner).length + inner; // ListValue.values (field 1)
      sizes.push(list, 1 + varint(list).length + list); // Value.list_value (field 9)
    }
    const bytes: number[] = [];
    const header = messages.TaskEnvelope.encode({ headers: { task: "t", id: "i" } });
    bytes.push(...header);
    bytes.push(0x1a, ...varint(sizes[sizes.length - 1]!)); // TaskEnvelope.args (field 3)
    for (let i = sizes.length - 1; i > 0; i--) bytes.push(i % 2 === 0 ? 0x4a : 0x0a, ...varint(sizes[i - 1]!));
    bytes.push(0x08, 0x00);
    expectDecodeFailed(() => protobufCodec.decode(protoMessage(new Uint8Array(bytes))));
  });

  it("fuzz: 2,000 random and mutated buffers each decode or throw decode_failed", () => {
    // A small deterministic PRNG (mulberry32) so a failure reproduces.
    let seed = 0x5eed;
    const rand = (): number => {
      seed = (seed + 0x6d2b79f5) | 0;
      let t = seed;
      t = Math.imul(t ^ (t >>> 15), t | 1);
      t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
      return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
    };
    const int = (n: number): number => Math.floor(rand() * n);
    const seeds = [protobufCodec.encode(fullEnvelope()).body, protobufCodec.encode(typicalEnvelope()).body];
    let decoded = 0;
    let failed = 0;
    for (let i = 0; i < 2000; i++) {
      let buf: Uint8Array;
      if (i % 4 === 0) {
        buf = new Uint8Array(int(200));
        for (let j = 0; j < buf.length; j++) buf[j] = int(256);
      } else {
        const src = seeds[i % 2]!;
        buf = new Uint8Array(src);
        const mutations = 1 + int(8);
        for (let m = 0; m < mutations; m++) {
          const kind = int(4);
          const at = int(buf.length);
          if (kind === 0) buf[at] = int(256);
          else if (kind === 1) buf[at] = buf[at]! ^ (1 << int(8));
          else if (kind === 2) buf = buf.subarray(0, at);
          else {
            const grown = new Uint8Array(buf.length + 1);
            grown.set(buf.subarray(0, at));
            grown[at] = int(256);
            grown.set(buf.subarray(at), at + 1);
            buf = grown;
          }
          if (buf.length === 0) break;
        }
      }
      let fast: TaskEnvelope | CeleriacError;
      try {
        fast = protobufCodec.decode(protoMessage(buf));
        decoded++;
      } catch (err) {
        if (!(err instanceof CeleriacError) || err.code !== "decode_failed") {
          throw new Error(`buffer ${i} (${Buffer.from(buf).toString("hex")}) threw ${String(err)}`);
        }
        expect(err.message.length).toBeGreaterThan(0);
        fast = err;
        failed++;
      }
      // The codec's own readers for args/kwargs must agree with the generated decoder.
      const reference = viaGeneratedDecoder(buf);
      if (fast instanceof CeleriacError || reference instanceof CeleriacError) {
        expect(fast instanceof CeleriacError, `buffer ${i}: ${Buffer.from(buf).toString("hex")}`).toBe(reference instanceof CeleriacError);
      } else {
        expect(fast, `buffer ${i}`).toStrictEqual(reference);
      }
      try {
        decodeResultMeta(buf);
      } catch (err) {
        if (!(err instanceof CeleriacError) || err.code !== "decode_failed") {
          throw new Error(`buffer ${i} as ResultMeta threw ${String(err)}`);
        }
      }
    }
    expect(decoded + failed).toBe(2000);
    // Both outcomes must actually occur, or the fuzz is not exercising anything.
    expect(decoded).toBeGreaterThan(0);
    expect(failed).toBeGreaterThan(0);
  });
});

describe("protobuf result metas", () => {
  const success: ResultMeta = {
    status: "SUCCESS",
    result: { total: 5, big: 2n ** 70n, at: new Date(0), raw: new Uint8Array([1]) },
    traceback: null,
    children: [[["child-id", null], null]],
    date_done: "2026-12-01T04:00:10.123456",
    task_id: "tid",
  };

  it("round-trips a SUCCESS meta, leaving group_id/parent_id out when they were", () => {
    const back = decodeResultMeta(encodeResultMeta(success));
    expect(back).toStrictEqual(success);
    expect(back).not.toHaveProperty("group_id");
  });

  it("carries Celery's exception triple in its own fields", () => {
    const failure: ResultMeta = {
      status: "FAILURE",
      result: { exc_type: "ValueError", exc_message: ["bad", 3], exc_module: "builtins" },
      traceback: "Traceback (most recent call last):\n  ...\nValueError: bad",
      children: [],
      date_done: "2026-12-01T04:00:10.123456",
      task_id: "tid",
      group_id: null,
      parent_id: "pid",
    };
    const bytes = encodeResultMeta(failure);
    const raw = messages.ResultMeta.decode(bytes);
    expect(raw.outcome).toBe("exception");
    expect(raw.exception?.excType).toBe("ValueError");
    expect(decodeResultMeta(bytes)).toStrictEqual(failure);
  });

  it("keeps exception-like results that are not exactly the triple as plain results", () => {
    for (const result of [
      { exc_type: "E", exc_message: [], exc_module: null, extra: 1 },
      { exc_message: [], exc_type: "E", exc_module: "m" },
      { exc_type: "E", exc_message: "not a list", exc_module: "m" },
    ]) {
      const meta: ResultMeta = { ...success, status: "FAILURE", result };
      const bytes = encodeResultMeta(meta);
      expect(messages.ResultMeta.decode(bytes).outcome).toBe("result");
      expect(decodeResultMeta(bytes)).toStrictEqual(meta);
    }
  });

  it("round-trips custom states, result_extended keys and a missing result", () => {
    const extended = {
      status: "PROGRESS",
      result: { current: 1, total: 10 },
      traceback: null,
      children: [],
      date_done: null,
      task_id: "tid",
      group_id: "gid",
      name: "proj.tasks.add",
      args: [1, 2],
      kwargs: {},
      worker: "celery@host",
      retries: 0,
      queue: "celery",
    } as unknown as ResultMeta;
    expect(decodeResultMeta(encodeResultMeta(extended))).toStrictEqual(extended);
    const { result: _dropped, ...noResult } = success;
    expect(decodeResultMeta(encodeResultMeta(noResult as ResultMeta))).toStrictEqual(noResult);
  });

  it("rejects result metas without task_id or status", () => {
    expectDecodeFailed(() => decodeResultMeta(new Uint8Array(0)));
    expectDecodeFailed(() => decodeResultMeta(messages.ResultMeta.encode({ taskId: "t" })));
  });
});

describe("generated code", () => {
  it("is what scripts/gen-proto.mjs generates now (run `npm run proto:gen` after editing proto/)", () => {
    const out = mkdtempSync(join(tmpdir(), "celeriac-gen-"));
    try {
      execFileSync(process.execPath, [join(repo, "scripts", "gen-proto.mjs"), "--out", out], { cwd: repo });
      const committed = join(repo, "packages", "core", "src", "gen");
      const list = (dir: string): string[] =>
        readdirSync(dir).flatMap((name) => {
          const path = join(dir, name);
          return statSync(path).isDirectory() ? list(path) : [path];
        });
      const fresh = list(out)
        .map((p) => relative(out, p))
        .sort();
      expect(
        list(committed)
          .map((p) => relative(committed, p))
          .sort(),
      ).toEqual(fresh);
      expect(fresh.length).toBeGreaterThan(0);
      for (const rel of fresh) {
        expect(readFileSync(join(committed, rel), "utf8"), rel).toBe(readFileSync(join(out, rel), "utf8"));
      }
    } finally {
      rmSync(out, { recursive: true, force: true });
    }
  });
});
