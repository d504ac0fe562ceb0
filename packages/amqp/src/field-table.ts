import { createRequire } from "node:module";

/**
 * Header values typed for AMQP field tables the way Debian's py-amqp reads them.
 *
 * amqplib guesses a tag from a JS number's size: `b`, `s` (int16) or `l` (int64). py-amqp 5.x
 * reads `s` as a short string, so one small integer such as `retries: 200` corrupts the whole
 * header table Celery sees (kombu#2354). Integers therefore always travel as signed 32-bit `I`;
 * larger ones as `l`, which py-amqp reads as unsigned 64-bit, the same value for positive
 * numbers (a positive `bigint` up to 2**63-1 goes as `l` exactly). Negative integers below -2^31
 * go as doubles (`d`): amqplib cannot write py-amqp's signed `L`, and `l` would read back in
 * Python as a huge unsigned number.
 */
export type TypedValue =
  { "!": "int" | "long" | "double"; value: number | bigint } | string | boolean | null | TypedValue[] | { [key: string]: TypedValue } | Buffer;

const INT32_MIN = -0x80000000;
const INT32_MAX = 0x7fffffff;
const INT64_MAX = 2n ** 63n - 1n;

export function typeFieldValue(v: unknown): TypedValue {
  // Most of a Celery header table is strings and nulls: those first.
  if (typeof v === "string" || v === null) return v;
  if (typeof v === "number") {
    if (!Number.isInteger(v)) return { "!": "double", value: v };
    if (v >= INT32_MIN && v <= INT32_MAX) return { "!": "int", value: v };
    if (v > 0 && Number.isSafeInteger(v)) return { "!": "long", value: v };
    return { "!": "double", value: v };
  }
  if (typeof v === "bigint") {
    if (v >= BigInt(INT32_MIN) && v <= BigInt(INT32_MAX)) return { "!": "int", value: Number(v) };
    if (v > 0n && v <= INT64_MAX) return { "!": "long", value: v };
    return { "!": "double", value: Number(v) };
  }
  if (typeof v === "boolean") return v;
  if (v === undefined) return null;
  if (Array.isArray(v)) return v.map(typeFieldValue);
  if (Buffer.isBuffer(v)) return v;
  if (v instanceof Uint8Array) return Buffer.from(v.buffer, v.byteOffset, v.byteLength);
  if (typeof v === "object") return typeFieldTable(v as Record<string, unknown>);
  return String(v);
}

export function typeFieldTable(headers: Record<string, unknown>, extra?: Record<string, unknown>): Record<string, TypedValue> {
  // Runs for every publish: no entry arrays, no merged copy of the table first.
  const out: Record<string, TypedValue> = {};
  for (const k of Object.keys(headers)) out[k] = typeFieldValue(headers[k]);
  if (extra !== undefined) for (const k of Object.keys(extra)) out[k] = typeFieldValue(extra[k]);
  return out;
}

/**
 * The header that replaces a table this decoder cannot read (an unknown type tag has no known
 * length, so nothing after it can be found). Without `task`/`id` the message is refused by the
 * worker with one log line instead of breaking the connection for every message behind it.
 */
export const UNDECODABLE_HEADERS = "x-celeriac-undecodable-headers";

/**
 * Decodes an AMQP field table the way both sides of the wire write one.
 *
 * amqplib 2.x does not know the `L` tag, and py-amqp 5.x writes every integer outside
 * [-2**31+1, 2**31-1] with it (signed 64-bit, `pack('>cq', b'L', v)` in
 * amqp/serialization.py). amqplib throws on it while parsing the content header, which closes
 * the connection: every message behind it is redelivered and the consumer stalls. RabbitMQ's
 * errata uses `l` for the same signed 64-bit value, so both read the same here. Integers come
 * back as `number` when exact and as `bigint` beyond 2**53, the rule core's Python JSON
 * (py-json.ts) already follows, so a header survives a round trip through Celery unchanged.
 * Every other tag decodes to what amqplib gives (`T` and `D` as its `{"!": ...}` objects).
 */
export function decodeFieldTable(buf: Buffer): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  const at = { offset: 0 };
  while (at.offset < buf.length) {
    const len = buf.readUInt8(at.offset);
    at.offset += 1;
    const key = buf.toString("utf8", at.offset, at.offset + len);
    at.offset += len;
    out[key] = readValue(buf, at);
  }
  return out;
}

function exact(n: bigint): number | bigint {
  return n >= BigInt(Number.MIN_SAFE_INTEGER) && n <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(n) : n;
}

function readValue(buf: Buffer, at: { offset: number }): unknown {
  const tag = buf[at.offset]!;
  const o = at.offset + 1;
  // Fixed-size values: the offset moves past the value; no closure or view per value (a
  // message's headers are read on every delivery).
  switch (tag) {
    case 0x74: // t
      at.offset = o + 1;
      return buf.readUInt8(o) !== 0;
    case 0x62: // b
      at.offset = o + 1;
      return buf.readInt8(o);
    case 0x42: // B
      at.offset = o + 1;
      return buf.readUInt8(o);
    case 0x73: // s: RabbitMQ's signed 16-bit
    case 0x55: // U: the 0-9-1 spec's signed 16-bit
      at.offset = o + 2;
      return buf.readInt16BE(o);
    case 0x75: // u
      at.offset = o + 2;
      return buf.readUInt16BE(o);
    case 0x49: // I
      at.offset = o + 4;
      return buf.readInt32BE(o);
    case 0x69: // i
      at.offset = o + 4;
      return buf.readUInt32BE(o);
    case 0x6c: // l: RabbitMQ / amqplib, signed 64-bit
    case 0x4c: // L: py-amqp, signed 64-bit too
      at.offset = o + 8;
      return exact(buf.readBigInt64BE(o));
    case 0x66: // f
      at.offset = o + 4;
      return buf.readFloatBE(o);
    case 0x64: // d
      at.offset = o + 8;
      return buf.readDoubleBE(o);
    case 0x44: // D
      at.offset = o + 5;
      return { "!": "decimal", value: { places: buf.readUInt8(o), digits: buf.readUInt32BE(o + 1) } };
    case 0x54: // T
      at.offset = o + 8;
      return { "!": "timestamp", value: Number(buf.readBigUInt64BE(o)) };
    case 0x56: // V
      at.offset = o;
      return null;
    case 0x53: {
      // S: long string
      const end = o + 4 + buf.readUInt32BE(o);
      at.offset = end;
      return buf.toString("utf8", o + 4, end);
    }
    case 0x78: {
      // x: byte array
      const end = o + 4 + buf.readUInt32BE(o);
      at.offset = end;
      return Buffer.from(buf.subarray(o + 4, end));
    }
    case 0x46: {
      // F: nested table
      const end = o + 4 + buf.readUInt32BE(o);
      at.offset = end;
      return decodeFieldTable(buf.subarray(o + 4, end));
    }
    case 0x41: {
      // A: array
      const len = buf.readUInt32BE(o);
      const end = o + 4 + len;
      const items: unknown[] = [];
      at.offset = o + 4;
      while (at.offset < end) items.push(readValue(buf, at));
      at.offset = end;
      return items;
    }
    default:
      throw new RangeError(`unknown AMQP field type tag ${JSON.stringify(String.fromCharCode(tag))} at byte ${at.offset}`);
  }
}

/** amqplib's frame reader, the parts used below (lib/frame.js, not in its exports map). */
interface AmqplibFrames {
  parseFrame(bin: Buffer, max: number): { type: number; channel: number; size: number; payload: Buffer; rest: Buffer } | false;
  decodeFrame(frame: { type: number; channel: number; size: number; payload: Buffer }): { fields?: Record<string, unknown> } & Record<string, unknown>;
}

/** What `recvFrame` reads on amqplib's Connection (lib/connection.js). */
interface FrameSource {
  rest: Buffer;
  maxFrameSize: number;
  recvSinceLastCheck: boolean;
  stream: { read(): Buffer | null };
  recvFrame(): unknown;
}

let frames: AmqplibFrames | null = null;
function amqplibFrames(): AmqplibFrames {
  // A path-relative require inside the installed package reaches lib/frame.js, the same module
  // instance amqplib itself uses; the package's exports map only covers bare specifiers.
  frames ??= createRequire(createRequire(import.meta.url).resolve("amqplib"))("./lib/frame.js") as AmqplibFrames;
  return frames;
}

const FRAME_HEADER = 2;
const BASIC_CLASS = 60;

/**
 * Makes one amqplib connection read message headers with `decodeFieldTable`. `recvFrame` is
 * amqplib's (2.x) frame loop, kept as it is; only a basic content header is decoded here instead
 * of by amqplib: its properties in amqplib's shape, its header table by `decodeFieldTable`.
 * Pinned by the test that sends Python's 64-bit headers through a real RabbitMQ.
 */
export function readHeadersExactly(connection: unknown): void {
  const src = connection as FrameSource;
  if (typeof src.recvFrame !== "function" || !("rest" in src)) {
    throw new TypeError("amqplib's Connection no longer has recvFrame/rest: readHeadersExactly needs updating for this amqplib version");
  }
  const { parseFrame, decodeFrame } = amqplibFrames();
  src.recvFrame = function recvFrame(this: FrameSource): unknown {
    for (;;) {
      const frame = parseFrame(this.rest, this.maxFrameSize);
      if (frame) {
        this.rest = frame.rest;
        return frame.type === FRAME_HEADER ? decodeContentHeader(frame, decodeFrame) : decodeFrame(frame);
      }
      const incoming = this.stream.read();
      if (incoming === null) return false;
      this.recvSinceLastCheck = true;
      this.rest = Buffer.concat([this.rest, incoming]);
    }
  };
}

function decodeContentHeader(frame: { type: number; channel: number; size: number; payload: Buffer }, decodeFrame: AmqplibFrames["decodeFrame"]): unknown {
  const p = frame.payload;
  // class id (2), weight (2), body size (8), property flags (2), then the properties in order
  if (p.length < 14 || p.readUInt16BE(0) !== BASIC_CLASS) return decodeFrame(frame);
  const flags = p.readUInt16BE(12);
  // No property at all (amqplib answers {}), or a continued flags word (never sent for basic).
  if (flags === 0 || flags & 1) return decodeFrame(frame);
  // Every basic property in one pass, in the shape amqplib's decodeBasicProperties gives: this
  // runs once per delivered message, and amqplib's way (decode all but the table, which is cut
  // out and the payload copied around it) allocated several buffers per message.
  const at = { offset: 14 };
  const fields: BasicProperties = {
    contentType: flags & 0x8000 ? shortString(p, at) : undefined,
    contentEncoding: flags & 0x4000 ? shortString(p, at) : undefined,
    headers: flags & 0x2000 ? headerTable(p, at) : undefined,
    deliveryMode: flags & 0x1000 ? p[at.offset++] : undefined,
    priority: flags & 0x0800 ? p[at.offset++] : undefined,
    correlationId: flags & 0x0400 ? shortString(p, at) : undefined,
    replyTo: flags & 0x0200 ? shortString(p, at) : undefined,
    expiration: flags & 0x0100 ? shortString(p, at) : undefined,
    messageId: flags & 0x0080 ? shortString(p, at) : undefined,
    timestamp: flags & 0x0040 ? timestamp(p, at) : undefined,
    type: flags & 0x0020 ? shortString(p, at) : undefined,
    userId: flags & 0x0010 ? shortString(p, at) : undefined,
    appId: flags & 0x0008 ? shortString(p, at) : undefined,
    clusterId: flags & 0x0004 ? shortString(p, at) : undefined,
  };
  if (at.offset > p.length) throw new RangeError(`AMQP content header: properties run past the frame (${at.offset} > ${p.length} bytes)`);
  return { id: BASIC_CLASS, channel: frame.channel, size: Number(p.readBigInt64BE(4)), fields };
}

interface BasicProperties {
  contentType: string | undefined;
  contentEncoding: string | undefined;
  headers: Record<string, unknown> | undefined;
  deliveryMode: number | undefined;
  priority: number | undefined;
  correlationId: string | undefined;
  replyTo: string | undefined;
  expiration: string | undefined;
  messageId: string | undefined;
  timestamp: number | undefined;
  type: string | undefined;
  userId: string | undefined;
  appId: string | undefined;
  clusterId: string | undefined;
}

function shortString(p: Buffer, at: { offset: number }): string {
  const len = p[at.offset]!;
  const start = at.offset + 1;
  at.offset = start + len;
  return p.toString("utf8", start, start + len);
}

function timestamp(p: Buffer, at: { offset: number }): number {
  const v = Number(p.readBigUInt64BE(at.offset));
  at.offset += 8;
  return v;
}

/** The header table, or the one-entry table that says why it could not be read. */
function headerTable(p: Buffer, at: { offset: number }): Record<string, unknown> {
  const len = p.readUInt32BE(at.offset);
  const start = at.offset + 4;
  at.offset = start + len;
  try {
    return decodeFieldTable(p.subarray(start, start + len));
  } catch (err) {
    return { [UNDECODABLE_HEADERS]: err instanceof Error ? err.message : String(err) };
  }
}
