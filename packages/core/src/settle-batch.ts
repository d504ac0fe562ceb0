/**
 * Coalesces settles into one broker write per event-loop turn: every `add` made before the flush
 * joins the same batch, and `flush` gets them all at once (AMQP turns them into one
 * `basic.ack multiple`, Redis into one script call). The flush runs from `setImmediate`, i.e.
 * after the I/O callbacks of this turn: a burst of deliveries read from one socket chunk settles
 * in one write instead of one write per message.
 *
 * Every item of a batch shares one promise (no allocation per settle), which settles when the
 * transport's flush has done its part: a late ack resolves only once its write was issued, as
 * it did one write at a time.
 */
export class SettleBatch<T> {
  private items: T[] = [];
  private outcome: Promise<void> | null = null;
  private resolve: (() => void) | null = null;
  private reject: ((err: unknown) => void) | null = null;
  private scheduled = false;

  constructor(private readonly flushItems: (items: T[]) => Promise<void> | void) {}

  /** Items waiting for the next flush. */
  get pending(): number {
    return this.items.length;
  }

  /** Queues `item` for this turn's flush; resolves (or rejects) with that flush. */
  add(item: T): Promise<void> {
    this.items.push(item);
    if (!this.outcome) {
      this.outcome = new Promise<void>((resolve, reject) => {
        this.resolve = resolve;
        this.reject = reject;
      });
    }
    if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(() => {
        this.scheduled = false;
        this.flush();
      });
    }
    return this.outcome;
  }

  /**
   * Flushes now, synchronously handing the batch to the transport. A transport calls it before
   * a settle that must reach the broker after the acks queued so far (a nack, a reject, close).
   */
  flush(): void {
    if (this.items.length === 0) return;
    const items = this.items;
    const resolve = this.resolve!;
    const reject = this.reject!;
    this.items = [];
    this.outcome = null;
    this.resolve = null;
    this.reject = null;
    let done: Promise<void> | void;
    try {
      done = this.flushItems(items);
    } catch (err) {
      reject(err);
      return;
    }
    if (done) done.then(resolve, reject);
    else resolve();
  }
}
