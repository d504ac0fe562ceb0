import { CeleriacError } from "./errors.js";
import type { PublishOptions, TransportCapabilities } from "./transport.js";
import type { WireMessage } from "./wire.js";

/**
 * The checks every `Transport.publish` makes before anything reaches the broker: a queue name,
 * a body within the declared `maxMessageBytes` (refused here with a clear error instead of a
 * broker's connection reset or a truncated message), and a `delayMs` the transport can honour.
 */
export function assertPublishable(
  transport: { readonly name: string; readonly capabilities: TransportCapabilities },
  queue: string,
  message: WireMessage,
  options: PublishOptions = {},
): void {
  if (typeof queue !== "string" || queue === "") {
    throw new CeleriacError("invalid_argument", `${transport.name} publish: queue must be a non-empty string, got ${JSON.stringify(queue)}`);
  }
  const max = transport.capabilities.maxMessageBytes;
  if (max !== null && message.body.byteLength > max) {
    throw new CeleriacError(
      "invalid_argument",
      `${transport.name} publish to ${JSON.stringify(queue)}: the message body is ${message.body.byteLength} bytes, over this transport's maxMessageBytes (${max}); store large payloads elsewhere and send a reference`,
    );
  }
  const delayMs = options.delayMs;
  if (delayMs === undefined) return;
  if (typeof delayMs !== "number" || !Number.isFinite(delayMs) || delayMs < 0) {
    throw new CeleriacError("invalid_argument", `${transport.name} publish: delayMs must be a non-negative number, got ${String(delayMs)}`);
  }
  if (delayMs > 0 && !transport.capabilities.delayedDelivery) {
    throw new CeleriacError(
      "unsupported",
      `${transport.name} transport: publish with delayMs is not supported (capabilities.delayedDelivery is false); the worker holds ETA tasks instead`,
    );
  }
}
