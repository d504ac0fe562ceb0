import { sleep } from "./time.js";

/**
 * A token bucket of capacity 1, like the one Celery's consumer builds per task type: starts run
 * at most `perSecond` apart, with no burst. Each caller reserves the next free start time, so
 * waiters keep their arrival order without a queue of their own.
 */
export class RateLimiter {
  private readonly intervalMs: number;
  private nextFreeAt = 0;

  constructor(perSecond: number) {
    this.intervalMs = perSecond > 0 ? 1000 / perSecond : 0;
  }

  /** Waits for this caller's turn; rejects with the signal's reason when aborted first. */
  async take(signal?: AbortSignal): Promise<void> {
    // Celery reads a rate of 0 as "no limit".
    if (this.intervalMs === 0) return;
    const now = Date.now();
    const at = Math.max(now, this.nextFreeAt);
    this.nextFreeAt = at + this.intervalMs;
    if (at > now) await sleep(at - now, signal);
  }
}
