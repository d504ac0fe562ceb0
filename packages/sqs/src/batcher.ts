/** What one entry of a batch call came back as: null on success, else the error for its caller. */
export type BatchOutcome = Error | null;

interface Pending<E> {
  entry: E;
  resolve: () => void;
  reject: (err: Error) => void;
}

/**
 * Collects single calls (delete, change visibility) into SQS batch calls of up to 10 entries:
 * a batch goes out as soon as it is full, or `delayMs` after its first entry. Holds nothing but
 * the entries of the batch being filled, so it does not grow with the life of a connection.
 */
export class Batcher<E> {
  private pending: Pending<E>[] = [];
  private timer: ReturnType<typeof setTimeout> | null = null;
  private readonly inFlight = new Set<Promise<void>>();

  constructor(
    private readonly send: (entries: E[]) => Promise<BatchOutcome[]>,
    private readonly delayMs: number,
    private readonly maxSize = 10,
  ) {}

  add(entry: E): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      this.pending.push({ entry, resolve, reject });
      if (this.pending.length >= this.maxSize) this.flush();
      else if (this.timer === null) {
        this.timer = setTimeout(() => this.flush(), this.delayMs);
      }
    });
  }

  /** Sends what is collected now. */
  flush(): void {
    if (this.timer !== null) {
      clearTimeout(this.timer);
      this.timer = null;
    }
    while (this.pending.length > 0) {
      const batch = this.pending.splice(0, this.maxSize);
      const p = this.send(batch.map((b) => b.entry)).then(
        (outcomes) => {
          batch.forEach((b, i) => {
            const o = outcomes[i];
            if (o) b.reject(o);
            else b.resolve();
          });
        },
        (err: unknown) => {
          for (const b of batch) b.reject(err instanceof Error ? err : new Error(String(err)));
        },
      );
      this.inFlight.add(p);
      void p.finally(() => this.inFlight.delete(p));
    }
  }

  /** Flushes and waits for every batch sent so far. */
  async drain(): Promise<void> {
    this.flush();
    await Promise.allSettled([...this.inFlight]);
  }
}
