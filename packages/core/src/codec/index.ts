import { CeleriacError } from "../errors.js";
import type { TaskEnvelope } from "../envelope.js";
import type { WireMessage } from "../wire.js";
import type { Codec } from "./codec.js";
import { celeryJsonCodec } from "./celery-json.js";

export type { Codec } from "./codec.js";
export { celeryJsonCodec } from "./celery-json.js";

const PICKLE = "application/x-python-serialize";

/** Codecs by content type. The protobuf codec registers itself here too. */
export const defaultCodecs: ReadonlyMap<string, Codec> = new Map([[celeryJsonCodec.contentType, celeryJsonCodec]]);

/**
 * Decodes any task message Celeriac can read: picks the codec by content type and refuses pickle
 * without looking at the body.
 */
export function decodeTask(message: WireMessage, codecs: ReadonlyMap<string, Codec> = defaultCodecs): TaskEnvelope {
  if (message.contentType === PICKLE) {
    throw new CeleriacError("decode_failed", "refusing to decode pickle (application/x-python-serialize): pickle is never deserialized; configure the producer with task_serializer='json'");
  }
  const codec = codecs.get(message.contentType);
  if (!codec) throw new CeleriacError("decode_failed", `unsupported content type ${JSON.stringify(message.contentType)}`);
  return codec.decode(message);
}
