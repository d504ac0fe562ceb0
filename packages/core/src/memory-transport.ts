import { ChangeSignal } from "./change-signal.js";
import { createDelivery } from "./delivery.js";
import { DeliveryQueue } from "./delivery-queue.js";
import { CeleriacError } from "./errors.js";
import { ConnectionLifecycle, type ConnectionEvents } from "./lifecycle.js";
import { assertKnownOptions, optionKeys } from "./options.js";
import { assertPublishable } from "./publish-check.js";
import type { ConsumeOptions, Consumer, DeadLetter, Delivery, PublishOptions, Transport, TransportCapabilities } from "./transport.js";
import type { WireMessage } from "./wire.js";

interface Stored {
  seq: number;
  message: WireMessage;
  visibleAt: number;
  deliveries: number;
}

export interface MemoryTransportOptions {
  /** How long a delivered, unsettled message stays hidden before it is handed out again. */
  visibilityTimeoutMs?: number;
}

/**
 * An in-process transport for unit tests: real ack/nack/extend/reject semantics, priorities
 * (higher first, then FIFO), delayed delivery and a dead-letter list, all in memory.
 */
export class MemoryTransport implements Transport {
  readonly name = "memory";
  readonly capabilities: TransportCapabilities = {
    priority: "native",
    delayedDelivery: true,
    visibilityExtension: true,
    deadLetter: true,
    maxMessageBytes: null,
  };
  /** Rejected messages, with their reasons. */
  readonly deadLetters: { queue: string; message: WireMessage; reason: string }[] = [];
  readonly closed: Promise<void>;
  private readonly events = new ConnectionLifecycle("memory");
  readonly lifecycle: ConnectionEvents = this.events;
  private readonly queues = new Map<string, Stored[]>();
  private readonly inflight = new Map<string, Set<Stored>>();
  private readonly changes = new ChangeSignal();
  private readonly visibilityTimeoutMs: number;
  private readonly consumers = new Set<Consumer>();
  private seq = 0;
  private isClosed = false;
  private resolveClosed!: () => void;

  constructor(options: MemoryTransportOptions = {}) {
    assertKnownOptions("createMemoryTransport", options, optionKeys<MemoryTransportOptions>({ visibilityTimeoutMs: true }));
    this.visibilityTimeoutMs = options.visibilityTimeoutMs ?? 30 * 60_000;
    this.closed = new Promise((r) => (this.resolveClosed = r));
  }

  async connect(): Promise<void> {
    if (this.isClosed) throw new CeleriacError("closed", "memory transport is closed");
    this.events.report({ type: "connected" });
  }

  async publish(queue: string, message: WireMessage, options: PublishOptions = {}): Promise<void> {
    if (this.isClosed) throw new CeleriacError("closed", "memory transport is closed");
    assertPublishable(this, queue, message, options);
    this.insert(queue, { seq: this.seq++, message, visibleAt: Date.now() + (options.delayMs ?? 0), deliveries: 0 });
    this.wake();
  }

  /** Messages waiting in `queue` (visible or delayed), not counting unsettled deliveries. */
  size(queue: string): number {
    return this.list(queue).length;
  }

  /** Unsettled deliveries of `queue`. */
  inflightCount(queue: string): number {
    return this.inflight.get(queue)?.size ?? 0;
  }

  async purge(queue: string): Promise<number> {
    const n = this.list(queue).length;
    this.queues.set(queue, []);
    return n;
  }

  consume(queues: readonly string[], options: ConsumeOptions): Consumer {
    if (this.isClosed) throw new CeleriacError("closed", "memory transport is closed; cannot consume");
    const q: DeliveryQueue<{ queue: string; stored: Stored }> = new DeliveryQueue({
      queues,
      consume: options,
      toDelivery: (item, release) => this.makeDelivery(item.queue, item.stored, release),
      giveBack: (items) => {
        for (const { queue, stored } of items) {
          stored.deliveries--;
          this.insert(queue, stored);
        }
        this.wake();
      },
      onStop: () => {
        this.consumers.delete(q);
        this.wake();
      },
    });
    this.consumers.add(q);
    void this.pump(queues, q);
    return q;
  }

  /** Takes a message whenever the consumer asks for one; waits for a change otherwise. */
  private async pump(queues: readonly string[], q: DeliveryQueue<{ queue: string; stored: Stored }>): Promise<void> {
    while (!q.stopped && !this.isClosed) {
      if (!q.wanting) {
        await q.changed();
        continue;
      }
      const next = this.take(queues);
      if (next) q.push(next);
      else await this.waitForChange(this.nextVisibleIn(queues));
    }
  }

  async close(): Promise<void> {
    if (this.isClosed) return;
    this.isClosed = true;
    // Their iterations end: a worker on this transport sees its consumer end, and fails.
    for (const c of [...this.consumers]) await c.stop();
    this.wake();
    this.resolveClosed();
  }

  private list(queue: string): Stored[] {
    let l = this.queues.get(queue);
    if (!l) this.queues.set(queue, (l = []));
    return l;
  }

  private wake(): void {
    this.changes.notify();
  }

  private waitForChange(maxMs: number): Promise<void> {
    return this.changes.wait(Math.min(maxMs, 1000));
  }

  private nextVisibleIn(queues: readonly string[]): number {
    const now = Date.now();
    let min = 1000;
    for (const q of queues) for (const s of this.list(q)) min = Math.min(min, s.visibleAt - now);
    return min;
  }

  /**
   * Keeps each queue ordered as it is consumed: higher priority first, then publish order (a
   * requeued message goes back to its old place). `take` then usually finds its message at the
   * head instead of scanning the whole queue.
   */
  private insert(queue: string, stored: Stored): void {
    const l = this.list(queue);
    const p = stored.message.properties.priority ?? 0;
    let lo = 0;
    let hi = l.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      const m = l[mid]!;
      const mp = m.message.properties.priority ?? 0;
      if (mp > p || (mp === p && m.seq < stored.seq)) lo = mid + 1;
      else hi = mid;
    }
    l.splice(lo, 0, stored);
  }

  private take(queues: readonly string[]): { queue: string; stored: Stored } | null {
    const now = Date.now();
    let best: { queue: string; stored: Stored; index: number } | null = null;
    for (const queue of queues) {
      const l = this.list(queue);
      // The first visible message is this queue's best: the list is in consumption order.
      const i = l.findIndex((s) => s.visibleAt <= now);
      if (i < 0) continue;
      const s = l[i]!;
      const p = s.message.properties.priority ?? 0;
      const bp = best ? (best.stored.message.properties.priority ?? 0) : -1;
      if (!best || p > bp || (p === bp && s.seq < best.stored.seq)) best = { queue, stored: s, index: i };
    }
    if (!best) return null;
    this.list(best.queue).splice(best.index, 1);
    best.stored.deliveries++;
    return { queue: best.queue, stored: best.stored };
  }

  private makeDelivery(queue: string, stored: Stored, onSettled: () => void): Delivery {
    let set = this.inflight.get(queue);
    if (!set) this.inflight.set(queue, (set = new Set()));
    const inflight = set;
    inflight.add(stored);
    // Set when the visibility timeout gave the message back: the delivery is not settled (a
    // transport never settles on its own) but no longer holds the message.
    let returned = false;
    // Unsettled past the visibility timeout: hand it out again, as a broker would.
    // unref: an unsettled delivery must not keep a test or CLI process alive for 30 minutes.
    let timer = setTimeout(() => restore(), this.visibilityTimeoutMs);
    timer.unref?.();
    const restore = () => {
      if (delivery.settled || returned) return;
      returned = true;
      inflight.delete(stored);
      stored.visibleAt = Date.now();
      this.insert(queue, stored);
      onSettled();
    };
    /** True when this delivery still holds the message (not given back and taken by another). */
    const holds = (): boolean => {
      clearTimeout(timer);
      if (!returned) {
        inflight.delete(stored);
        return true;
      }
      // Given back by the timeout: still waiting, so this late settle takes it out again.
      const waiting = this.list(queue);
      const i = waiting.indexOf(stored);
      if (i < 0) return false; // another consumer has it now; its own settle decides
      waiting.splice(i, 1);
      return true;
    };
    const delivery = createDelivery({
      transport: this.name,
      message: stored.message,
      queue,
      redelivered: stored.deliveries > 1,
      deliveryCount: stored.deliveries,
      visibilityTimeoutMs: this.visibilityTimeoutMs,
      isClosed: () => this.isClosed,
      // The timeout already reopened the window for a returned message.
      onSettled: () => {
        if (!returned) onSettled();
      },
      ops: {
        ack: () => void holds(),
        nack: ({ requeue, delayMs }) => {
          if (holds() && requeue) {
            stored.visibleAt = Date.now() + delayMs;
            this.insert(queue, stored);
            this.wake();
          }
        },
        extend: (ms) => {
          if (returned) return; // too late: it is waiting again or held by another consumer
          clearTimeout(timer);
          timer = setTimeout(() => restore(), ms);
          timer.unref?.();
        },
        reject: (reason) => {
          if (holds()) this.deadLetters.push({ queue, message: stored.message, reason });
        },
      },
    });
    return delivery;
  }

  async readDeadLetters(queue: string, options: { limit?: number } = {}): Promise<DeadLetter[]> {
    return this.deadLetters
      .filter((d) => d.queue === queue)
      .slice(0, options.limit ?? Infinity)
      .map((d) => ({ ...d, deliveryCount: null, raw: null }));
  }
}

export function createMemoryTransport(options?: MemoryTransportOptions): MemoryTransport {
  return new MemoryTransport(options);
}
