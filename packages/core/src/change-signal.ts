/**
 * Wakes consumers that poll: a consumer waits for a change (a publish, a settle, a close) or for
 * a time-out, whichever comes first, so an idle poll loop costs timers rather than a busy loop.
 * For transport authors whose broker has no push (SQLite, the memory transport).
 */
export class ChangeSignal {
  private readonly waiters = new Set<() => void>();

  /** Wakes every waiter now. */
  notify(): void {
    for (const w of [...this.waiters]) w();
  }

  /** Resolves at the next `notify()` or after `ms` (at least 1 ms), whichever is first. */
  wait(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.waiters.delete(done);
        resolve();
      };
      const timer = setTimeout(done, Math.max(1, ms));
      this.waiters.add(done);
    });
  }
}
