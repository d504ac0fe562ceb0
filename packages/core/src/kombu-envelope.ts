import { kombuValueEncoder } from "./codec/celery-json.js";
import { pyParse, pyStringify } from "./codec/py-json.js";
import { CeleriacError } from "./errors.js";
import type { WireMessage } from "./wire.js";

/**
 * kombu's virtual-transport framing, used as-is by its Redis, SQS and SQLAlchemy transports:
 * a JSON object `{body, content-encoding, content-type, headers, properties}` whose `body` is the
 * base64 of the message body and whose `properties` carry `delivery_info` and a `delivery_tag`.
 */
export interface KombuEnvelope {
  body: string;
  "content-encoding": string;
  "content-type": string;
  headers: Record<string, unknown>;
  properties: {
    correlation_id?: string;
    reply_to?: string;
    delivery_mode?: number;
    delivery_info: { exchange: string; routing_key: string };
    priority?: number;
    expiration?: string;
    body_encoding: "base64";
    delivery_tag: string;
    [other: string]: unknown;
  };
}

export interface KombuFraming {
  exchange?: string;
  routingKey: string;
  deliveryTag: string;
  /** Value written as `properties.priority`; defaults to the message's own. */
  priority?: number;
}

/** Builds kombu's envelope, with keys in kombu's order so Python sees familiar bytes. */
export function toKombuEnvelope(message: WireMessage, framing: KombuFraming): KombuEnvelope {
  const p = message.properties;
  const properties: KombuEnvelope["properties"] = {
    ...(p.correlationId !== undefined ? { correlation_id: p.correlationId } : {}),
    ...(p.replyTo !== undefined ? { reply_to: p.replyTo } : {}),
    delivery_mode: p.deliveryMode ?? 2,
    // kombu keeps the producer's properties first (expiration among them) and then adds
    // delivery_info and priority in prepare_message.
    ...(p.expiration !== undefined ? { expiration: p.expiration } : {}),
    delivery_info: { exchange: framing.exchange ?? "", routing_key: framing.routingKey },
    priority: framing.priority ?? p.priority ?? 0,
    body_encoding: "base64",
    delivery_tag: framing.deliveryTag,
  };
  return {
    body: Buffer.from(message.body.buffer, message.body.byteOffset, message.body.byteLength).toString("base64"),
    "content-encoding": message.contentEncoding,
    "content-type": message.contentType,
    headers: message.headers,
    properties,
  };
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** What reading kombu's envelope gives. */
export interface KombuReading {
  message: WireMessage;
  deliveryTag: string | null;
  routingKey: string | null;
  /** kombu's restore marked it (`headers.redelivered` or `properties.delivery_info.redelivered`). */
  redelivered: boolean;
}

/** Reads kombu's envelope back; throws `decode_failed` with the reason when it is not one. */
export function fromKombuEnvelope(value: unknown): KombuReading {
  if (!isRecord(value)) throw new CeleriacError("decode_failed", "kombu envelope is not a JSON object");
  const body = value["body"];
  if (typeof body !== "string") throw new CeleriacError("decode_failed", "kombu envelope has no string body");
  const props = isRecord(value["properties"]) ? value["properties"] : {};
  const bodyEncoding = props["body_encoding"];
  let bytes: Uint8Array;
  if (bodyEncoding === "base64") {
    // Python's b64decode (what kombu uses) rejects bad padding; Buffer.from would guess instead.
    const compact = body.replace(/\s+/g, "");
    if (!/^[A-Za-z0-9+/]*={0,2}$/.test(compact) || compact.length % 4 !== 0) {
      throw new CeleriacError("decode_failed", "kombu envelope body is not valid base64");
    }
    const decoded = Buffer.from(compact, "base64");
    // A plain Uint8Array view of the decoded bytes (no second copy).
    bytes = new Uint8Array(decoded.buffer, decoded.byteOffset, decoded.byteLength);
  } else if (bodyEncoding === undefined || bodyEncoding === null) {
    bytes = new TextEncoder().encode(body);
  } else {
    throw new CeleriacError(
      "decode_failed",
      `unsupported kombu body_encoding ${typeof bodyEncoding === "string" ? JSON.stringify(bodyEncoding) : typeof bodyEncoding}`,
    );
  }
  const headers = value["headers"];
  if (headers !== undefined && headers !== null && !isRecord(headers)) {
    throw new CeleriacError("decode_failed", "kombu envelope headers are not an object");
  }
  for (const key of ["content-type", "content-encoding"]) {
    const v = value[key];
    if (v !== undefined && v !== null && typeof v !== "string") throw new CeleriacError("decode_failed", `kombu envelope "${key}" is not a string`);
  }
  const info = isRecord(props["delivery_info"]) ? props["delivery_info"] : {};
  const str = (v: unknown): string | undefined => (typeof v === "string" ? v : undefined);
  const num = (v: unknown): number | undefined => (typeof v === "number" ? v : undefined);
  const message: WireMessage = {
    body: bytes,
    contentType: str(value["content-type"]) ?? "application/json",
    contentEncoding: str(value["content-encoding"]) ?? "utf-8",
    headers: (headers as Record<string, unknown> | null | undefined) ?? {},
    properties: {},
  };
  const correlationId = str(props["correlation_id"]);
  const replyTo = str(props["reply_to"]);
  const deliveryMode = num(props["delivery_mode"]);
  const priority = num(props["priority"]);
  const expiration = str(props["expiration"]);
  if (correlationId !== undefined) message.properties.correlationId = correlationId;
  if (replyTo !== undefined) message.properties.replyTo = replyTo;
  if (deliveryMode !== undefined) message.properties.deliveryMode = deliveryMode;
  if (priority !== undefined) message.properties.priority = priority;
  if (expiration !== undefined) message.properties.expiration = expiration;
  const redelivered = (isRecord(headers) && headers["redelivered"] === true) || info["redelivered"] === true;
  return { message, deliveryTag: str(props["delivery_tag"]) ?? null, routingKey: str(info["routing_key"]) ?? null, redelivered };
}

/**
 * The envelope as kombu writes it into Redis, SQS and SQLite: Python's `json.dumps` output
 * (separators ", " and ": ", ASCII-only), so Python-produced and Celeriac-produced entries have
 * the same shape byte for byte.
 */
export function stringifyKombuEnvelope(envelope: KombuEnvelope): string {
  return pyStringify(envelope, { encodeSpecial: kombuValueEncoder("kombu52") });
}

/**
 * Parses envelope text read from a broker with Python-compatible JSON (NaN, big integers) and
 * validates it like `fromKombuEnvelope`. Throws `CeleriacError("decode_failed")` on bad input.
 */
export function parseKombuEnvelope(text: string): KombuReading {
  if (typeof text !== "string") throw new CeleriacError("decode_failed", "kombu envelope is not text");
  return fromKombuEnvelope(pyParse(text));
}

/**
 * What a consumer hands out for a body that is no kombu envelope (another producer's message,
 * garbage): a message the worker refuses, with one log line, by its content type, so that its
 * reject deletes (or dead-letters) it. Dropped silently or left hidden instead, it would vanish
 * or come back every visibility timeout with nobody told.
 */
export const NOT_KOMBU_CONTENT_TYPE = "(not a kombu envelope)";
export function notKombuMessage(body: string): WireMessage {
  return { body: Buffer.from(body, "utf8"), contentType: NOT_KOMBU_CONTENT_TYPE, contentEncoding: "binary", headers: {}, properties: {} };
}
