import type { TaskEnvelope } from "../envelope.js";
import type { WireMessage } from "../wire.js";

/** Turns the envelope into a broker message and back. One codec per content type. */
export interface Codec {
  /** The `content_type` this codec writes and reads. */
  readonly contentType: string;
  encode(envelope: TaskEnvelope): WireMessage;
  /** Throws `CeleriacError("decode_failed")` with a readable reason on anything malformed. */
  decode(message: WireMessage): TaskEnvelope;
}
