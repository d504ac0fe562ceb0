import { CeleriacError } from "./errors.js";
import type { Delivery, NackOptions } from "./transport.js";
import type { WireMessage } from "./wire.js";

/**
 * What a transport does to its broker for each settle, once the rules every transport shares
 * (settle once, not after close, valid arguments, errors as `CeleriacError`) have passed.
 * Each is called at most once per delivery, `extend` any number of times before a settle.
 */
export interface DeliveryOps {
  ack(): Promise<void> | void;
  /** `delayMs` is checked (finite, >= 0) and defaulted to 0; `requeue` defaults to true. */
  nack(options: { requeue: boolean; delayMs: number }): Promise<void> | void;
  /** `ms` is checked (finite, >= 0). */
  extend(ms: number): Promise<void> | void;
  reject(reason: string): Promise<void> | void;
}

export interface DeliveryInit {
  /** The transport's name, for error messages ("sqlite ack failed: ..."). */
  transport: string;
  message: WireMessage;
  queue: string;
  redelivered: boolean;
  deliveryCount: number | null;
  /** See `Delivery.maxNackDelayMs`. Default 0: the transport does not delay a nack natively. */
  maxNackDelayMs?: number;
  /** See `Delivery.visibilityTimeoutMs`. Default null: no timeout returns the message. */
  visibilityTimeoutMs?: number | null;
  /** True once the transport is closed: settles are then refused with `CeleriacError("closed")`. */
  isClosed?: () => boolean;
  /**
   * Called once, when the first settle is accepted and before its broker operation runs (the
   * prefetch window reopens at once, as on every broker: the message is no longer ours to hold).
   */
  onSettled?: () => void;
  ops: DeliveryOps;
}

/** The code a failed broker operation is reported with: a CeleriacError keeps its own. */
function wrap(transport: string, what: string, err: unknown): CeleriacError {
  if (err instanceof CeleriacError) return err;
  const text = err instanceof Error ? err.message : String(err);
  return new CeleriacError("connection", `${transport} ${what} failed: ${text}`, { cause: err });
}

function nonNegativeMs(what: string, name: string, value: unknown): number {
  if (typeof value !== "number" || !Number.isFinite(value) || value < 0) {
    throw new CeleriacError("invalid_argument", `${what}: ${name} must be a non-negative number, got ${String(value)}`);
  }
  return value;
}

/**
 * The one settle path of every transport (as nats.js keeps one ack path in its JetStream
 * message): builds a `Delivery` whose `ack`/`nack`/`reject` settle exactly once, a second settle
 * being `CeleriacError("already_settled")`, whose arguments are checked before anything is
 * settled, and whose broker errors come out as `CeleriacError` (code "connection" unless the
 * transport threw a CeleriacError of its own).
 */
export function createDelivery(init: DeliveryInit): Delivery {
  const { transport, ops } = init;
  let settled = false;
  const assertUsable = (what: string) => {
    if (settled) throw new CeleriacError("already_settled", `delivery already settled; cannot ${what}`);
    if (init.isClosed?.()) throw new CeleriacError("closed", `${transport} transport is closed; cannot ${what}`);
  };
  const settle = async (what: string, op: () => Promise<void> | void): Promise<void> => {
    assertUsable(what);
    settled = true;
    init.onSettled?.();
    try {
      await op();
    } catch (err) {
      throw wrap(transport, what, err);
    }
  };
  return {
    message: init.message,
    queue: init.queue,
    redelivered: init.redelivered,
    deliveryCount: init.deliveryCount,
    maxNackDelayMs: init.maxNackDelayMs ?? 0,
    visibilityTimeoutMs: init.visibilityTimeoutMs ?? null,
    get settled() {
      return settled;
    },
    ack: () => settle("ack", () => ops.ack()),
    nack: async (options: NackOptions = {}) => {
      const delayMs = nonNegativeMs("nack", "delayMs", options.delayMs ?? 0);
      const requeue = options.requeue ?? true;
      return settle("nack", () => ops.nack({ requeue, delayMs }));
    },
    extend: async (ms: number) => {
      assertUsable("extend");
      const checked = nonNegativeMs("extend", "ms", ms);
      try {
        await ops.extend(checked);
      } catch (err) {
        throw wrap(transport, "extend", err);
      }
    },
    reject: (reason: string) => settle("reject", () => ops.reject(String(reason))),
  };
}
