/**
 * The `application/json` codec, byte-compatible with Celery 5.2.6 / kombu 5.2.4.
 *
 * Writes protocol v2 exactly as `celery.app.amqp.AMQP.as_task_v2` builds it and kombu's
 * `json.dumps` serializes it. Reads protocol v2, protocol v1 (task fields in a JSON object body)
 * and hybrids of the two, in both kombu JSON dialects (see docs/json-dialect.md). Anything
 * malformed is refused with `CeleriacError("decode_failed")` naming the offending field.
 */
import { createEnvelope, type Signature, type TaskEmbed, type TaskEnvelope, type TaskHeaders } from "../envelope.js";
import { CeleriacError } from "../errors.js";
import { toWireProperties, type WireMessage } from "../wire.js";
import type { Codec } from "./codec.js";
import { pyParse, pyStringify } from "./py-json.js";

/**
 * Which kombu JSON dialect to write. Both are always accepted when reading.
 * - `kombu52` (default): kombu <= 5.2, what Debian's Celery 5.2.6 writes and expects. Dates are
 *   plain ISO strings; bytes cannot be sent.
 * - `kombu53`: kombu >= 5.3, which tags dates and bytes as `{"__type__", "__value__"}` objects.
 */
export type KombuJsonDialect = "kombu52" | "kombu53";

export interface CeleryJsonCodecOptions {
  dialect?: KombuJsonDialect;
}

const CONTENT_TYPE = "application/json";
const utf8 = new TextEncoder();
const utf8Strict = new TextDecoder("utf-8", { fatal: true });

// ---------------------------------------------------------------------------------------------
// Values: how JS types map onto each kombu dialect.

function pad(n: number, width: number): string {
  return String(n).padStart(width, "0");
}

/** `datetime.isoformat()` of the same instant as an aware UTC datetime (microsecond precision). */
export function pyIsoformat(d: Date): string {
  const t = d.getTime();
  if (!Number.isFinite(t)) throw new CeleriacError("invalid_argument", "cannot serialize an invalid Date");
  const year = d.getUTCFullYear();
  if (year < 1 || year > 9999) throw new CeleriacError("invalid_argument", `cannot serialize Date ${d.toISOString()}: Python datetimes span years 1..9999`);
  const base = `${pad(year, 4)}-${pad(d.getUTCMonth() + 1, 2)}-${pad(d.getUTCDate(), 2)}T${pad(d.getUTCHours(), 2)}:${pad(d.getUTCMinutes(), 2)}:${pad(d.getUTCSeconds(), 2)}`;
  const ms = d.getUTCMilliseconds();
  // Python omits the fraction when it is zero and otherwise always prints six digits.
  return `${base}${ms === 0 ? "" : `.${pad(ms, 3)}000`}+00:00`;
}

function toBase64(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString("base64");
}

/**
 * The `encodeSpecial` hook for `pyStringify` that writes JS values the way the chosen kombu
 * version writes the corresponding Python values:
 * - Date: kombu 5.2 writes an aware UTC datetime as `isoformat()` with `+00:00` replaced by `Z`;
 *   kombu 5.3 writes `{"__type__": "datetime", "__value__": isoformat()}`.
 * - Uint8Array: kombu 5.3 writes `bytes` (valid UTF-8) or `base64`; kombu 5.2 cannot send bytes in
 *   JSON at all (Python raises TypeError), so neither do we.
 * (bigint needs no hook: both write it as plain digits, a Python int.)
 */
export function kombuValueEncoder(dialect: KombuJsonDialect): (value: object) => unknown {
  return (value) => {
    if (value instanceof Date) {
      const iso = pyIsoformat(value);
      return dialect === "kombu53" ? { __type__: "datetime", __value__: iso } : `${iso.slice(0, -6)}Z`;
    }
    if (value instanceof Uint8Array) {
      if (dialect === "kombu52") {
        throw new CeleriacError(
          "invalid_argument",
          "cannot send bytes (Uint8Array) in the kombu 5.2 JSON dialect, which Python cannot decode; encode them (e.g. base64) yourself or use dialect 'kombu53'",
        );
      }
      try {
        return { __type__: "bytes", __value__: utf8Strict.decode(value) };
      } catch {
        return { __type__: "base64", __value__: toBase64(value) };
      }
    }
    return undefined;
  };
}

const ISO_DATETIME = /^(\d{4})-(\d{2})-(\d{2})[T ](\d{2}):(\d{2})(?::(\d{2})(?:[.,](\d{1,6}))?)?(Z|[+-]\d{2}:?\d{2}(?::?\d{2}(?:\.\d{1,6})?)?)?$/;

/** Python `datetime.fromisoformat` for the forms kombu writes; naive times are taken as UTC. */
export function parsePyDatetime(text: string): Date | null {
  const m = ISO_DATETIME.exec(text);
  if (!m) return null;
  const [, y, mo, d, h, mi, s, frac, tz] = m;
  const ms = frac === undefined ? 0 : Math.floor(Number(frac.padEnd(6, "0")) / 1000);
  // setUTCFullYear rather than Date.UTC, which maps years 0..99 to 1900..1999.
  const date = new Date(0);
  date.setUTCFullYear(Number(y), Number(mo) - 1, Number(d));
  date.setUTCHours(Number(h), Number(mi), Number(s ?? 0), ms);
  // Out-of-range fields (month 13, day 32, hour 24) roll over in JS; Python refuses them.
  const sameDay = date.getUTCFullYear() === Number(y) && date.getUTCMonth() === Number(mo) - 1 && date.getUTCDate() === Number(d);
  const sameTime = date.getUTCHours() === Number(h) && date.getUTCMinutes() === Number(mi) && date.getUTCSeconds() === Number(s ?? 0);
  if (Number(y) < 1 || !sameDay || !sameTime) return null;
  let t = date.getTime();
  if (tz !== undefined && tz !== "Z") {
    const digits = tz.slice(1).replace(/:/g, "");
    const offsetS = Number(digits.slice(0, 2)) * 3600 + Number(digits.slice(2, 4)) * 60 + Number(digits.slice(4) || 0);
    t -= (tz[0] === "-" ? -1 : 1) * Math.round(offsetS * 1000);
  }
  return new Date(t);
}

function decodeFail(message: string): never {
  throw new CeleriacError("decode_failed", message);
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function reviveTyped(type: string, value: unknown, where: string): unknown {
  const bad = (what: string): never => decodeFail(`${where}: kombu ${JSON.stringify(type)} value ${what}`);
  switch (type) {
    case "datetime": {
      if (typeof value !== "string") return bad("must be a string");
      return parsePyDatetime(value) ?? bad(`${JSON.stringify(value)} is not an ISO 8601 datetime`);
    }
    // JS has no date-only, time-of-day or decimal type: keep kombu's exact text, which is also
    // what a kombu 5.2 producer sends for the same Python values.
    case "date":
    case "time":
    case "decimal":
      return typeof value === "string" ? value : bad("must be a string");
    case "uuid": {
      // kombu 5.3 writes {"hex": "<32 hex>", "version": n}; accept a plain string as well.
      const raw = isRecord(value) ? value["hex"] : value;
      if (typeof raw !== "string") return bad("must carry a hex string");
      const hex = raw
        .replace(/[-{}]/g, "")
        .replace(/^urn:uuid:/i, "")
        .toLowerCase();
      if (!/^[0-9a-f]{32}$/.test(hex)) return bad(`${JSON.stringify(raw)} is not a UUID`);
      return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
    }
    case "bytes":
      return typeof value === "string" ? utf8.encode(value) : bad("must be a string");
    case "base64": {
      if (typeof value !== "string" || !/^[A-Za-z0-9+/]*={0,2}$/.test(value) || value.length % 4 !== 0) return bad("is not valid base64");
      return new Uint8Array(Buffer.from(value, "base64"));
    }
    default:
      // kombu 5.3 itself refuses unknown markers; we keep the object so that custom types a
      // Python app registered reach the task code instead of failing the whole message.
      return undefined;
  }
}

/**
 * Unwraps kombu 5.3's typed values (`{"__type__": t, "__value__": v}`, exactly those two keys)
 * anywhere in a decoded body. Objects with any other key set are left alone, as kombu does.
 */
export function reviveKombuTypes(value: unknown, where = "body"): unknown {
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) value[i] = reviveKombuTypes(value[i], where);
    return value;
  }
  if (!isRecord(value)) return value;
  const keys = Object.keys(value);
  if (keys.length === 2 && "__type__" in value && "__value__" in value && typeof value["__type__"] === "string") {
    const revived = reviveTyped(value["__type__"], value["__value__"], where);
    if (revived !== undefined) return revived;
  }
  for (const k of keys) value[k] = reviveKombuTypes(value[k], where);
  return value;
}

// ---------------------------------------------------------------------------------------------
// Field readers: every header and body field is type-checked, with the field named on failure.

type Source = Record<string, unknown>;

function optString(src: Source, key: string, where: string): string | null {
  const v = src[key];
  if (v === undefined || v === null) return null;
  if (typeof v !== "string") decodeFail(`${where} "${key}" must be a string or null, got ${describe(v)}`);
  return v;
}

function optInt(src: Source, key: string, where: string, min: number): number | null {
  const v = src[key];
  if (v === undefined || v === null) return null;
  if (typeof v !== "number" || !Number.isSafeInteger(v) || v < min) {
    decodeFail(`${where} "${key}" must be an integer >= ${min} or null, got ${describe(v)}`);
  }
  return v;
}

function optBool(src: Source, key: string, where: string): boolean | null {
  const v = src[key];
  if (v === undefined || v === null) return null;
  if (typeof v !== "boolean") decodeFail(`${where} "${key}" must be a boolean, got ${describe(v)}`);
  return v;
}

function describe(v: unknown): string {
  if (v === undefined) return "nothing (it is missing)";
  if (v === null) return "null";
  if (Array.isArray(v)) return "an array";
  if (typeof v === "string") return `the string ${JSON.stringify(v.length > 40 ? `${v.slice(0, 40)}...` : v)}`;
  if (typeof v === "object") return "an object";
  if (typeof v === "bigint") return `the integer ${v}`;
  return `${typeof v} ${String(v)}`;
}

function readTimelimit(src: Source, where: string): [number | null, number | null] {
  const v = src["timelimit"];
  if (v === undefined || v === null) return [null, null];
  if (!Array.isArray(v) || v.length !== 2) decodeFail(`${where} "timelimit" must be [hard, soft], got ${describe(v)}`);
  const limit = (x: unknown, which: string): number | null => {
    if (x === null) return null;
    if (typeof x !== "number" || !Number.isFinite(x) || x < 0) {
      decodeFail(`${where} "timelimit" ${which} limit must be a non-negative number or null, got ${describe(x)}`);
    }
    return x;
  };
  return [limit(v[0], "hard"), limit(v[1], "soft")];
}

function readSignature(v: unknown, where: string): Signature {
  if (!isRecord(v)) decodeFail(`${where} must be a signature object, got ${describe(v)}`);
  const task = v["task"];
  if (typeof task !== "string" || task === "") decodeFail(`${where} has no task name`);
  const args = v["args"] ?? [];
  if (!Array.isArray(args)) decodeFail(`${where} "args" must be an array, got ${describe(args)}`);
  const kwargs = v["kwargs"] ?? {};
  if (!isRecord(kwargs)) decodeFail(`${where} "kwargs" must be an object, got ${describe(kwargs)}`);
  const options = v["options"] ?? {};
  if (!isRecord(options)) decodeFail(`${where} "options" must be an object, got ${describe(options)}`);
  const sig: Signature = {
    task,
    args,
    kwargs,
    options,
    subtaskType: optString(v, "subtask_type", where),
    immutable: optBool(v, "immutable", where) ?? false,
  };
  if ("chord_size" in v) sig.chordSize = optInt(v, "chord_size", where, 0);
  return sig;
}

function readSignatureList(v: unknown, where: string): Signature[] | null {
  if (v === undefined || v === null) return null;
  // Old producers sometimes send a lone signature where a list is expected; Celery copes too.
  if (isRecord(v)) return [readSignature(v, `${where}[0]`)];
  if (!Array.isArray(v)) decodeFail(`${where} must be a list of signatures, got ${describe(v)}`);
  return v.map((s, i) => readSignature(s, `${where}[${i}]`));
}

function readEmbed(src: Source, where: string): TaskEmbed {
  const chord = src["chord"];
  return {
    callbacks: readSignatureList(src["callbacks"], `${where} "callbacks"`),
    errbacks: readSignatureList(src["errbacks"], `${where} "errbacks"`),
    chain: readSignatureList(src["chain"], `${where} "chain"`),
    chord: chord === undefined || chord === null ? null : readSignature(chord, `${where} "chord"`),
  };
}

/** Header names this codec maps to typed fields; everything else lands in `headers.extra`. */
const KNOWN_HEADERS = new Set([
  "lang",
  "task",
  "id",
  "shadow",
  "eta",
  "expires",
  "group",
  "group_index",
  "retries",
  "timelimit",
  "root_id",
  "parent_id",
  "argsrepr",
  "kwargsrepr",
  "origin",
  "ignore_result",
  "replaced_task_nesting",
  "stamps",
]);

/**
 * Task fields Celery 5.2 takes from a dict body (`celery.worker.strategy.hybrid_to_proto2` and
 * `proto1_to_proto2`). `taskset` is protocol v1's name for the group id.
 */
const V1_BODY_FIELDS = [
  "lang",
  "task",
  "id",
  "root_id",
  "parent_id",
  "group",
  "shadow",
  "eta",
  "expires",
  "retries",
  "timelimit",
  "argsrepr",
  "kwargsrepr",
  "origin",
] as const;

function readHeaders(fields: Source, where: string, headers: Source): TaskHeaders {
  const task = fields["task"];
  if (typeof task !== "string" || task === "") decodeFail(`${where} "task" must be a non-empty string, got ${describe(task)}`);
  const id = fields["id"];
  if (typeof id !== "string" || id === "") decodeFail(`${where} "id" must be a non-empty string, got ${describe(id)}`);
  const stamps = fields["stamps"];
  if (stamps !== undefined && stamps !== null && !isRecord(stamps)) decodeFail(`${where} "stamps" must be an object, got ${describe(stamps)}`);
  const extra: Record<string, unknown> = {};
  for (const key of Object.keys(headers)) {
    if (!KNOWN_HEADERS.has(key)) extra[key] = headers[key];
  }
  return {
    lang: optString(fields, "lang", where) ?? "py",
    task,
    id,
    shadow: optString(fields, "shadow", where),
    eta: optString(fields, "eta", where),
    expires: optString(fields, "expires", where),
    group: optString(fields, "group", where),
    groupIndex: optInt(fields, "group_index", where, 0),
    retries: optInt(fields, "retries", where, 0) ?? 0,
    timelimit: readTimelimit(fields, where),
    rootId: optString(fields, "root_id", where),
    parentId: optString(fields, "parent_id", where),
    argsrepr: optString(fields, "argsrepr", where),
    kwargsrepr: optString(fields, "kwargsrepr", where),
    origin: optString(fields, "origin", where),
    ignoreResult: optBool(fields, "ignore_result", where) ?? false,
    replacedTaskNesting: optInt(fields, "replaced_task_nesting", where, 0) ?? 0,
    stamps: (stamps as Record<string, unknown> | null | undefined) ?? {},
    extra,
  };
}

function readBodyText(message: WireMessage): string {
  if (!(message.body instanceof Uint8Array)) decodeFail("message body is not bytes");
  const encoding = message.contentEncoding.toLowerCase();
  if (encoding !== "utf-8" && encoding !== "utf8" && encoding !== "") {
    decodeFail(`unsupported content encoding ${JSON.stringify(message.contentEncoding)} for JSON (expected utf-8)`);
  }
  try {
    return utf8Strict.decode(message.body);
  } catch {
    return decodeFail("message body is not valid UTF-8");
  }
}

function decodeMessage(message: WireMessage): TaskEnvelope {
  const rawHeaders: unknown = message.headers;
  if (rawHeaders !== undefined && rawHeaders !== null && !isRecord(rawHeaders)) decodeFail("message headers are not an object");
  const headers: Source = (rawHeaders as Source | null | undefined) ?? {};
  if (headers["compression"] !== undefined && headers["compression"] !== null) {
    decodeFail(`body is compressed (${describe(headers["compression"])}); decode it through decodeTask, which decompresses`);
  }
  const text = readBodyText(message);
  let body = pyParse(text);
  if (text.includes('"__type__"')) body = reviveKombuTypes(body);

  let fields: Source;
  let args: unknown;
  let kwargs: unknown;
  let embed: TaskEmbed;
  let where: string;
  if (Array.isArray(body)) {
    // Protocol v2: [args, kwargs, embed]; the embed is optional in practice (hand-made messages).
    if (body.length !== 2 && body.length !== 3) decodeFail(`protocol v2 body must be [args, kwargs, embed], got an array of ${body.length}`);
    [args, kwargs] = body;
    const rawEmbed: unknown = body[2];
    if (rawEmbed !== undefined && rawEmbed !== null && !isRecord(rawEmbed)) decodeFail(`protocol v2 body embed must be an object, got ${describe(rawEmbed)}`);
    embed = readEmbed((rawEmbed as Source | null | undefined) ?? {}, "embed");
    fields = headers;
    where = "header";
  } else if (isRecord(body)) {
    // Protocol v1, or a hybrid with headers too. Celery's worker takes an object body for one
    // only when it holds "args" (celery/worker/strategy.py `task_message_handler`); any other
    // object (e.g. `{"x": 1}` under v2 headers) is not a task body, and reading its missing
    // args as [] would run the task with arguments nobody sent.
    if (!("args" in body)) decodeFail(`body is an object without "args": protocol v2 bodies are [args, kwargs, embed], protocol v1 objects carry "args"`);
    // Like Celery's hybrid_to_proto2, fields come from the body and any header present
    // overrides them.
    fields = {};
    for (const k of V1_BODY_FIELDS) if (k in body) fields[k] = body[k];
    if ((fields["group"] ?? null) === null && "taskset" in body) fields["group"] = body["taskset"];
    Object.assign(fields, headers);
    args = body["args"] ?? [];
    kwargs = body["kwargs"] ?? {};
    // Celery reads callbacks, errbacks and chord from a dict body, never a chain.
    embed = readEmbed({ ...body, chain: null }, "v1 body");
    where = "v1 field";
  } else {
    return decodeFail(`body must be a protocol v2 array or a protocol v1 object, got ${describe(body)}`);
  }
  if (!Array.isArray(args)) decodeFail(`task args must be an array, got ${describe(args)}`);
  if (!isRecord(kwargs)) decodeFail(`task kwargs must be an object, got ${describe(kwargs)}`);

  const taskHeaders = readHeaders(fields, where, headers);
  const p = message.properties ?? {};
  const prop = <T>(key: keyof typeof p, type: "string" | "number"): T | undefined => {
    const v = p[key];
    if (v === undefined) return undefined;
    if (typeof v !== type) decodeFail(`property "${key}" must be a ${type}, got ${describe(v)}`);
    return v as T;
  };
  return createEnvelope({
    task: taskHeaders.task,
    id: taskHeaders.id,
    args,
    kwargs,
    headers: taskHeaders,
    properties: {
      correlationId: prop<string>("correlationId", "string") ?? taskHeaders.id,
      replyTo: prop<string>("replyTo", "string") ?? "",
      contentType: message.contentType,
      contentEncoding: message.contentEncoding,
      deliveryMode: prop<number>("deliveryMode", "number") ?? 2,
      priority: prop<number>("priority", "number") ?? null,
      expiration: prop<string>("expiration", "string") ?? null,
    },
    embed,
  });
}

// ---------------------------------------------------------------------------------------------
// Encoding.

function signatureToWire(s: Signature): Record<string, unknown> {
  // Key order of `dict(celery.canvas.Signature)` in Celery 5.2.
  const wire: Record<string, unknown> = {
    task: s.task,
    args: s.args,
    kwargs: s.kwargs,
    options: s.options,
    subtask_type: s.subtaskType,
    immutable: s.immutable,
  };
  if (s.chordSize !== undefined) wire["chord_size"] = s.chordSize;
  return wire;
}

/** Protocol v2 headers in `as_task_v2`'s order; extra headers follow, as Celery appends them. */
export function headersToWire(h: TaskHeaders): Record<string, unknown> {
  const headers: Record<string, unknown> = {
    lang: h.lang,
    task: h.task,
    id: h.id,
    shadow: h.shadow,
    eta: h.eta,
    expires: h.expires,
    group: h.group,
    group_index: h.groupIndex,
    retries: h.retries,
    timelimit: [h.timelimit[0], h.timelimit[1]],
    root_id: h.rootId,
    parent_id: h.parentId,
    argsrepr: h.argsrepr,
    kwargsrepr: h.kwargsrepr,
    origin: h.origin,
    ignore_result: h.ignoreResult,
  };
  // Celery 5.3+ headers: written only when set, so Celery 5.2 sees exactly its own header set.
  if (h.replacedTaskNesting !== 0) headers["replaced_task_nesting"] = h.replacedTaskNesting;
  if (Object.keys(h.stamps).length > 0) headers["stamps"] = h.stamps;
  for (const [key, value] of Object.entries(h.extra)) {
    if (!KNOWN_HEADERS.has(key) && key !== "compression") headers[key] = value;
  }
  return headers;
}

/** Creates the codec; `dialect` picks how Dates and bytes in args/kwargs are written. */
export function createCeleryJsonCodec(options: CeleryJsonCodecOptions = {}): Codec {
  const dialect = options.dialect ?? "kombu52";
  if (dialect !== "kombu52" && dialect !== "kombu53") {
    throw new CeleriacError("invalid_argument", `unknown kombu JSON dialect ${JSON.stringify(dialect)} (expected "kombu52" or "kombu53")`);
  }
  const encodeSpecial = kombuValueEncoder(dialect);
  return {
    contentType: CONTENT_TYPE,
    encode(e: TaskEnvelope): WireMessage {
      const body = [
        e.args,
        e.kwargs,
        {
          callbacks: e.embed.callbacks?.map(signatureToWire) ?? null,
          errbacks: e.embed.errbacks?.map(signatureToWire) ?? null,
          chain: e.embed.chain?.map(signatureToWire) ?? null,
          chord: e.embed.chord ? signatureToWire(e.embed.chord) : null,
        },
      ];
      const p = e.properties;
      return {
        body: utf8.encode(pyStringify(body, { encodeSpecial })),
        contentType: CONTENT_TYPE,
        contentEncoding: "utf-8",
        headers: headersToWire(e.headers),
        properties: toWireProperties(p),
      };
    },
    decode(message: WireMessage): TaskEnvelope {
      try {
        return decodeMessage(message);
      } catch (err) {
        // Belt and braces: whatever slipped past validation still surfaces as decode_failed.
        if (err instanceof CeleriacError && err.code === "decode_failed") throw err;
        throw new CeleriacError("decode_failed", `malformed task message: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
      }
    },
  };
}

/** The default codec: writes the kombu 5.2 dialect that Celery 5.2.6 (Debian) reads natively. */
export const celeryJsonCodec: Codec = createCeleryJsonCodec();
