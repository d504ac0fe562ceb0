import { inflateSync } from "node:zlib";
import { CeleriacError } from "../errors.js";
import { parseCeleryTime } from "../time.js";
import type { TaskEnvelope } from "../envelope.js";
import type { WireMessage } from "../wire.js";
import type { Codec } from "./codec.js";
import { celeryJsonCodec } from "./celery-json.js";
import { protobufCodec } from "./protobuf.js";

export type { Codec } from "./codec.js";
export { protobufCodec, encodeResultMeta, decodeResultMeta, PROTOBUF_CONTENT_TYPE } from "./protobuf.js";
export { celeryJsonCodec, createCeleryJsonCodec, type CeleryJsonCodecOptions, type KombuJsonDialect } from "./celery-json.js";
export { pyParse, pyStringify, formatPyFloat } from "./py-json.js";

const PICKLE = "application/x-python-serialize";

/** Quotes a value for an error message; unlike JSON.stringify it cannot throw (bigint). */
function show(v: unknown): string {
  return typeof v === "string" ? JSON.stringify(v) : typeof v === "object" && v !== null ? (Array.isArray(v) ? "an array" : "an object") : String(v);
}

/** Codecs by content type. Other codecs (protobuf) add one entry each. */
export const defaultCodecs: ReadonlyMap<string, Codec> = new Map<string, Codec>([
  [celeryJsonCodec.contentType, celeryJsonCodec],
  [protobufCodec.contentType, protobufCodec],
]);

/**
 * kombu's `compression` header values that mean zlib: `kombu.compression` registers
 * `zlib.compress` as "application/x-gzip" (aliases "gzip", "zlib"). Despite the name the data is
 * a zlib stream, not gzip. bz2/lzma/brotli/zstd are not supported.
 */
const ZLIB_NAMES = new Set(["application/x-gzip", "gzip", "zlib"]);

/** A decompressed body larger than this is refused rather than allocated (zip bombs). */
export const MAX_DECOMPRESSED_BYTES = 64 * 1024 * 1024;

/**
 * Undoes kombu's body compression: returns the message with the plain body and without the
 * `compression` header (it describes the transport framing, not the task). Messages without the
 * header are returned as they are.
 */
export function decompressMessage(message: WireMessage): WireMessage {
  const headers: unknown = message.headers;
  if (typeof headers !== "object" || headers === null || Array.isArray(headers)) return message;
  const compression = (headers as Record<string, unknown>)["compression"];
  if (compression === undefined || compression === null) return message;
  if (typeof compression !== "string" || !ZLIB_NAMES.has(compression)) {
    throw new CeleriacError("decode_failed", `unsupported body compression ${show(compression)} (only zlib, kombu's "application/x-gzip", is supported)`);
  }
  let body: Uint8Array;
  try {
    body = new Uint8Array(inflateSync(message.body, { maxOutputLength: MAX_DECOMPRESSED_BYTES }));
  } catch (err) {
    throw new CeleriacError(
      "decode_failed",
      `body is not valid zlib data (compression ${show(compression)}): ${err instanceof Error ? err.message : String(err)}`,
    );
  }
  const { compression: _dropped, ...rest } = headers as Record<string, unknown>;
  return { ...message, body, headers: rest };
}

/**
 * Decodes any task message Celeriac can read: refuses pickle without looking at the body,
 * undoes kombu's compression, then picks the codec by content type.
 */
export function decodeTask(message: WireMessage, codecs: ReadonlyMap<string, Codec> = defaultCodecs): TaskEnvelope {
  if (message.contentType === PICKLE) {
    throw new CeleriacError(
      "decode_failed",
      "refusing to decode pickle (application/x-python-serialize): pickle is never deserialized; configure the producer with task_serializer='json'",
    );
  }
  const codec = codecs.get(message.contentType);
  if (!codec) throw new CeleriacError("decode_failed", `unsupported content type ${show(message.contentType)}`);
  const envelope = codec.decode(decompressMessage(message));
  // Whatever the codec, a time the worker cannot read refuses the message, as Celery's Request
  // raises InvalidTaskError("invalid ETA value ...") (celery/worker/request.py): read as absent,
  // a garbage eta or expires would run the task at once, or never expire it.
  for (const field of ["eta", "expires"] as const) {
    const value = envelope.headers[field];
    if (value !== null && value !== "") parseCeleryTime(value, `header "${field}"`);
  }
  return envelope;
}
