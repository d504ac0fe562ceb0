/**
 * Golden vectors: messages captured from real Celery 5.2.6 / kombu 5.2.4 (fixtures/golden, made by
 * scripts/capture-golden.py) must decode and re-encode to the same bytes; messages encoded here
 * must decode in Python, through kombu's transport and Celery's worker Request, to what we sent.
 */
import { spawnSync } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { createEnvelope, type Signature, type TaskEnvelope } from "../src/envelope.js";
import { celeryJsonCodec } from "../src/codec/celery-json.js";
import { decodeTask, decompressMessage } from "../src/codec/index.js";
import { formatPyFloat, pyParse } from "../src/codec/py-json.js";
import { parseKombuEnvelope, stringifyKombuEnvelope, toKombuEnvelope } from "../src/kombu-envelope.js";

const ROOT = fileURLToPath(new URL("../../../", import.meta.url));
const GOLDEN = join(ROOT, "fixtures/golden");
const PYTHON = "/usr/bin/python3";

interface Fixture {
  name: string;
  call: string;
  protocol: 1 | 2;
  envelope_text: string;
  python: { args_repr: string; kwargs_repr: string; request: Record<string, unknown> };
  flags: string[];
}

const fixtures: Fixture[] = readdirSync(GOLDEN)
  .filter((f) => f.endsWith(".json"))
  .sort()
  .map((f) => JSON.parse(readFileSync(join(GOLDEN, f), "utf8")) as Fixture);

const text = new TextDecoder();

function reencode(fx: Fixture): { original: ReturnType<typeof parseKombuEnvelope>; envelope: TaskEnvelope; reencoded: string } {
  const original = parseKombuEnvelope(fx.envelope_text);
  const envelope = decodeTask(original.message);
  const wire = celeryJsonCodec.encode(envelope);
  const raw = JSON.parse(fx.envelope_text) as { properties: { delivery_info: { exchange: string } } };
  const kombu = toKombuEnvelope(wire, {
    exchange: raw.properties.delivery_info.exchange,
    routingKey: original.routingKey ?? "",
    deliveryTag: original.deliveryTag ?? "",
  });
  return { original, envelope, reencoded: stringifyKombuEnvelope(kombu) };
}

describe("golden fixtures captured from Celery 5.2.6", () => {
  it("has the expected set of fixtures", () => {
    expect(fixtures.length).toBeGreaterThanOrEqual(25);
    expect(fixtures.filter((f) => f.protocol === 1).length).toBeGreaterThanOrEqual(2);
  });

  const exact = fixtures.filter((f) => f.protocol === 2 && f.flags.length === 0 && !f.envelope_text.includes('"compression"'));
  it.each(exact.map((f) => [f.name, f] as const))("%s re-encodes to the identical envelope bytes", (_name, fx) => {
    const { reencoded } = reencode(fx);
    expect(reencoded).toBe(fx.envelope_text);
  });

  // Integral floats (3.0) and integer-like keys (JS orders them first) cannot come back byte for
  // byte: compare structure instead, and check the body text differs only in those respects.
  const structural = fixtures.filter((f) => f.protocol === 2 && (f.flags.length > 0 || f.envelope_text.includes('"compression"')));
  it.each(structural.map((f) => [f.name, f] as const))("%s re-encodes to the same structure", (_name, fx) => {
    const { original, envelope, reencoded } = reencode(fx);
    const again = parseKombuEnvelope(reencoded);
    const plain = decompressMessage(original.message);
    expect(again.message.headers).toEqual(plain.headers);
    expect(again.message.properties).toEqual(plain.properties);
    expect(pyParse(text.decode(again.message.body))).toEqual(pyParse(text.decode(plain.body)));
    expect(decodeTask(again.message)).toEqual(envelope);
  });

  it("decodes values with their Python meaning", () => {
    const byName = new Map(fixtures.map((f) => [f.name, f]));
    const decode = (name: string): TaskEnvelope => decodeTask(parseKombuEnvelope(byName.get(name)!.envelope_text).message);

    expect(decode("big-ints").args).toEqual([2n ** 70n, -(2n ** 63n), 2n ** 63n - 1n, 2n ** 53n, 2n ** 53n + 1n, -(2n ** 53n)]);
    expect(decode("big-ints").kwargs).toEqual({ big: 10n ** 30n });
    const floats = decode("floats").args as number[];
    expect(floats.slice(0, 5)).toEqual([0.1, 1e-7, 1e16, 1.5e300, 2.5]);
    expect(Object.is(floats[5], -0)).toBe(true);
    expect(decode("integral-floats").args).toEqual([3, 0, -2, 1e15]);
    const nonFinite = decode("non-finite").args as number[];
    expect(nonFinite[0]).toBeNaN();
    expect(nonFinite.slice(1)).toEqual([Infinity, -Infinity]);
    expect(decode("unicode").args).toEqual(["héllo", "日本語", "😀 emoji 𝄞", 'quote"back\\slash\n\t\x01\x7f\u2028', "\x00"]);
    expect(decode("unicode").kwargs).toEqual({ clé: "välue", "😀": ["ß"] });
    // kombu 5.2 sends datetimes, dates, times, UUIDs and Decimals as plain strings.
    expect(decode("datetimes-uuid-decimal").args).toEqual([
      "2024-05-06T07:08:09.123456Z",
      "2024-05-06T07:08:09",
      "2024-05-06T00:00:00",
      "07:08:09",
      "12345678-1234-5678-1234-567812345678",
      "3.14159265358979323846",
    ]);

    const limits = decode("retries-timelimits").headers;
    expect(limits.retries).toBe(3);
    expect(limits.timelimit).toEqual([30, 20.5]);
    expect(decode("soft-limit-only").headers.timelimit).toEqual([null, 5]);
    const eta = decode("eta-expires-absolute");
    expect(eta.headers.eta).toBe("2030-01-02T03:04:05.678901+00:00");
    expect(eta.headers.expires).toBe("2030-01-03T00:00:00+00:00");
    expect(eta.properties.expiration).toBe(JSON.parse(byName.get("eta-expires-absolute")!.envelope_text).properties.expiration);
    expect(decode("countdown-expires-priority").properties.priority).toBe(7);
    expect(decode("shadow").headers.shadow).toBe("display.name");
    expect(decode("ignore-result").headers.ignoreResult).toBe(true);
    expect(decode("custom-headers").headers.extra).toEqual({ "x-tenant": "acme", "x-n": 42, "x-list": [1, "a"] });
    expect(decode("parent-root").headers).toMatchObject({ rootId: "00000000-0000-4000-8000-000000000090", parentId: "00000000-0000-4000-8000-000000000091" });
    expect(decode("group-1").headers.group).toBe("00000000-0000-4000-8000-000000000021");
    expect(decode("compressed").args).toEqual(["x".repeat(200)]);
    expect(decode("compressed").headers.extra).toEqual({});

    const link = decode("link-link-error").embed;
    expect(link.callbacks?.map((s) => [s.task, s.args, s.options])).toEqual([
      ["golden.echo", [1], {}],
      ["golden.add", [7], { queue: "q2" }],
    ]);
    expect(link.errbacks).toEqual([{ task: "golden.echo", args: ["err"], kwargs: { k: 1 }, options: {}, subtaskType: null, immutable: true }]);
    // The chain's remaining steps come reversed: the next one is last.
    expect(decode("chain").embed.chain?.map((s) => s.task)).toEqual(["golden.echo", "golden.add"]);
  });

  it.each(fixtures.map((f) => [f.name, f] as const))("%s decodes to the fields Celery's worker Request sees", (_name, fx) => {
    const e = decodeTask(parseKombuEnvelope(fx.envelope_text).message);
    const h = e.headers;
    expect({
      task: h.task,
      name: h.shadow ?? h.task,
      id: h.id,
      eta: h.eta,
      expires: h.expires,
      time_limits: h.timelimit,
      retries: h.retries,
      group: h.group,
      group_index: h.groupIndex,
      root_id: h.rootId,
      parent_id: h.parentId,
      ignore_result: h.ignoreResult,
      priority: e.properties.priority,
      correlation_id: e.properties.correlationId,
      reply_to: e.properties.replyTo,
      argsrepr: h.argsrepr,
      kwargsrepr: h.kwargsrepr,
      origin: h.origin,
      shadow: h.shadow,
      callbacks: e.embed.callbacks?.length ?? 0,
      errbacks: e.embed.errbacks?.length ?? 0,
      chain: e.embed.chain?.length ?? 0,
    }).toEqual(fx.python.request);
  });

  it.each(fixtures.filter((f) => f.protocol === 1).map((f) => [f.name, f] as const))("reads protocol v1 message %s", (_name, fx) => {
    const original = parseKombuEnvelope(fx.envelope_text);
    const envelope = decodeTask(original.message);
    const body = pyParse(text.decode(original.message.body)) as Record<string, unknown>;
    expect(envelope.headers.task).toBe(body["task"]);
    expect(envelope.headers.id).toBe(body["id"]);
    expect(envelope.args).toEqual(body["args"]);
    expect(envelope.kwargs).toEqual(body["kwargs"]);
    expect(envelope.headers.eta).toBe(body["eta"]);
    expect(envelope.headers.expires).toBe(body["expires"]);
    expect(envelope.headers.timelimit).toEqual(body["timelimit"]);
    expect(envelope.embed.callbacks?.length ?? 0).toBe(((body["callbacks"] as unknown[] | null) ?? []).length);
    // Re-encoded as v2, it still carries the same task.
    const again = decodeTask(celeryJsonCodec.encode(envelope));
    expect(again.args).toEqual(envelope.args);
    expect(again.headers.eta).toBe(envelope.headers.eta);
  });
});

// ---------------------------------------------------------------------------------------------
// TS -> Python: what Celery's own decoding sees.

type Tagged = null | boolean | string | Tagged[] | { int: string } | { float: string } | { dict: [string, Tagged][] };

/** What scripts/py-decode.py prints for the Python value a JS value becomes (kombu 5.2 dialect). */
function expected(v: unknown): Tagged {
  if (v === null || typeof v === "boolean" || typeof v === "string") return v;
  if (typeof v === "bigint") return { int: v.toString() };
  if (typeof v === "number") {
    if (Number.isSafeInteger(v) && !Object.is(v, -0)) return { int: String(v) };
    if (Number.isNaN(v)) return { float: "nan" };
    if (!Number.isFinite(v)) return { float: v > 0 ? "inf" : "-inf" };
    return { float: formatPyFloat(v) };
  }
  if (v instanceof Date) return `${v.toISOString().slice(0, -1)}000Z`.replace(/\.000000Z$/, "Z");
  if (Array.isArray(v)) return v.map(expected);
  return { dict: Object.entries(v as Record<string, unknown>).map(([k, x]) => [k, expected(x)] as [string, Tagged]) };
}

function sigWire(s: Signature): Record<string, unknown> {
  return { task: s.task, args: s.args, kwargs: s.kwargs, options: s.options, subtask_type: s.subtaskType, immutable: s.immutable };
}

const sig = (task: string, args: unknown[], extra: Partial<Signature> = {}): Signature => ({
  task,
  args,
  kwargs: {},
  options: {},
  subtaskType: null,
  immutable: false,
  ...extra,
});

const id = (n: number): string => `11111111-2222-4333-8444-${String(n).padStart(12, "0")}`;

const tsMessages: TaskEnvelope[] = [
  createEnvelope({
    task: "ts.types",
    id: id(1),
    args: [
      1,
      -1,
      0,
      2n ** 70n,
      -(2n ** 63n),
      0.1,
      1e-7,
      1e16,
      1.5,
      -0,
      NaN,
      Infinity,
      -Infinity,
      "héllo 😀 𝄞",
      '\u2028\x00\x7f"\\',
      true,
      false,
      null,
      [1, [2, [3, { a: [null, {}] }]]],
      new Date(Date.UTC(2024, 4, 6, 7, 8, 9, 123)),
      new Date(Date.UTC(2024, 0, 1)),
    ],
    kwargs: { clé: "välue", "😀": ["ß"], big: 10n ** 30n, nested: { x: { y: { z: [] } } }, "2": "integer-like key", empty: "" },
    headers: { argsrepr: "(...)", kwargsrepr: "{...}", origin: "gen1@ts" },
  }),
  createEnvelope({
    task: "ts.timing",
    id: id(2),
    args: [1, 2],
    headers: { eta: "2030-01-02T03:04:05.678901+00:00", expires: "2030-01-03T00:00:00+00:00", retries: 2, timelimit: [30, 20.5] },
    properties: { priority: 7, expiration: "60000", replyTo: "reply-queue" },
  }),
  createEnvelope({
    task: "ts.linked",
    id: id(3),
    args: [2, 3],
    embed: {
      callbacks: [sig("ts.echo", [1]), sig("ts.add", [7], { options: { queue: "q2" } })],
      errbacks: [sig("ts.echo", ["err"], { kwargs: { k: 1 }, immutable: true })],
      chord: sig("ts.body", [], { options: { task_id: id(11) } }),
    },
  }),
  createEnvelope({
    task: "ts.chained",
    id: id(4),
    args: [2, 3],
    embed: { chain: [sig("ts.echo", ["done"], { immutable: true, options: { task_id: id(6) } }), sig("ts.add", [10], { options: { task_id: id(5) } })] },
  }),
  createEnvelope({
    task: "ts.grouped",
    id: id(7),
    args: [],
    kwargs: { only: "kwargs" },
    headers: {
      group: id(8),
      groupIndex: 1,
      shadow: "display.name",
      ignoreResult: true,
      rootId: id(9),
      parentId: id(10),
      extra: { "x-tenant": "acme", "x-n": 42, "x-list": [1, "a"] },
    },
  }),
];

describe("Celeriac-encoded messages decoded by Celery/kombu", () => {
  it("Python sees exactly the args, kwargs and options we sent", () => {
    const texts = tsMessages.map((e, i) =>
      stringifyKombuEnvelope(toKombuEnvelope(celeryJsonCodec.encode(e), { routingKey: "golden", deliveryTag: `tag-${i}` })),
    );
    const r = spawnSync(PYTHON, [join(ROOT, "scripts/py-decode.py")], { input: JSON.stringify(texts), encoding: "utf8", timeout: 60_000 });
    expect(r.stderr).toBe("");
    expect(r.status).toBe(0);
    const seen = JSON.parse(r.stdout) as Record<string, unknown>[];
    expect(seen).toHaveLength(tsMessages.length);

    tsMessages.forEach((e, i) => {
      const py = seen[i]!;
      const h = e.headers;
      const signatures = (list: Signature[] | null): Tagged => (list === null ? null : list.map((s) => expected(sigWire(s))));
      expect(py).toEqual({
        content_type: "application/json",
        task: h.task,
        name: h.shadow ?? h.task,
        id: h.id,
        args: expected(e.args),
        kwargs: expected(e.kwargs),
        callbacks: signatures(e.embed.callbacks),
        errbacks: signatures(e.embed.errbacks),
        chain: signatures(e.embed.chain),
        chord: e.embed.chord ? expected(sigWire(e.embed.chord)) : null,
        eta: h.eta,
        expires: h.expires,
        time_limits: expected(h.timelimit),
        retries: expected(h.retries),
        priority: expected(e.properties.priority ?? 0),
        routing_key: "golden",
        correlation_id: h.id,
        reply_to: e.properties.replyTo,
        root_id: h.rootId,
        parent_id: h.parentId,
        group: h.group,
        group_index: expected(h.groupIndex),
        ignore_result: h.ignoreResult,
        argsrepr: h.argsrepr,
        kwargsrepr: h.kwargsrepr,
        expiration: e.properties.expiration,
        extra_headers: expected(h.extra),
      });
    });
  });
});
