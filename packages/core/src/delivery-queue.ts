import { CeleriacError } from "./errors.js";
import { assertConsumeArguments } from "./options.js";
import type { ConsumeOptions, Consumer, Delivery } from "./transport.js";

export interface DeliveryQueueOptions<T> {
  /** Used for the argument checks of `Transport.consume` (queues, prefetch). */
  queues: readonly string[];
  consume: ConsumeOptions;
  /**
   * Turns a buffered item into the delivery handed out; `release` reopens its slot in the
   * prefetch window and must be called once when the delivery settles (pass it as
   * `createDelivery`'s `onSettled`). Null when the item can never be consumed (the transport
   * dead-letters or drops it): its slot is reopened at once.
   */
  toDelivery(item: T, release: () => void): Delivery | null;
  /** Gives back items received but never handed out (on stop, or pushed after stop). */
  giveBack(items: T[]): Promise<void> | void;
  /** Broker-side stopping (cancel a consumer tag, unblock a blocking read, wait for a pump). */
  onStop?(): Promise<void> | void;
  /** Buffer order: items sort by it (lower first), arrival order among equals. */
  rank?(item: T): number;
}

/**
 * The one consumer skeleton of every transport: a buffer filled by the transport (from a
 * broker push or a pump of its own), a prefetch window (at most `prefetch` deliveries handed
 * out and not settled), stop (buffered items go back through `giveBack`), abort through the
 * consume signal, and async iteration. A pump that meets a failure it cannot recover from
 * calls `fail(err)`: the iteration then throws it, so the worker stops loudly instead of
 * waiting forever. Like nats.js's QueuedIterator, one queue serves every transport.
 */
export class DeliveryQueue<T> implements Consumer {
  readonly prefetch: number;
  private readonly buffer: T[] = [];
  private handed = 0;
  private asking = false;
  private isStopped = false;
  private failure: CeleriacError | null = null;
  private stopping: Promise<void> | null = null;
  private waiters: (() => void)[] = [];
  private readonly abort = new AbortController();
  private readonly giveBacks = new Set<Promise<void>>();
  private readonly onAbort = () => void this.stop();
  private readonly iterator: AsyncIterator<Delivery>;

  constructor(private readonly opts: DeliveryQueueOptions<T>) {
    assertConsumeArguments(opts.queues, opts.consume);
    this.prefetch = opts.consume.prefetch;
    this.iterator = this.iterate();
    const signal = opts.consume.signal;
    // A signal aborted before consume() never fires "abort": check it, or the consumer runs on.
    if (signal?.aborted) void this.stop();
    else signal?.addEventListener("abort", this.onAbort, { once: true });
  }

  /** True once `stop()` ran (or the consume signal aborted). */
  get stopped(): boolean {
    return this.isStopped;
  }

  /** Aborted on stop: pass it to long polls and waits so that stop cuts them short. */
  get signal(): AbortSignal {
    return this.abort.signal;
  }

  /** Items received and not handed out yet. */
  get buffered(): number {
    return this.buffer.length;
  }

  /** Deliveries handed out and not settled. */
  get handedOut(): number {
    return this.handed;
  }

  /** Free room in the prefetch window, counting buffered items: how many a pump may fetch now. */
  get room(): number {
    return this.prefetch - this.handed - this.buffer.length;
  }

  /**
   * True while the iteration waits for a delivery it could take (buffer empty, window open).
   * A transport that fetches on demand (SQLite, memory: a claim is a write, and an eager claim
   * would hold messages an idle consumer never asked for) fetches only then.
   */
  get wanting(): boolean {
    return this.asking;
  }

  /** Resolves at the next hand-out, settle, push, stop or failure. */
  changed(): Promise<void> {
    if (this.isStopped) return Promise.resolve();
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  private notify(): void {
    if (this.waiters.length === 0) return;
    const ws = this.waiters;
    this.waiters = [];
    for (const w of ws) w();
  }

  /** Adds received items; after stop they go straight back to the broker. */
  push(...items: T[]): void {
    if (items.length === 0) return;
    if (this.isStopped) {
      this.track(this.opts.giveBack(items));
      return;
    }
    const rank = this.opts.rank;
    for (const item of items) {
      if (!rank) {
        this.buffer.push(item);
        continue;
      }
      const r = rank(item);
      let i = this.buffer.length;
      while (i > 0 && rank(this.buffer[i - 1]!) > r) i--;
      this.buffer.splice(i, 0, item);
    }
    this.notify();
  }

  /** Removes buffered items the broker has taken back by itself (e.g. with a dead channel). */
  drop(predicate: (item: T) => boolean): T[] {
    const dropped: T[] = [];
    for (let i = this.buffer.length - 1; i >= 0; i--) {
      if (predicate(this.buffer[i]!)) dropped.unshift(...this.buffer.splice(i, 1));
    }
    return dropped;
  }

  /**
   * Ends the consumer with an error it cannot recover from: the iteration throws it (once the
   * buffer is handed out it would be too late to tell). Stops the consumer.
   */
  fail(err: unknown): void {
    if (this.failure || this.isStopped) return;
    this.failure = CeleriacError.from(err, "connection");
    void this.stop();
  }

  stop(): Promise<void> {
    this.stopping ??= this.doStop();
    return this.stopping;
  }

  private async doStop(): Promise<void> {
    this.isStopped = true;
    this.opts.consume.signal?.removeEventListener("abort", this.onAbort);
    this.abort.abort();
    this.notify();
    // A stop from the constructor (signal aborted already) reaches the transport's hook only
    // once `consume()` has returned the queue.
    await Promise.resolve();
    await this.opts.onStop?.();
    // Prefetched, never handed out: back to the broker now rather than after a timeout.
    const rest = this.buffer.splice(0);
    if (rest.length > 0) this.track(this.opts.giveBack(rest));
    await Promise.allSettled([...this.giveBacks]);
  }

  private track(p: Promise<void> | void): void {
    if (!p) return;
    // Best effort: what cannot be given back now returns with the broker's own timeout.
    const t = p.catch(() => undefined);
    this.giveBacks.add(t);
    void t.finally(() => this.giveBacks.delete(t));
  }

  /**
   * The next buffered delivery if the prefetch window has room, without waiting; null otherwise
   * (nothing buffered, window full, stopped or failed: the iteration then waits, or ends).
   * Shares the buffer with the iteration, so a worker can drain what a socket read brought in
   * one synchronous loop and await the iterator only when the buffer is empty.
   */
  takeBuffered(): Delivery | null {
    while (this.handed < this.prefetch && this.buffer.length > 0 && !this.isStopped && !this.failure) {
      const item = this.buffer.shift()!;
      this.handed++;
      let released = false;
      const release = () => {
        if (released) return;
        released = true;
        this.handed--;
        this.notify();
      };
      const delivery = this.opts.toDelivery(item, release);
      this.notify();
      if (delivery) return delivery;
      release();
    }
    return null;
  }

  private async *iterate(): AsyncGenerator<Delivery> {
    try {
      for (;;) {
        if (this.failure) throw this.failure;
        if (this.isStopped) return;
        const delivery = this.takeBuffered();
        if (delivery) {
          yield delivery;
          continue;
        }
        if (this.handed < this.prefetch && this.buffer.length === 0) {
          this.asking = true;
          this.notify();
        }
        await this.changed();
        this.asking = false;
      }
    } finally {
      // Also reached when the caller breaks out of for-await.
      if (!this.isStopped) await this.stop();
    }
  }

  [Symbol.asyncIterator](): AsyncIterator<Delivery> {
    return this.iterator;
  }
}
