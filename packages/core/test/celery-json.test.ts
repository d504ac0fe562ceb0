import { deflateSync } from "node:zlib";
import { describe, expect, it } from "vitest";
import { createEnvelope, type TaskEnvelope } from "../src/envelope.js";
import { CeleriacError } from "../src/errors.js";
import type { WireMessage } from "../src/wire.js";
import { celeryJsonCodec, createCeleryJsonCodec, parsePyDatetime, pyIsoformat, reviveKombuTypes } from "../src/codec/celery-json.js";
import { MAX_DECOMPRESSED_BYTES, decodeTask } from "../src/codec/index.js";

const enc = new TextEncoder();
const dec = new TextDecoder();

const ID = "2e08efb9-24e7-4a25-8676-c1ff24fb17f7";

/** The headers Celery 5.2.6 wrote for add.apply_async((2, 3)) (shared Redis capture). */
function celeryHeaders(): Record<string, unknown> {
  return {
    lang: "py",
    task: "pytasks.add",
    id: ID,
    shadow: null,
    eta: null,
    expires: null,
    group: null,
    group_index: null,
    retries: 0,
    timelimit: [null, null],
    root_id: ID,
    parent_id: null,
    argsrepr: "(2, 3)",
    kwargsrepr: "{}",
    origin: "gen15163@vm",
    ignore_result: false,
  };
}

function wire(body: string | Uint8Array, headers: Record<string, unknown> = celeryHeaders(), extra: Partial<WireMessage> = {}): WireMessage {
  return {
    body: typeof body === "string" ? enc.encode(body) : body,
    contentType: "application/json",
    contentEncoding: "utf-8",
    headers,
    properties: { correlationId: ID, replyTo: "4d237d51-4c73-3473-afb6-4de87c43e956", deliveryMode: 2, priority: 5 },
    ...extra,
  };
}

const V2_BODY = '[[2, 3], {}, {"callbacks": null, "errbacks": null, "chain": null, "chord": null}]';

function decodeFailure(fn: () => unknown): CeleriacError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(CeleriacError);
    expect((err as CeleriacError).code).toBe("decode_failed");
    expect((err as Error).message.length).toBeGreaterThan(0);
    return err as CeleriacError;
  }
  throw new Error("expected decode_failed");
}

describe("encode", () => {
  it("writes Celery 5.2.6's exact header order and body bytes", () => {
    const env = createEnvelope({ task: "pytasks.add", id: ID, args: [2, 3], headers: { argsrepr: "(2, 3)", kwargsrepr: "{}", origin: "gen15163@vm" } });
    const m = celeryJsonCodec.encode(env);
    expect(Object.keys(m.headers)).toEqual(Object.keys(celeryHeaders()));
    expect(m.headers).toEqual(celeryHeaders());
    expect(dec.decode(m.body)).toBe(V2_BODY);
    expect(m.contentType).toBe("application/json");
    expect(m.contentEncoding).toBe("utf-8");
    expect(m.properties).toEqual({ correlationId: ID, replyTo: "", deliveryMode: 2 });
  });

  it("appends extra headers after Celery's, and 5.3 headers only when set", () => {
    const env = createEnvelope({
      task: "t",
      id: "i",
      headers: { extra: { "x-b": 1, "x-a": [1], task: "must-not-override", compression: "zlib" }, replacedTaskNesting: 2, stamps: { s: ["v"] } },
    });
    const h = celeryJsonCodec.encode(env).headers;
    expect(Object.keys(h).slice(-4)).toEqual(["replaced_task_nesting", "stamps", "x-b", "x-a"]);
    expect(h["task"]).toBe("t");
    expect(h).not.toHaveProperty("compression");
    const plain = celeryJsonCodec.encode(createEnvelope({ task: "t", id: "i" })).headers;
    expect(plain).not.toHaveProperty("replaced_task_nesting");
    expect(plain).not.toHaveProperty("stamps");
  });

  it("writes signatures with Celery's keys, chord_size only when present", () => {
    const sig = { task: "a", args: [1], kwargs: { k: 2 }, options: { queue: "q" }, subtaskType: null, immutable: true };
    const env = createEnvelope({ task: "t", id: "i", embed: { callbacks: [sig], chord: { ...sig, chordSize: 3 } } });
    expect(dec.decode(celeryJsonCodec.encode(env).body)).toBe(
      '[[], {}, {"callbacks": [{"task": "a", "args": [1], "kwargs": {"k": 2}, "options": {"queue": "q"}, "subtask_type": null, "immutable": true}], "errbacks": null, "chain": null, ' +
        '"chord": {"task": "a", "args": [1], "kwargs": {"k": 2}, "options": {"queue": "q"}, "subtask_type": null, "immutable": true, "chord_size": 3}}]',
    );
  });

  it("writes Dates, bigints and bytes per dialect", () => {
    const when = new Date(Date.UTC(2024, 4, 6, 7, 8, 9, 123));
    const midnight = new Date(Date.UTC(2024, 0, 1));
    const env = createEnvelope({ task: "t", id: "i", args: [when, midnight, 2n ** 70n] });
    expect(dec.decode(celeryJsonCodec.encode(env).body)).toMatch(/^\[\["2024-05-06T07:08:09\.123000Z", "2024-01-01T00:00:00Z", 1180591620717411303424\]/);
    const k53 = createCeleryJsonCodec({ dialect: "kombu53" });
    const withBytes = createEnvelope({ task: "t", id: "i", args: [when, enc.encode("hé"), new Uint8Array([0xff, 0])] });
    expect(dec.decode(k53.encode(withBytes).body)).toMatch(
      /^\[\[\{"__type__": "datetime", "__value__": "2024-05-06T07:08:09\.123000\+00:00"\}, \{"__type__": "bytes", "__value__": "h\\u00e9"\}, \{"__type__": "base64", "__value__": "\/wA="\}\]/,
    );
    // ... and reads them back to the same JS values.
    expect(k53.decode(k53.encode(withBytes)).args).toEqual([when, enc.encode("hé"), new Uint8Array([0xff, 0])]);
    const err = (() => {
      try {
        celeryJsonCodec.encode(withBytes);
      } catch (e) {
        return e as CeleriacError;
      }
      return null;
    })();
    expect(err?.code).toBe("invalid_argument");
    expect(err?.message).toMatch(/kombu53/);
    expect(() => createCeleryJsonCodec({ dialect: "kombu99" as never })).toThrow(/dialect/);
  });

  it("round-trips a fully populated envelope", () => {
    const env = createEnvelope({
      task: "t",
      id: "i",
      args: [1, "a", null, 2n ** 64n],
      kwargs: { k: { n: [1.5] } },
      headers: {
        shadow: "s",
        eta: "2030-01-01T00:00:00+00:00",
        expires: "2030-01-02T00:00:00+00:00",
        group: "g",
        groupIndex: 2,
        retries: 4,
        timelimit: [10, 5.5],
        rootId: "r",
        parentId: "p",
        argsrepr: "(1,)",
        kwargsrepr: "{}",
        origin: "o",
        ignoreResult: true,
        replacedTaskNesting: 1,
        stamps: { a: 1 },
        extra: { "x-y": "z" },
      },
      properties: { replyTo: "rq", priority: 9, expiration: "1000", deliveryMode: 1 },
      embed: {
        callbacks: [{ task: "cb", args: [], kwargs: {}, options: {}, subtaskType: null, immutable: false }],
        errbacks: [{ task: "eb", args: [1], kwargs: {}, options: {}, subtaskType: null, immutable: true }],
        chain: [{ task: "c2", args: [], kwargs: {}, options: { task_id: "x" }, subtaskType: null, immutable: false }],
        chord: { task: "body", args: [], kwargs: {}, options: {}, subtaskType: "chord", immutable: false, chordSize: 2 },
      },
    });
    expect(celeryJsonCodec.decode(celeryJsonCodec.encode(env))).toEqual(env);
  });
});

describe("decode", () => {
  it("reads Celery's protocol v2 message", () => {
    const env = celeryJsonCodec.decode(wire(V2_BODY));
    expect(env.args).toEqual([2, 3]);
    expect(env.headers).toMatchObject({ task: "pytasks.add", id: ID, rootId: ID, origin: "gen15163@vm", retries: 0, timelimit: [null, null], extra: {} });
    expect(env.properties).toMatchObject({ correlationId: ID, priority: 5, deliveryMode: 2, expiration: null });
  });

  it("keeps unknown headers verbatim in extra", () => {
    const env = celeryJsonCodec.decode(wire(V2_BODY, { ...celeryHeaders(), "x-trace": { deep: [1, null] }, stamped_headers: ["a"] }));
    expect(env.headers.extra).toEqual({ "x-trace": { deep: [1, null] }, stamped_headers: ["a"] });
  });

  it("reads protocol v1 bodies", () => {
    const body = JSON.stringify({
      task: "golden.echo",
      id: "v1-id",
      args: [1, "a"],
      kwargs: { k: 2 },
      group: null,
      retries: 1,
      eta: "2026-12-01T03:47:39.053001+00:00",
      expires: null,
      utc: true,
      callbacks: [{ task: "cb", args: [], kwargs: {}, options: {}, subtask_type: null, immutable: false }],
      errbacks: null,
      timelimit: [9, null],
      taskset: "gid",
      chord: null,
    });
    const env = celeryJsonCodec.decode(wire(body, {}));
    expect(env.headers).toMatchObject({
      task: "golden.echo",
      id: "v1-id",
      retries: 1,
      eta: "2026-12-01T03:47:39.053001+00:00",
      timelimit: [9, null],
      group: "gid",
    });
    expect(env.args).toEqual([1, "a"]);
    expect(env.kwargs).toEqual({ k: 2 });
    expect(env.embed.callbacks?.[0]?.task).toBe("cb");
    expect(env.properties.correlationId).toBe(ID);
  });

  it("reads hybrids like Celery's hybrid_to_proto2: body fields, overridden by headers present", () => {
    const body = JSON.stringify({ task: "body.t", args: [1], kwargs: {}, eta: "2020-01-01T00:00:00Z", retries: 2, root_id: "r", chain: [{ task: "ignored" }] });
    const env = celeryJsonCodec.decode(wire(body, { task: "h.t", id: "h-id", eta: "2030-01-01T00:00:00Z", "x-other": 1 }));
    expect(env.headers).toMatchObject({ task: "h.t", id: "h-id", eta: "2030-01-01T00:00:00Z", retries: 2, rootId: "r", extra: { "x-other": 1 } });
    expect(env.args).toEqual([1]);
    expect(env.embed.chain).toBeNull();
  });

  it("accepts a v2 body without the embed", () => {
    expect(celeryJsonCodec.decode(wire("[[1], {}]")).embed).toEqual({ callbacks: null, errbacks: null, chain: null, chord: null });
  });

  it("unwraps kombu 5.3 typed values wherever they appear", () => {
    const body = `[[{"__type__": "datetime", "__value__": "2024-05-06T07:08:09.123456+02:00"}, {"__type__": "date", "__value__": "2024-05-06"},
      {"__type__": "time", "__value__": "07:08:09"}, {"__type__": "decimal", "__value__": "3.10"},
      {"__type__": "uuid", "__value__": {"hex": "12345678123456781234567812345678", "version": 4}},
      {"__type__": "bytes", "__value__": "h\\u00e9"}, {"__type__": "base64", "__value__": "/wA="},
      {"__type__": "datetime", "__value__": "x", "extra": 1}, {"__type__": "custom.Type", "__value__": 1}],
      {"nested": [{"__type__": "datetime", "__value__": "2024-01-01T00:00:00"}]},
      {"callbacks": [{"task": "cb", "args": [{"__type__": "decimal", "__value__": "1"}], "kwargs": {}, "options": {},
        "subtask_type": null, "immutable": false}], "errbacks": null, "chain": null, "chord": null}]`;
    const env = celeryJsonCodec.decode(wire(body));
    expect(env.args).toEqual([
      new Date(Date.UTC(2024, 4, 6, 5, 8, 9, 123)),
      "2024-05-06",
      "07:08:09",
      "3.10",
      "12345678-1234-5678-1234-567812345678",
      enc.encode("hé"),
      new Uint8Array([0xff, 0]),
      { __type__: "datetime", __value__: "x", extra: 1 },
      { __type__: "custom.Type", __value__: 1 },
    ]);
    expect(env.kwargs).toEqual({ nested: [new Date(Date.UTC(2024, 0, 1))] });
    expect(env.embed.callbacks?.[0]?.args).toEqual(["1"]);
  });

  it.each([
    ['[[{"__type__": "datetime", "__value__": "2024-13-01T00:00:00"}], {}, {}]', /datetime/],
    ['[[{"__type__": "datetime", "__value__": 5}], {}, {}]', /datetime/],
    ['[[{"__type__": "uuid", "__value__": {"hex": "xyz"}}], {}, {}]', /UUID/],
    ['[[{"__type__": "base64", "__value__": "@@@"}], {}, {}]', /base64/],
    ['[[{"__type__": "bytes", "__value__": 1}], {}, {}]', /bytes/],
  ])("refuses a malformed typed value %s", (body, pattern) => {
    expect(decodeFailure(() => celeryJsonCodec.decode(wire(body))).message).toMatch(pattern);
  });

  const headerCases: [string, Record<string, unknown>, RegExp][] = [
    ["retries as a string", { retries: "3" }, /"retries" must be an integer/],
    ["negative retries", { retries: -1 }, /"retries"/],
    ["fractional retries", { retries: 1.5 }, /"retries"/],
    ["bigint retries", { retries: 2n ** 70n }, /"retries"/],
    ["timelimit of one", { timelimit: [1] }, /"timelimit" must be \[hard, soft\]/],
    ["timelimit as a string", { timelimit: "10" }, /"timelimit"/],
    ["timelimit with a string", { timelimit: [1, "a"] }, /"timelimit" soft/],
    ["negative time limit", { timelimit: [-1, null] }, /"timelimit" hard/],
    ["eta as a number", { eta: 5 }, /"eta" must be a string or null/],
    ["expires as an object", { expires: {} }, /"expires"/],
    ["ignore_result as a string", { ignore_result: "yes" }, /"ignore_result" must be a boolean/],
    ["negative group_index", { group_index: -1 }, /"group_index"/],
    ["missing task", { task: undefined }, /"task" must be a non-empty string/],
    ["empty task", { task: "" }, /"task"/],
    ["numeric id", { id: 7 }, /"id" must be a non-empty string/],
    ["stamps as a list", { stamps: [] }, /"stamps" must be an object/],
    ["shadow as a number", { shadow: 1 }, /"shadow"/],
    ["lang as a list", { lang: ["py"] }, /"lang"/],
    ["replaced_task_nesting as a string", { replaced_task_nesting: "1" }, /"replaced_task_nesting"/],
  ];
  it.each(headerCases)("refuses %s", (_what, change, pattern) => {
    const headers = { ...celeryHeaders(), ...change };
    for (const [k, v] of Object.entries(change)) if (v === undefined) delete headers[k];
    expect(decodeFailure(() => celeryJsonCodec.decode(wire(V2_BODY, headers))).message).toMatch(pattern);
  });

  const bodyCases: [string, string | Uint8Array, RegExp][] = [
    ["invalid JSON", "[[2, 3], {}", /invalid JSON/],
    ["invalid UTF-8", new Uint8Array([0x5b, 0xff, 0x5d]), /UTF-8/],
    ["a string body", '"hello"', /protocol v2 array or a protocol v1 object/],
    ["a body of four", "[[], {}, {}, 1]", /array of 4/],
    ["args as an object", "[{}, {}, {}]", /args must be an array/],
    ["kwargs as an array", "[[], [], {}]", /kwargs must be an object/],
    ["embed as a string", '[[], {}, "x"]', /embed must be an object/],
    ["callbacks as a string", '[[], {}, {"callbacks": "x"}]', /"callbacks" must be a list/],
    ["a callback of 1", '[[], {}, {"callbacks": [1]}]', /"callbacks"\[0\] must be a signature/],
    ["a signature without task", '[[], {}, {"chain": [{"args": []}]}]', /"chain"\[0\] has no task name/],
    ["signature args as an object", '[[], {}, {"errbacks": [{"task": "t", "args": {}}]}]', /"args" must be an array/],
    ["signature immutable as a string", '[[], {}, {"chord": {"task": "t", "immutable": "yes"}}]', /"immutable"/],
    ["v1 body with args as a string", '{"task": "t", "id": "i", "args": "x"}', /args must be an array/],
    ["v1 body without id", '{"task": "t", "args": []}', /"id"/],
  ];
  it.each(bodyCases)("refuses %s", (_what, body, pattern) => {
    const headers = typeof body === "string" && body.startsWith("{") ? {} : celeryHeaders();
    expect(decodeFailure(() => celeryJsonCodec.decode(wire(body, headers))).message).toMatch(pattern);
  });

  it("refuses bad envelopes around the body", () => {
    expect(decodeFailure(() => celeryJsonCodec.decode(wire(V2_BODY, celeryHeaders(), { contentEncoding: "latin-1" }))).message).toMatch(/content encoding/);
    expect(decodeFailure(() => celeryJsonCodec.decode(wire(V2_BODY, celeryHeaders(), { properties: { priority: "5" as never } }))).message).toMatch(
      /"priority"/,
    );
    expect(decodeFailure(() => celeryJsonCodec.decode(wire(V2_BODY, [] as never))).message).toMatch(/headers/);
    expect(decodeFailure(() => celeryJsonCodec.decode(wire(V2_BODY, { ...celeryHeaders(), compression: "application/x-gzip" }))).message).toMatch(/decodeTask/);
  });
});

describe("decodeTask", () => {
  it("refuses pickle and unknown content types", () => {
    expect(decodeFailure(() => decodeTask(wire(V2_BODY, celeryHeaders(), { contentType: "application/x-python-serialize" }))).message).toMatch(/pickle/);
    expect(decodeFailure(() => decodeTask(wire(V2_BODY, celeryHeaders(), { contentType: "text/plain" }))).message).toMatch(/content type/);
  });

  it("decompresses kombu's zlib bodies (compression: application/x-gzip)", () => {
    for (const name of ["application/x-gzip", "zlib", "gzip"]) {
      const env: TaskEnvelope = decodeTask(wire(deflateSync(enc.encode(V2_BODY)), { ...celeryHeaders(), compression: name, "x-keep": 1 }));
      expect(env.args).toEqual([2, 3]);
      expect(env.headers.extra).toEqual({ "x-keep": 1 });
    }
    expect(decodeFailure(() => decodeTask(wire(V2_BODY, { ...celeryHeaders(), compression: "application/x-gzip" }))).message).toMatch(/zlib/);
    expect(decodeFailure(() => decodeTask(wire(V2_BODY, { ...celeryHeaders(), compression: "application/x-bz2" }))).message).toMatch(
      /unsupported body compression/,
    );
    expect(decodeFailure(() => decodeTask(wire(V2_BODY, { ...celeryHeaders(), compression: 1 }))).message).toMatch(/compression/);
  });

  // Garbage times used to be read as absent: the task ran at once, or never expired.
  it.each([
    ["eta", "not a date"],
    ["eta", "abc 1"],
    ["eta", "2024-13-01T00:00:00"],
    ["eta", "2024-01-01T25:00:00+00:00"],
    ["expires", "garbage"],
    ["expires", "12"],
    ["expires", "2024-01-01T00:00:00+99:00"],
  ])("refuses a %s header of %j, which is not an ISO 8601 time", (field, value) => {
    expect(decodeFailure(() => decodeTask(wire(V2_BODY, { ...celeryHeaders(), [field]: value }))).message).toMatch(
      new RegExp(`header "${field}" .* is not an ISO 8601 time`),
    );
  });

  it("reads every ISO form Celery's parse_iso8601 reads, and an empty eta as none", () => {
    const at = (eta: string) => decodeTask(wire(V2_BODY, { ...celeryHeaders(), eta })).headers.eta;
    for (const eta of [
      "2026-12-01T03:47:39.053001+00:00",
      "2026-12-01T03:47:39Z",
      "2026-12-01 03:47:39",
      "2026-12-01T03:47",
      "2026-12-01",
      "2026",
      "2026-12-01T03:47:39-05:30",
      "",
    ]) {
      expect(at(eta)).toBe(eta);
    }
  });

  // Celery takes an object body as a task only when it carries "args" (strategy.py).
  it.each([
    ["an object body under v2 headers", '{"hello": "world"}', celeryHeaders()],
    ["an object body with kwargs but no args", '{"kwargs": {}}', celeryHeaders()],
    ["a v1 body without args", '{"task": "t", "id": "i", "kwargs": {}}', {}],
  ])("refuses %s", (_what, body, headers) => {
    expect(decodeFailure(() => decodeTask(wire(body, headers))).message).toMatch(/object without "args"/);
  });

  it.each([
    ["args not a list", '[{"a": 1}, {}, null]', /args must be an array/],
    ["kwargs not an object", "[[], 5, null]", /kwargs must be an object/],
    ["embed not an object or null", "[[], {}, [1]]", /embed must be an object/],
  ])("refuses a v2 body with %s", (_what, body, pattern) => {
    expect(decodeFailure(() => decodeTask(wire(body))).message).toMatch(pattern);
  });

  it("refuses a body that inflates beyond MAX_DECOMPRESSED_BYTES", () => {
    const bomb = deflateSync(new Uint8Array(MAX_DECOMPRESSED_BYTES + 1));
    expect(bomb.length).toBeLessThan(200_000);
    expect(decodeFailure(() => decodeTask(wire(bomb, { ...celeryHeaders(), compression: "application/x-gzip" }))).message).toMatch(/zlib/);
  });
});

describe("Python datetimes", () => {
  it("formats like datetime.isoformat() of an aware UTC datetime", () => {
    expect(pyIsoformat(new Date(Date.UTC(2024, 4, 6, 7, 8, 9, 5)))).toBe("2024-05-06T07:08:09.005000+00:00");
    expect(pyIsoformat(new Date(Date.UTC(2024, 4, 6)))).toBe("2024-05-06T00:00:00+00:00");
    expect(() => pyIsoformat(new Date(NaN))).toThrow(CeleriacError);
    expect(() => pyIsoformat(new Date(Date.UTC(10000, 0, 1)))).toThrow(/1\.\.9999/);
  });

  it.each([
    ["2024-05-06T07:08:09.123456+00:00", Date.UTC(2024, 4, 6, 7, 8, 9, 123)],
    ["2024-05-06T07:08:09Z", Date.UTC(2024, 4, 6, 7, 8, 9)],
    ["2024-05-06T07:08:09", Date.UTC(2024, 4, 6, 7, 8, 9)],
    ["2024-05-06 07:08", Date.UTC(2024, 4, 6, 7, 8)],
    ["2024-05-06T07:08:09-05:30", Date.UTC(2024, 4, 6, 12, 38, 9)],
    ["2024-05-06T07:08:09+01:00:30", Date.UTC(2024, 4, 6, 6, 7, 39)],
    ["0050-02-03T00:00:00", new Date("0050-02-03T00:00:00Z").getTime()],
  ])("parses %s", (text, ms) => {
    expect(parsePyDatetime(text)?.getTime()).toBe(ms);
  });

  it.each(["2024-13-01T00:00:00", "2024-02-30T00:00:00", "2024-01-01T24:00:00", "0000-01-01T00:00:00", "yesterday", "2024-01-01"])("refuses %s", (text) => {
    expect(parsePyDatetime(text)).toBeNull();
  });

  it("reviveKombuTypes leaves ordinary values alone", () => {
    const v = { a: [1, { __type__: "x" }], b: { __value__: 1 } };
    expect(reviveKombuTypes(structuredClone(v))).toEqual(v);
  });
});
