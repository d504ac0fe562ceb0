/**
 * The `application/x-protobuf` codec: the whole TaskEnvelope as one `celeriac.v1.TaskEnvelope`
 * message (proto/celeriac/v1/envelope.proto). Python Celery cannot read it; it is for Celeriac to
 * Celeriac traffic (and any other language that compiles the .proto). It keeps values JSON cannot
 * (bigint, Uint8Array, Date, NaN/Infinity/-0, None vs missing), and the body is a third smaller
 * than the same information as Celery JSON headers + body.
 *
 * The body is authoritative. Only `lang`, `task` and `id` are copied into `WireMessage.headers`,
 * under Celery's wire names, for brokers, routing and tools that inspect headers; decode ignores
 * them.
 */
import protobuf from "protobufjs/light.js";
import type { ResultMeta, Signature, TaskEmbed, TaskEnvelope, TaskState } from "../envelope.js";
import { CeleriacError } from "../errors.js";
import {
  messages,
  type Entry as PbEntry,
  type Int64,
  type ResultMeta as PbResultMeta,
  type Signature as PbSignature,
  type SignatureList as PbSignatureList,
  type TaskEnvelope as PbTaskEnvelope,
  type TaskEnvelope_Embed as PbEmbed,
  type TaskEnvelope_Headers as PbHeaders,
  type TaskEnvelope_Properties as PbProperties,
  type Value as PbValue,
} from "../gen/celeriac/v1/envelope.js";
import { toWireProperties, type WireMessage } from "../wire.js";
import type { Codec } from "./codec.js";

export const PROTOBUF_CONTENT_TYPE = "application/x-protobuf";
export const PROTOBUF_CONTENT_ENCODING = "binary";

// ---------------------------------------------------------------------------------------------
// Dynamic values

const NULL: PbValue = { nullValue: 0 };
const MS_PER_S = 1000;
/**
 * Most lists/dicts nested in one value. protobufjs, like protoc-generated parsers, refuses messages
 * nested more than 100 deep; each list costs 2 message levels and each dict 3 (Value, MapValue,
 * Entry), and a value inside a signature's kwargs already sits 5 levels down. 30 keeps every value
 * the encoder writes readable by any protobuf reader with the default limit.
 */
export const MAX_VALUE_NESTING = 30;
/** Date's range is +-8.64e15 ms; a timestamp outside it cannot become a Date. */
const MAX_DATE_SECONDS = 8.64e12;

function invalid(message: string): never {
  throw new CeleriacError("invalid_argument", `protobuf encode: ${message}`);
}

function malformed(message: string): never {
  throw new CeleriacError("decode_failed", `protobuf body is malformed: ${message}`);
}

function isPlainObject(v: object): boolean {
  const proto: unknown = Object.getPrototypeOf(v);
  return proto === Object.prototype || proto === null;
}

/**
 * A JS value as a `Value`, or undefined for what JSON would drop (undefined, functions,
 * symbols): lists turn those into null and dicts leave the key out, as JSON.stringify does.
 * `path` holds the containers being encoded, to refuse cycles with a clear message.
 */
function toValue(v: unknown, path: Set<object>): PbValue | undefined {
  switch (typeof v) {
    case "string":
      return { stringValue: v };
    case "number":
      // Only integers a JS number holds exactly go to int_value; -0 would lose its sign there.
      if (Number.isSafeInteger(v) && !Object.is(v, -0)) return { intValue: v };
      return { doubleValue: v };
    case "boolean":
      return { boolValue: v };
    case "bigint":
      // Always the arbitrary-precision form, so a bigint reads back as a bigint even when small.
      return { bigIntValue: v.toString() };
    case "undefined":
    case "function":
    case "symbol":
      return undefined;
    case "object":
      break;
  }
  if (v === null) return NULL;
  const obj = v as object;
  if (obj instanceof Uint8Array) return { bytesValue: obj };
  if (obj instanceof Date) {
    const ms = obj.getTime();
    if (Number.isNaN(ms)) invalid("cannot encode an invalid Date");
    const seconds = Math.floor(ms / MS_PER_S);
    return { timestampValue: { seconds, nanos: (ms - seconds * MS_PER_S) * 1_000_000 } };
  }
  if (path.has(obj)) invalid("cannot encode a circular structure");
  if (path.size >= MAX_VALUE_NESTING) invalid(`values nest deeper than ${MAX_VALUE_NESTING} lists/dicts`);
  path.add(obj);
  try {
    if (Array.isArray(obj)) {
      return { listValue: { values: obj.map((item) => toValue(item, path) ?? NULL) } };
    }
    if (isPlainObject(obj)) return { mapValue: { entries: toEntries(obj as Record<string, unknown>, path) } };
    // Class instances with toJSON (e.g. Decimal libraries) encode as JSON would encode them.
    const toJSON = (obj as { toJSON?: unknown }).toJSON;
    if (typeof toJSON === "function") return toValue(toJSON.call(obj), path);
    if (ArrayBuffer.isView(obj) || obj instanceof Map || obj instanceof Set) {
      invalid(`cannot encode a ${obj.constructor.name}; use a Uint8Array, an array or a plain object`);
    }
    // Other objects: their own enumerable properties, like JSON.
    return { mapValue: { entries: toEntries(obj as Record<string, unknown>, path) } };
  } finally {
    path.delete(obj);
  }
}

function toEntries(record: Record<string, unknown>, path: Set<object> = new Set()): PbEntry[] {
  const entries: PbEntry[] = [];
  for (const key of Object.keys(record)) {
    const value = toValue(record[key], path);
    if (value !== undefined) entries.push({ key, value });
  }
  return entries;
}

function toValues(list: readonly unknown[]): PbValue[] {
  const path = new Set<object>();
  return list.map((item) => toValue(item, path) ?? NULL);
}

/** int64 as decoded (a Long, or a number when protobufjs has no Long) to number or bigint. */
function fromInt64(v: Int64 | null | undefined): number | bigint {
  if (v === null || v === undefined) return 0;
  if (typeof v === "number") return v;
  if (typeof v === "string") return toSafe(BigInt(v));
  const { low, high } = v;
  // Fast paths: values that fit in 32 bits, the common case.
  if (high === 0 && low >= 0) return low;
  if (high === -1 && low < 0) return low;
  return toSafe(BigInt.asIntN(64, (BigInt(high >>> 0) << 32n) | BigInt(low >>> 0)));
}

function toSafe(b: bigint): number | bigint {
  return b >= BigInt(Number.MIN_SAFE_INTEGER) && b <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(b) : b;
}

const BIG_INT = /^-?[0-9]+$/;

function parseBigInt(text: string): bigint {
  if (!BIG_INT.test(text)) malformed(`big_int_value ${JSON.stringify(text.slice(0, 40))} is not a decimal integer`);
  return BigInt(text);
}

function toDate(secondsIn: number | bigint, nanos: number): Date {
  const seconds = Number(secondsIn);
  if (!(Math.abs(seconds) <= MAX_DATE_SECONDS)) malformed(`timestamp seconds ${seconds} is outside the Date range`);
  if (!Number.isInteger(nanos) || nanos < 0 || nanos > 999_999_999) malformed(`timestamp nanos ${nanos} is outside 0..999999999`);
  // Date has millisecond precision; finer nanos are truncated.
  return new Date(seconds * MS_PER_S + Math.floor(nanos / 1_000_000));
}

function fromValue(v: PbValue | null | undefined): unknown {
  if (v === null || v === undefined) malformed("a value is missing");
  switch (v.kind) {
    case "nullValue":
      return null;
    case "stringValue":
      return v.stringValue;
    case "intValue":
      return fromInt64(v.intValue);
    case "doubleValue":
      return v.doubleValue;
    case "boolValue":
      return v.boolValue;
    case "bigIntValue":
      return parseBigInt(v.bigIntValue ?? "");
    case "bytesValue":
      // A copy: protobufjs hands out views into the whole received buffer.
      return new Uint8Array(v.bytesValue ?? new Uint8Array(0));
    case "timestampValue":
      return toDate(fromInt64(v.timestampValue?.seconds), v.timestampValue?.nanos ?? 0);
    case "listValue":
      return (v.listValue?.values ?? []).map(fromValue);
    case "mapValue":
      return fromEntries(v.mapValue?.entries);
    default:
      return malformed("a value has no kind set");
  }
}

function fromEntries(entries: readonly PbEntry[] | null | undefined): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  if (!entries) return out;
  for (const e of entries) {
    const key = e.key ?? "";
    setKey(out, key, fromValue(e.value));
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Envelope

function int32(name: string, v: number): number {
  if (!Number.isInteger(v) || v < -2147483648 || v > 2147483647) invalid(`${name} must be a 32-bit integer, got ${v}`);
  return v;
}

function toSignature(s: Signature): PbSignature {
  const out: PbSignature = {
    task: s.task,
    args: toValues(s.args),
    kwargs: toEntries(s.kwargs),
    options: toEntries(s.options),
    subtaskType: s.subtaskType,
    immutable: s.immutable,
  };
  if (s.chordSize !== undefined) out.chordSize = { value: s.chordSize === null ? null : int32("chord_size", s.chordSize) };
  return out;
}

function fromSignature(s: PbSignature): Signature {
  const out: Signature = {
    task: s.task ?? "",
    args: (s.args ?? []).map(fromValue),
    kwargs: fromEntries(s.kwargs),
    options: fromEntries(s.options),
    subtaskType: s.subtaskType ?? null,
    immutable: s.immutable ?? false,
  };
  if (s.chordSize) out.chordSize = s.chordSize.value ?? null;
  return out;
}

function toSignatureList(list: Signature[] | null): PbSignatureList | null {
  return list === null ? null : { items: list.map(toSignature) };
}

function fromSignatureList(list: PbSignatureList | null | undefined): Signature[] | null {
  return list ? (list.items ?? []).map(fromSignature) : null;
}

/** The envelope as a `celeriac.v1.TaskEnvelope` plain object (defaults left out to save bytes). */
export function toProtoEnvelope(e: TaskEnvelope): PbTaskEnvelope {
  const h = e.headers;
  const p = e.properties;
  const [hard, soft] = h.timelimit;
  const embed: TaskEmbed = e.embed;
  return {
    headers: {
      lang: h.lang,
      task: h.task,
      id: h.id,
      shadow: h.shadow,
      eta: h.eta,
      expires: h.expires,
      group: h.group,
      groupIndex: h.groupIndex === null ? null : int32("group_index", h.groupIndex),
      retries: int32("retries", h.retries),
      timelimit: hard === null && soft === null ? null : { hard, soft },
      rootId: h.rootId,
      parentId: h.parentId,
      argsrepr: h.argsrepr,
      kwargsrepr: h.kwargsrepr,
      origin: h.origin,
      ignoreResult: h.ignoreResult,
      replacedTaskNesting: int32("replaced_task_nesting", h.replacedTaskNesting),
      stamps: toEntries(h.stamps),
      extra: toEntries(h.extra),
    },
    properties: {
      correlationId: p.correlationId,
      replyTo: p.replyTo,
      contentType: p.contentType,
      contentEncoding: p.contentEncoding,
      deliveryMode: int32("delivery_mode", p.deliveryMode),
      priority: p.priority === null ? null : int32("priority", p.priority),
      expiration: p.expiration,
    },
    args: toValues(e.args),
    kwargs: toEntries(e.kwargs),
    embed:
      embed.callbacks === null && embed.errbacks === null && embed.chain === null && embed.chord === null
        ? null
        : {
            callbacks: toSignatureList(embed.callbacks),
            errbacks: toSignatureList(embed.errbacks),
            chain: toSignatureList(embed.chain),
            chord: embed.chord === null ? null : toSignature(embed.chord),
          },
  };
}

/** Reads a decoded `celeriac.v1.TaskEnvelope`; throws decode_failed when it is not a task. */
export function fromProtoEnvelope(m: PbTaskEnvelope): TaskEnvelope {
  return assembleEnvelope(m.headers, m.properties, (m.args ?? []).map(fromValue), fromEntries(m.kwargs), m.embed);
}

function assembleEnvelope(
  h: PbHeaders | null | undefined,
  p: PbProperties | null | undefined,
  args: unknown[],
  kwargs: Record<string, unknown>,
  embed: PbEmbed | null | undefined,
): TaskEnvelope {
  if (!h) malformed("TaskEnvelope has no headers");
  if (!h.task) malformed("headers.task is missing or empty");
  if (!h.id) malformed("headers.id is missing or empty");
  const tl = h.timelimit;
  return {
    headers: {
      lang: h.lang ?? "",
      task: h.task,
      id: h.id,
      shadow: h.shadow ?? null,
      eta: h.eta ?? null,
      expires: h.expires ?? null,
      group: h.group ?? null,
      groupIndex: h.groupIndex ?? null,
      retries: h.retries ?? 0,
      timelimit: [tl?.hard ?? null, tl?.soft ?? null],
      rootId: h.rootId ?? null,
      parentId: h.parentId ?? null,
      argsrepr: h.argsrepr ?? null,
      kwargsrepr: h.kwargsrepr ?? null,
      origin: h.origin ?? null,
      ignoreResult: h.ignoreResult ?? false,
      replacedTaskNesting: h.replacedTaskNesting ?? 0,
      stamps: fromEntries(h.stamps),
      extra: fromEntries(h.extra),
    },
    properties: {
      correlationId: p?.correlationId ?? "",
      replyTo: p?.replyTo ?? "",
      contentType: p?.contentType ?? "",
      contentEncoding: p?.contentEncoding ?? "",
      deliveryMode: p?.deliveryMode ?? 0,
      priority: p?.priority ?? null,
      expiration: p?.expiration ?? null,
    },
    args,
    kwargs,
    embed: {
      callbacks: fromSignatureList(embed?.callbacks),
      errbacks: fromSignatureList(embed?.errbacks),
      chain: fromSignatureList(embed?.chain),
      chord: embed?.chord ? fromSignature(embed.chord) : null,
    },
  };
}

// ---------------------------------------------------------------------------------------------
// Fast path for reading dynamic values
//
// protobufjs decodes every Value, ListValue, MapValue and Entry into a message object (with a
// oneof setter and unknown-field bookkeeping) that fromValue then walks again; for args and kwargs
// that is most of the decode time. These readers go from bytes straight to JS values with
// protobufjs's Reader, and follow the generated decoders' rules: length and wire-type checks,
// unknown fields skipped, the same nesting limit, the last member of a oneof wins. Headers,
// properties and the embed still go through the generated decoders. A test checks both paths
// agree.

const { Reader } = protobuf;
type PbReader = InstanceType<typeof Reader>;

/** Generated decoders also take a nesting depth and a message to merge into. */
type SubDecode<T> = (r: PbReader, length: number, endGroup: undefined, depth: number, into?: T) => T;
function subDecoder<T>(type: protobuf.Type): SubDecode<T> {
  // Called as a method: until its first use, Type#decode is a stub that builds the decoder.
  return (r, length, endGroup, depth, into) => (type.decode as unknown as SubDecode<T>).call(type, r, length, endGroup, depth, into);
}
const decodeHeaders = subDecoder<PbHeaders>(messages.TaskEnvelope_Headers.type);
const decodeProperties = subDecoder<PbProperties>(messages.TaskEnvelope_Properties.type);
const decodeEmbed = subDecoder<PbEmbed>(messages.TaskEnvelope_Embed.type);

// Tags below are written as numbers, (field << 3) | wire type, with the field and wire type
// (VARINT 0, I64 1, LEN 2) in a comment: switch cases on literals stay cheap.

/** Bounds the reader to the next `length` bytes; returns the outer limit to restore. */
function enter(r: PbReader, length: number, depth: number): number {
  if (depth > Reader.recursionLimit) throw new Error("max depth exceeded");
  const end = r.pos + length;
  if (end > r.len) throw new RangeError("index out of range");
  const outer = r.len;
  r.len = end;
  return outer;
}

function leave(r: PbReader, outer: number): void {
  r.len = outer;
}

/** Kinds a Value can hold, to apply protobuf's merge rule when a member repeats. */
const enum Kind {
  None,
  Scalar,
  List,
  Map,
  Timestamp,
}

function readValue(r: PbReader, length: number, depth: number): unknown {
  const outer = enter(r, length, depth);
  let kind = Kind.None;
  let out: unknown;
  let seconds: number | bigint = 0;
  let nanos = 0;
  while (r.pos < r.len) {
    const t = r.tag();
    switch (t) {
      case 8 /* field 1, VARINT */:
        r.int32();
        out = null;
        kind = Kind.Scalar;
        continue;
      case 16 /* field 2, VARINT */:
        out = r.bool();
        kind = Kind.Scalar;
        continue;
      case 25 /* field 3, I64 */:
        out = r.double();
        kind = Kind.Scalar;
        continue;
      case 32 /* field 4, VARINT */:
        out = fromInt64(r.sint64());
        kind = Kind.Scalar;
        continue;
      case 42 /* field 5, LEN */:
        out = parseBigInt(r.stringVerify());
        kind = Kind.Scalar;
        continue;
      case 50 /* field 6, LEN */:
        out = r.stringVerify();
        kind = Kind.Scalar;
        continue;
      case 58 /* field 7, LEN */:
        // A copy: the reader hands out a view into the whole received buffer.
        out = new Uint8Array(r.bytes());
        kind = Kind.Scalar;
        continue;
      case 66 /* field 8, LEN */: {
        if (kind !== Kind.Timestamp) {
          seconds = 0;
          nanos = 0;
        }
        const ts = readTimestamp(r, r.size(), depth + 1, seconds, nanos);
        seconds = ts.seconds;
        nanos = ts.nanos;
        kind = Kind.Timestamp;
        continue;
      }
      case 74 /* field 9, LEN */:
        out = readList(r, r.size(), depth + 1, kind === Kind.List ? (out as unknown[]) : []);
        kind = Kind.List;
        continue;
      case 82 /* field 10, LEN */:
        out = readMap(r, r.size(), depth + 1, kind === Kind.Map ? (out as Record<string, unknown>) : {});
        kind = Kind.Map;
        continue;
      default:
        r.skipType(t & 7, depth, t >>> 3);
    }
  }
  leave(r, outer);
  if (kind === Kind.None) malformed("a value has no kind set");
  if (kind === Kind.Timestamp) return toDate(seconds, nanos);
  return out;
}

function readTimestamp(r: PbReader, length: number, depth: number, seconds: number | bigint, nanos: number): { seconds: number | bigint; nanos: number } {
  const outer = enter(r, length, depth);
  while (r.pos < r.len) {
    const t = r.tag();
    if (t === 8 /* field 1, VARINT */) seconds = fromInt64(r.int64());
    else if (t === 16 /* field 2, VARINT */) nanos = r.int32();
    else r.skipType(t & 7, depth, t >>> 3);
  }
  leave(r, outer);
  return { seconds, nanos };
}

function readList(r: PbReader, length: number, depth: number, into: unknown[]): unknown[] {
  const outer = enter(r, length, depth);
  while (r.pos < r.len) {
    const t = r.tag();
    if (t === 10 /* field 1, LEN */) into.push(readValue(r, r.size(), depth + 1));
    else r.skipType(t & 7, depth, t >>> 3);
  }
  leave(r, outer);
  return into;
}

function readMap(r: PbReader, length: number, depth: number, into: Record<string, unknown>): Record<string, unknown> {
  const outer = enter(r, length, depth);
  while (r.pos < r.len) {
    const t = r.tag();
    if (t === 10 /* field 1, LEN */) readEntry(r, r.size(), depth + 1, into);
    else r.skipType(t & 7, depth, t >>> 3);
  }
  leave(r, outer);
  return into;
}

function readEntry(r: PbReader, length: number, depth: number, into: Record<string, unknown>): void {
  const outer = enter(r, length, depth);
  let key = "";
  // Where the value field's bytes are; it is read after the loop, once the whole entry is known.
  let valueAt = -1;
  let valueLength = 0;
  let repeated: Uint8Array[] | null = null;
  while (r.pos < r.len) {
    const t = r.tag();
    if (t === 10 /* field 1, LEN */) key = r.stringVerify();
    else if (t === 18 /* field 2, LEN */) {
      const size = r.size();
      if (r.pos + size > r.len) throw new RangeError("index out of range");
      if (valueAt >= 0) {
        // A repeated message field merges into the first; protobuf defines that merge as
        // parsing the concatenated bytes, so that is what happens here.
        repeated ??= [r.buf.subarray(valueAt, valueAt + valueLength)];
        repeated.push(r.buf.subarray(r.pos, r.pos + size));
      }
      valueAt = r.pos;
      valueLength = size;
      r.pos += size;
    } else r.skipType(t & 7, depth, t >>> 3);
  }
  if (valueAt < 0) malformed("a value is missing");
  let value: unknown;
  if (repeated) {
    const joined = new Uint8Array(repeated.reduce((n, b) => n + b.length, 0));
    let at = 0;
    for (const b of repeated) {
      joined.set(b, at);
      at += b.length;
    }
    value = readValue(Reader.create(joined), joined.length, depth + 1);
  } else {
    const after = r.pos;
    r.pos = valueAt;
    value = readValue(r, valueLength, depth + 1);
    r.pos = after;
  }
  leave(r, outer);
  setKey(into, key, value);
}

function setKey(into: Record<string, unknown>, key: string, value: unknown): void {
  // A plain assignment of "__proto__" would set the prototype instead of a key.
  if (key === "__proto__") Object.defineProperty(into, key, { value, enumerable: true, writable: true, configurable: true });
  else into[key] = value;
}

/** Decodes a TaskEnvelope body, reading args and kwargs with the fast readers. */
function readEnvelope(bytes: Uint8Array): TaskEnvelope {
  const r = Reader.create(bytes);
  let headers: PbHeaders | undefined;
  let properties: PbProperties | undefined;
  let embed: PbEmbed | undefined;
  const args: unknown[] = [];
  const kwargs: Record<string, unknown> = {};
  while (r.pos < r.len) {
    const t = r.tag();
    switch (t) {
      case 10 /* field 1, LEN */:
        headers = decodeHeaders(r, r.size(), undefined, 1, headers);
        continue;
      case 18 /* field 2, LEN */:
        properties = decodeProperties(r, r.size(), undefined, 1, properties);
        continue;
      case 26 /* field 3, LEN */:
        args.push(readValue(r, r.size(), 1));
        continue;
      case 34 /* field 4, LEN */:
        readEntry(r, r.size(), 1, kwargs);
        continue;
      case 42 /* field 5, LEN */:
        embed = decodeEmbed(r, r.size(), undefined, 1, embed);
        continue;
      default:
        r.skipType(t & 7, 0, t >>> 3);
    }
  }
  return assembleEnvelope(headers, properties, args, kwargs, embed);
}

// ---------------------------------------------------------------------------------------------
// Fast path for writing the envelope
//
// protobufjs's Writer records one operation per field and copies them all at finish(), and the
// generated encoder needs the intermediate objects toProtoEnvelope builds; together that made
// encoding twice as slow as JSON.stringify. writeEnvelope writes the same bytes directly from the
// TaskEnvelope into one growing buffer, reserving one byte for each nested message's length and
// moving the message up in the rare case the length needs more. A test checks that its output is
// byte for byte what the generated encoder writes.

const textEncoder = new TextEncoder();

class ByteWriter {
  buf = new Uint8Array(4096);
  view = new DataView(this.buf.buffer);
  pos = 0;

  ensure(n: number): void {
    if (this.pos + n <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < this.pos + n) size *= 2;
    const grown = new Uint8Array(size);
    grown.set(this.buf.subarray(0, this.pos));
    this.buf = grown;
    this.view = new DataView(grown.buffer);
  }

  /** An unsigned 32-bit varint (also tags). */
  varint(v: number): void {
    this.ensure(5);
    while (v > 127) {
      this.buf[this.pos++] = (v & 127) | 128;
      v >>>= 7;
    }
    this.buf[this.pos++] = v;
  }

  /** A 64-bit varint from its two unsigned 32-bit halves. */
  varint64(lo: number, hi: number): void {
    this.ensure(10);
    while (hi) {
      this.buf[this.pos++] = (lo & 127) | 128;
      lo = ((lo >>> 7) | (hi << 25)) >>> 0;
      hi >>>= 7;
    }
    this.varint(lo);
  }

  /** protobuf int32: negative values are sign-extended to 10 bytes. */
  int32(v: number): void {
    if (v >= 0) this.varint(v);
    else this.varint64(v >>> 0, 0xffffffff);
  }

  /** protobuf int64 from a safe integer. */
  int64(v: number): void {
    const [lo, hi] = split64(v);
    this.varint64(lo, hi);
  }

  /** protobuf sint64 (zigzag) from a safe integer. */
  sint64(v: number): void {
    if (v >= -0x40000000 && v < 0x40000000) {
      this.varint(((v << 1) ^ (v >> 31)) >>> 0);
      return;
    }
    const [lo, hi] = split64(v);
    const mask = hi >> 31;
    this.varint64(((lo << 1) ^ mask) >>> 0, (((hi << 1) | (lo >>> 31)) ^ mask) >>> 0);
  }

  double(v: number): void {
    this.ensure(8);
    this.view.setFloat64(this.pos, v, true);
    this.pos += 8;
  }

  string(s: string): void {
    const n = s.length;
    // Short ASCII, the common case, without crossing into TextEncoder.
    if (n < 128) {
      this.ensure(n + 1);
      const buf = this.buf;
      const start = this.pos + 1;
      let i = 0;
      for (; i < n; i++) {
        const c = s.charCodeAt(i);
        if (c >= 128) break;
        buf[start + i] = c;
      }
      if (i === n) {
        buf[this.pos] = n;
        this.pos = start + n;
        return;
      }
    }
    // UTF-8 takes at most 3 bytes per UTF-16 unit; reserve the varint for that, then close up.
    const reserve = varintSize(n * 3);
    this.ensure(reserve + n * 3);
    const { written } = textEncoder.encodeInto(s, this.buf.subarray(this.pos + reserve));
    this.closeLength(this.pos, reserve, written);
  }

  bytes(b: Uint8Array): void {
    this.varint(b.length);
    this.ensure(b.length);
    this.buf.set(b, this.pos);
    this.pos += b.length;
  }

  /** Starts a nested message field; returns the mark to pass to `end`. */
  begin(tag: number): number {
    this.varint(tag);
    this.ensure(1);
    return this.pos++;
  }

  end(mark: number): void {
    this.closeLength(mark, 1, this.pos - mark - 1);
  }

  /** Writes `length` at `at`, where `reserved` bytes were kept for it before the content. */
  private closeLength(at: number, reserved: number, length: number): void {
    const size = varintSize(length);
    if (size !== reserved) {
      this.ensure(size - reserved);
      this.buf.copyWithin(at + size, at + reserved, at + reserved + length);
    }
    this.pos = at;
    this.varint(length);
    this.pos = at + size + length;
  }

  take(): Uint8Array {
    return this.buf.slice(0, this.pos);
  }
}

function varintSize(v: number): number {
  return v < 0x80 ? 1 : v < 0x4000 ? 2 : v < 0x200000 ? 3 : v < 0x10000000 ? 4 : 5;
}

/** A safe integer as the low and high unsigned 32-bit halves of its 64-bit two's complement. */
function split64(v: number): [number, number] {
  const abs = Math.abs(v);
  let lo = abs >>> 0;
  let hi = Math.floor(abs / 4294967296) >>> 0;
  if (v < 0) {
    hi = ~hi >>> 0;
    lo = ~lo >>> 0;
    if (++lo > 4294967295) {
      lo = 0;
      hi = (hi + 1) >>> 0;
    }
  }
  return [lo, hi];
}

/** Writes `v` as the body of a Value; false (and nothing written) for what JSON drops. */
function writeValueBody(w: ByteWriter, v: unknown, path: Set<object>): boolean {
  switch (typeof v) {
    case "string":
      w.varint(50 /* field 6 string_value, LEN */);
      w.string(v);
      return true;
    case "number":
      if (Number.isSafeInteger(v) && !Object.is(v, -0)) {
        w.varint(32 /* field 4 int_value, VARINT */);
        w.sint64(v);
      } else {
        w.varint(25 /* field 3 double_value, I64 */);
        w.double(v);
      }
      return true;
    case "boolean":
      w.varint(16 /* field 2 bool_value, VARINT */);
      w.varint(v ? 1 : 0);
      return true;
    case "bigint":
      w.varint(42 /* field 5 big_int_value, LEN */);
      w.string(v.toString());
      return true;
    case "undefined":
    case "function":
    case "symbol":
      return false;
    case "object":
      break;
  }
  if (v === null) {
    w.varint(8 /* field 1 null_value, VARINT */);
    w.varint(0);
    return true;
  }
  const obj = v as object;
  if (obj instanceof Uint8Array) {
    w.varint(58 /* field 7 bytes_value, LEN */);
    w.bytes(obj);
    return true;
  }
  if (obj instanceof Date) {
    const ms = obj.getTime();
    if (Number.isNaN(ms)) invalid("cannot encode an invalid Date");
    const seconds = Math.floor(ms / MS_PER_S);
    const nanos = (ms - seconds * MS_PER_S) * 1_000_000;
    const mark = w.begin(66 /* field 8 timestamp_value, LEN */);
    if (seconds !== 0) {
      w.varint(8 /* Timestamp.seconds, VARINT */);
      w.int64(seconds);
    }
    if (nanos !== 0) {
      w.varint(16 /* Timestamp.nanos, VARINT */);
      w.int32(nanos);
    }
    w.end(mark);
    return true;
  }
  if (path.has(obj)) invalid("cannot encode a circular structure");
  if (path.size >= MAX_VALUE_NESTING) invalid(`values nest deeper than ${MAX_VALUE_NESTING} lists/dicts`);
  path.add(obj);
  try {
    if (Array.isArray(obj)) {
      const mark = w.begin(74 /* field 9 list_value, LEN */);
      for (const item of obj) writeListItem(w, 10 /* ListValue.values, LEN */, item, path);
      w.end(mark);
      return true;
    }
    if (!isPlainObject(obj)) {
      const toJSON = (obj as { toJSON?: unknown }).toJSON;
      if (typeof toJSON === "function") return writeValueBody(w, toJSON.call(obj), path);
      if (ArrayBuffer.isView(obj) || obj instanceof Map || obj instanceof Set) {
        invalid(`cannot encode a ${obj.constructor.name}; use a Uint8Array, an array or a plain object`);
      }
    }
    const mark = w.begin(82 /* field 10 map_value, LEN */);
    writeEntries(w, 10 /* MapValue.entries, LEN */, obj as Record<string, unknown>, path);
    w.end(mark);
    return true;
  } finally {
    path.delete(obj);
  }
}

/** A Value in a repeated field; what JSON drops becomes null, as in a JSON list. */
function writeListItem(w: ByteWriter, tag: number, item: unknown, path: Set<object>): void {
  const save = w.pos;
  const mark = w.begin(tag);
  if (writeValueBody(w, item, path)) {
    w.end(mark);
    return;
  }
  w.pos = save;
  w.varint(tag);
  w.varint(2);
  w.varint(8 /* null_value */);
  w.varint(0);
}

/** Entries of a dict in a repeated Entry field; keys whose value JSON drops are left out. */
function writeEntries(w: ByteWriter, tag: number, record: Record<string, unknown>, path: Set<object>): void {
  for (const key of Object.keys(record)) {
    const save = w.pos;
    const mark = w.begin(tag);
    if (key !== "") {
      w.varint(10 /* Entry.key, LEN */);
      w.string(key);
    }
    const valueMark = w.begin(18 /* Entry.value, LEN */);
    if (writeValueBody(w, record[key], path)) {
      w.end(valueMark);
      w.end(mark);
    } else {
      w.pos = save;
    }
  }
}

function writeString(w: ByteWriter, tag: number, s: string | null): void {
  if (s === null) return;
  w.varint(tag);
  w.string(s);
}

function writeSignature(w: ByteWriter, tag: number, s: Signature, path: Set<object>): void {
  const mark = w.begin(tag);
  if (s.task !== "") writeString(w, 10 /* task */, s.task);
  for (const a of s.args) writeListItem(w, 18 /* args */, a, path);
  writeEntries(w, 26 /* kwargs */, s.kwargs, path);
  writeEntries(w, 34 /* options */, s.options, path);
  writeString(w, 42 /* subtask_type */, s.subtaskType);
  if (s.immutable) {
    w.varint(48 /* immutable */);
    w.varint(1);
  }
  if (s.chordSize !== undefined) {
    const size = w.begin(58 /* chord_size */);
    if (s.chordSize !== null) {
      w.varint(8 /* NullableInt.value */);
      w.int32(int32("chord_size", s.chordSize));
    }
    w.end(size);
  }
  w.end(mark);
}

function writeSignatureList(w: ByteWriter, tag: number, list: Signature[] | null, path: Set<object>): void {
  if (list === null) return;
  const mark = w.begin(tag);
  for (const s of list) writeSignature(w, 10 /* items */, s, path);
  w.end(mark);
}

const scratch = new ByteWriter();
/** Set while `scratch` is in use: a toJSON that encodes another envelope gets its own writer. */
let scratchBusy = false;

/** The envelope as `celeriac.v1.TaskEnvelope` bytes; the same bytes as the generated encoder of toProtoEnvelope. */
export function writeEnvelope(e: TaskEnvelope): Uint8Array {
  if (scratchBusy) return writeEnvelopeWith(new ByteWriter(), e);
  scratchBusy = true;
  try {
    scratch.pos = 0;
    return writeEnvelopeWith(scratch, e);
  } finally {
    scratchBusy = false;
  }
}

function writeEnvelopeWith(w: ByteWriter, e: TaskEnvelope): Uint8Array {
  const path = new Set<object>();
  const h = e.headers;
  const headers = w.begin(10 /* TaskEnvelope.headers */);
  if (h.lang !== "") writeString(w, 10 /* lang */, h.lang);
  if (h.task !== "") writeString(w, 18 /* task */, h.task);
  if (h.id !== "") writeString(w, 26 /* id */, h.id);
  writeString(w, 34 /* shadow */, h.shadow);
  writeString(w, 42 /* eta */, h.eta);
  writeString(w, 50 /* expires */, h.expires);
  writeString(w, 58 /* group */, h.group);
  if (h.groupIndex !== null) {
    w.varint(64 /* group_index */);
    w.int32(int32("group_index", h.groupIndex));
  }
  if (int32("retries", h.retries) !== 0) {
    w.varint(72 /* retries */);
    w.int32(h.retries);
  }
  const [hard, soft] = h.timelimit;
  if (hard !== null || soft !== null) {
    const tl = w.begin(82 /* timelimit */);
    if (hard !== null) {
      w.varint(9 /* hard, I64 */);
      w.double(hard);
    }
    if (soft !== null) {
      w.varint(17 /* soft, I64 */);
      w.double(soft);
    }
    w.end(tl);
  }
  writeString(w, 90 /* root_id */, h.rootId);
  writeString(w, 98 /* parent_id */, h.parentId);
  writeString(w, 106 /* argsrepr */, h.argsrepr);
  writeString(w, 114 /* kwargsrepr */, h.kwargsrepr);
  writeString(w, 122 /* origin */, h.origin);
  if (h.ignoreResult) {
    w.varint(128 /* ignore_result */);
    w.varint(1);
  }
  if (int32("replaced_task_nesting", h.replacedTaskNesting) !== 0) {
    w.varint(136 /* replaced_task_nesting */);
    w.int32(h.replacedTaskNesting);
  }
  writeEntries(w, 146 /* stamps */, h.stamps, path);
  writeEntries(w, 154 /* extra */, h.extra, path);
  w.end(headers);

  const p = e.properties;
  const properties = w.begin(18 /* TaskEnvelope.properties */);
  if (p.correlationId !== "") writeString(w, 10 /* correlation_id */, p.correlationId);
  if (p.replyTo !== "") writeString(w, 18 /* reply_to */, p.replyTo);
  if (p.contentType !== "") writeString(w, 26 /* content_type */, p.contentType);
  if (p.contentEncoding !== "") writeString(w, 34 /* content_encoding */, p.contentEncoding);
  if (int32("delivery_mode", p.deliveryMode) !== 0) {
    w.varint(40 /* delivery_mode */);
    w.int32(p.deliveryMode);
  }
  if (p.priority !== null) {
    w.varint(48 /* priority */);
    w.int32(int32("priority", p.priority));
  }
  writeString(w, 58 /* expiration */, p.expiration);
  w.end(properties);

  for (const a of e.args) writeListItem(w, 26 /* TaskEnvelope.args */, a, path);
  writeEntries(w, 34 /* TaskEnvelope.kwargs */, e.kwargs, path);

  const embed = e.embed;
  if (embed.callbacks !== null || embed.errbacks !== null || embed.chain !== null || embed.chord !== null) {
    const mark = w.begin(42 /* TaskEnvelope.embed */);
    writeSignatureList(w, 10 /* callbacks */, embed.callbacks, path);
    writeSignatureList(w, 18 /* errbacks */, embed.errbacks, path);
    writeSignatureList(w, 26 /* chain */, embed.chain, path);
    if (embed.chord !== null) writeSignature(w, 34 /* chord */, embed.chord, path);
    w.end(mark);
  }
  return w.take();
}

/**
 * The few headers a broker, a router or a monitoring tool looks at without decoding the body:
 * which task, which id, which language wrote it. Everything else lives only in the body, so a
 * protobuf message is smaller than the same task in Celery JSON on every transport.
 */
function wireHeaders(e: TaskEnvelope): Record<string, unknown> {
  return { lang: e.headers.lang, task: e.headers.task, id: e.headers.id };
}

/** Decodes protobuf bytes with one message type, turning every failure into decode_failed. */
function decodeBytes<T>(what: string, decode: (bytes: Uint8Array) => T, bytes: Uint8Array): T {
  try {
    return decode(bytes);
  } catch (err) {
    if (err instanceof CeleriacError) throw err;
    // protobufjs throws RangeError ("index out of range") or Error ("invalid wire type ...").
    throw new CeleriacError("decode_failed", `protobuf body is not a valid ${what}: ${(err as Error).message}`, { cause: err });
  }
}

/** Runs a conversion of decoded data, turning anything unexpected (e.g. stack overflow) into decode_failed. */
function convert<T>(what: string, fn: () => T): T {
  try {
    return fn();
  } catch (err) {
    if (err instanceof CeleriacError) throw err;
    throw new CeleriacError("decode_failed", `protobuf ${what} could not be read: ${(err as Error).message}`, { cause: err });
  }
}

export const protobufCodec: Codec = {
  contentType: PROTOBUF_CONTENT_TYPE,
  encode(envelope: TaskEnvelope): WireMessage {
    const p = envelope.properties;
    return {
      body: writeEnvelope(envelope),
      contentType: PROTOBUF_CONTENT_TYPE,
      contentEncoding: PROTOBUF_CONTENT_ENCODING,
      headers: wireHeaders(envelope),
      properties: toWireProperties(p),
    };
  },
  decode(message: WireMessage): TaskEnvelope {
    if (!(message.body instanceof Uint8Array)) throw new CeleriacError("decode_failed", "protobuf body is not bytes");
    return decodeBytes("celeriac.v1.TaskEnvelope", readEnvelope, message.body);
  },
};

// ---------------------------------------------------------------------------------------------
// Result metas

const META_KEYS = new Set(["status", "result", "traceback", "children", "date_done", "task_id", "group_id", "parent_id"]);

/** Celery's serialized exception, exactly `{exc_type, exc_message, exc_module}` in that order. */
function asExceptionInfo(v: unknown): { excType: string; excMessage: unknown[]; excModule: string | null } | null {
  if (typeof v !== "object" || v === null || Array.isArray(v) || !isPlainObject(v)) return null;
  const keys = Object.keys(v);
  if (keys.length !== 3 || keys[0] !== "exc_type" || keys[1] !== "exc_message" || keys[2] !== "exc_module") return null;
  const r = v as Record<string, unknown>;
  const excType = r["exc_type"];
  const excMessage = r["exc_message"];
  const excModule = r["exc_module"];
  if (typeof excType !== "string" || !Array.isArray(excMessage)) return null;
  if (excModule !== null && typeof excModule !== "string") return null;
  return { excType, excMessage, excModule };
}

/** A result meta as a `celeriac.v1.ResultMeta` plain object. */
export function toProtoResultMeta(meta: ResultMeta): PbResultMeta {
  const out: PbResultMeta = {
    status: meta.status,
    traceback: meta.traceback,
    children: toValues(meta.children),
    dateDone: meta.date_done,
    taskId: meta.task_id,
  };
  const exc = asExceptionInfo(meta.result);
  if (exc) {
    out.exception = { excType: exc.excType, excMessage: toValues(exc.excMessage), excModule: exc.excModule };
  } else if (meta.result !== undefined) {
    out.result = toValue(meta.result, new Set()) ?? NULL;
  }
  if (meta.group_id !== undefined) out.groupId = { value: meta.group_id };
  if (meta.parent_id !== undefined) out.parentId = { value: meta.parent_id };
  const extra: Record<string, unknown> = {};
  for (const key of Object.keys(meta)) if (!META_KEYS.has(key)) extra[key] = meta[key];
  out.extra = toEntries(extra);
  return out;
}

export function fromProtoResultMeta(m: PbResultMeta): ResultMeta {
  if (!m.taskId) malformed("ResultMeta.task_id is missing or empty");
  if (!m.status) malformed("ResultMeta.status is missing or empty");
  const meta: ResultMeta = {
    status: m.status as TaskState,
    result: null,
    traceback: m.traceback ?? null,
    children: (m.children ?? []).map(fromValue),
    date_done: m.dateDone ?? null,
    task_id: m.taskId,
  };
  if (m.outcome === "exception" && m.exception) {
    const e = m.exception;
    meta.result = { exc_type: e.excType ?? "", exc_message: (e.excMessage ?? []).map(fromValue), exc_module: e.excModule ?? null };
  } else if (m.outcome === "result") {
    meta.result = fromValue(m.result);
  } else {
    delete (meta as { result?: unknown }).result;
  }
  if (m.groupId) meta.group_id = m.groupId.value ?? null;
  if (m.parentId) meta.parent_id = m.parentId.value ?? null;
  const extra = fromEntries(m.extra);
  for (const key of Object.keys(extra)) {
    if (META_KEYS.has(key)) malformed(`ResultMeta.extra repeats the key ${JSON.stringify(key)}`);
    Object.defineProperty(meta, key, { value: extra[key], enumerable: true, writable: true, configurable: true });
  }
  return meta;
}

/** Serializes a result meta as a protobuf `celeriac.v1.ResultMeta`. */
export function encodeResultMeta(meta: ResultMeta): Uint8Array {
  return messages.ResultMeta.encode(toProtoResultMeta(meta));
}

/** Parses a protobuf `celeriac.v1.ResultMeta`; malformed bytes throw CeleriacError("decode_failed"). */
export function decodeResultMeta(bytes: Uint8Array): ResultMeta {
  if (!(bytes instanceof Uint8Array)) throw new CeleriacError("decode_failed", "protobuf result meta is not bytes");
  const decoded = decodeBytes("celeriac.v1.ResultMeta", messages.ResultMeta.decode, bytes);
  return convert("ResultMeta", () => fromProtoResultMeta(decoded));
}
