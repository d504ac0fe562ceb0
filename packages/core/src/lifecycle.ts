import { CeleriacError } from "./errors.js";

/**
 * What happens to a transport's broker connection, as one typed stream. `disconnected` opens an
 * outage, `connected` after it closes it, `reconnecting` is each wait before another attempt,
 * `failed` means the transport gave up: work stops and the error is also thrown to whoever
 * was waiting (a consumer's iteration, a publish).
 */
export type ConnectionEvent =
  | { type: "connecting" }
  | { type: "connected" }
  | { type: "disconnected"; error: CeleriacError }
  | { type: "reconnecting"; attempt: number; attemptMs: number }
  | { type: "failed"; error: CeleriacError };

/** The read side of a transport's lifecycle (`Transport.lifecycle`). */
export interface ConnectionEvents {
  /** Calls `listener` with every event from now on. Returns the unsubscribe function. */
  subscribe(listener: (event: ConnectionEvent) => void): () => void;
  /** "connected" until a `disconnected` or `failed`, then that until it changes. */
  readonly state: "idle" | "connecting" | "connected" | "disconnected" | "failed";
}

export interface BackoffOptions {
  /** First delay (default 100 ms). */
  initialDelayMs?: number;
  /** Longest delay (default 5 000 ms). */
  maxDelayMs?: number;
}

/**
 * Exponential backoff with ±20% jitter, so that many clients of one restarted broker do not
 * all come back in the same millisecond.
 */
export class Backoff {
  private attempt = 0;
  readonly initialDelayMs: number;
  readonly maxDelayMs: number;

  constructor(options: BackoffOptions = {}) {
    this.initialDelayMs = options.initialDelayMs ?? 100;
    this.maxDelayMs = options.maxDelayMs ?? 5_000;
  }

  /** Attempts since the last `reset()`. */
  get attempts(): number {
    return this.attempt;
  }

  /** The next delay (and counts the attempt). */
  next(): number {
    const base = Math.min(this.maxDelayMs, this.initialDelayMs * 2 ** this.attempt);
    this.attempt++;
    return Math.round(base * (0.8 + Math.random() * 0.4));
  }

  reset(): void {
    this.attempt = 0;
  }
}

/** Resolves after `ms`, or at once when `signal` aborts. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  if (signal?.aborted) return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      signal?.removeEventListener("abort", done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal?.addEventListener("abort", done, { once: true });
  });
}

/**
 * The one connection lifecycle of every transport: emits the events, and runs the
 * backoff-and-retry loop (`retry`) so that no transport writes its own. A transport whose client
 * reconnects by itself (ioredis) only reports through `report`.
 */
export class ConnectionLifecycle implements ConnectionEvents {
  private readonly listeners = new Set<(event: ConnectionEvent) => void>();
  private current: ConnectionEvents["state"] = "idle";
  private readonly backoffOptions: BackoffOptions;

  constructor(
    private readonly transport: string,
    options: BackoffOptions = {},
  ) {
    this.backoffOptions = options;
  }

  get state(): ConnectionEvents["state"] {
    return this.current;
  }

  subscribe(listener: (event: ConnectionEvent) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** A fresh backoff with this lifecycle's delays. */
  backoff(): Backoff {
    return new Backoff(this.backoffOptions);
  }

  /**
   * Emits `event`. A `disconnected` while already disconnected is not repeated (several
   * consumers see the same outage), nor a `connected` while connected.
   */
  report(event: ConnectionEvent): void {
    if (event.type === "disconnected" && (this.current === "disconnected" || this.current === "failed")) return;
    if (event.type === "connected" && this.current === "connected") return;
    if (event.type !== "reconnecting") this.current = event.type;
    for (const l of [...this.listeners]) {
      try {
        l(event);
      } catch {
        // A listener's bug must not break the connection it listens to.
      }
    }
  }

  /** `disconnected` with `err` as a CeleriacError of code "connection". */
  lost(err: unknown): void {
    this.report({ type: "disconnected", error: toConnectionError(this.transport, err) });
  }

  /**
   * Runs `attempt` until it resolves, waiting with backoff between failures and reporting the
   * outage: `disconnected` on the first failure, `reconnecting` before each retry, `connected`
   * once it succeeds again. Stops (resolving undefined) when `signal` aborts. An error for which
   * `isFatal` says true is not retried: `failed` is reported and the error thrown.
   */
  async retry<T>(attempt: () => Promise<T>, options: { signal?: AbortSignal; isFatal?: (err: unknown) => boolean } = {}): Promise<T | undefined> {
    const backoff = this.backoff();
    for (;;) {
      if (options.signal?.aborted) return undefined;
      try {
        const value = await attempt();
        if (this.current !== "connected") this.report({ type: "connected" });
        return value;
      } catch (err) {
        if (options.signal?.aborted) return undefined;
        if (options.isFatal?.(err)) {
          const error = toConnectionError(this.transport, err);
          this.report({ type: "failed", error });
          throw error;
        }
        this.lost(err);
        const ms = backoff.next();
        this.report({ type: "reconnecting", attempt: backoff.attempts, attemptMs: ms });
        await sleep(ms, options.signal);
      }
    }
  }
}

function toConnectionError(transport: string, err: unknown): CeleriacError {
  if (err instanceof CeleriacError) return err;
  const text = err instanceof Error ? err.message : String(err);
  return new CeleriacError("connection", `${transport}: ${text}`, { cause: err });
}
