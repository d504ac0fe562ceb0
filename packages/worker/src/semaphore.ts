/**
 * Counts running tasks; waiters are served in arrival order so no task type starves another.
 * `stop` aborting rejects every waiter (one listener for all of them: hundreds may wait).
 */
export class Semaphore {
  private active = 0;
  private waiters: { resolve: () => void; reject: (reason: unknown) => void }[] = [];

  constructor(
    private readonly limit: number,
    private readonly stop: AbortSignal,
  ) {
    stop.addEventListener(
      "abort",
      () => {
        const waiting = this.waiters;
        this.waiters = [];
        for (const w of waiting) w.reject(stop.reason);
      },
      { once: true },
    );
  }

  get running(): number {
    return this.active;
  }

  /** Takes a slot if one is free now and nobody waits for one. */
  tryAcquire(): boolean {
    if (this.stop.aborted || this.active >= this.limit || this.waiters.length > 0) return false;
    this.active++;
    return true;
  }

  /** Waits for a slot; rejects with the stop reason once stop aborts. */
  acquire(): Promise<void> {
    if (this.stop.aborted) return Promise.reject(this.stop.reason);
    if (this.tryAcquire()) return Promise.resolve();
    return new Promise((resolve, reject) => this.waiters.push({ resolve, reject }));
  }

  release(): void {
    const next = this.waiters.shift();
    // The slot passes straight to the next waiter, so `active` stays the same.
    if (next) next.resolve();
    else this.active--;
  }
}
