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
  return new SettleOnce(init);
}

/**
 * The delivery `createDelivery` returns. A class, not an object of closures: one is made per
 * message, and its methods live once on the prototype. They use `this`; call them on the delivery.
 */
class SettleOnce implements Delivery {
  readonly message: WireMessage;
  readonly queue: string;
  readonly redelivered: boolean;
  readonly deliveryCount: number | null;
  readonly maxNackDelayMs: number;
  readonly visibilityTimeoutMs: number | null;
  private isSettled = false;

  constructor(private readonly init: DeliveryInit) {
    this.message = init.message;
    this.queue = init.queue;
    this.redelivered = init.redelivered;
    this.deliveryCount = init.deliveryCount;
    this.maxNackDelayMs = init.maxNackDelayMs ?? 0;
    this.visibilityTimeoutMs = init.visibilityTimeoutMs ?? null;
  }

  get settled(): boolean {
    return this.isSettled;
  }

  ack(): Promise<void> {
    return this.settle("ack", undefined);
  }

  async nack(options: NackOptions = {}): Promise<void> {
    const delayMs = nonNegativeMs("nack", "delayMs", options.delayMs ?? 0);
    const requeue = options.requeue ?? true;
    return this.settle("nack", { requeue, delayMs });
  }

  async extend(ms: number): Promise<void> {
    this.assertUsable("extend");
    const checked = nonNegativeMs("extend", "ms", ms);
    try {
      await this.init.ops.extend(checked);
    } catch (err) {
      throw wrap(this.init.transport, "extend", err);
    }
  }

  reject(reason: string): Promise<void> {
    return this.settle("reject", String(reason));
  }

  private assertUsable(what: string): void {
    if (this.isSettled) throw new CeleriacError("already_settled", `delivery already settled; cannot ${what}`);
    if (this.init.isClosed?.()) throw new CeleriacError("closed", `${this.init.transport} transport is closed; cannot ${what}`);
  }

  private async settle(what: "ack" | "nack" | "reject", arg: { requeue: boolean; delayMs: number } | string | undefined): Promise<void> {
    this.assertUsable(what);
    this.isSettled = true;
    const { ops } = this.init;
    this.init.onSettled?.();
    try {
      if (what === "ack") await ops.ack();
      else if (what === "nack") await ops.nack(arg as { requeue: boolean; delayMs: number });
      else await ops.reject(arg as string);
    } catch (err) {
      throw wrap(this.init.transport, what, err);
    }
  }
}
