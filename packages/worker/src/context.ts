import { Retry, type TraceContext } from "@celeriac/core";

/** Where the message came from, as the worker received it. */
export interface DeliveryInfo {
  queue: string;
  redelivered: boolean;
  deliveryCount: number | null;
  priority: number | null;
}

export interface RetryOptions {
  /** Run the retry this long from now; without it the task's backoff policy decides. */
  countdownMs?: number;
  /** Overrides the task's `maxRetries` for this call only, as in Celery. */
  maxRetries?: number;
  /** The error that caused the retry; stored as the FAILURE once retries run out. */
  cause?: unknown;
  message?: string;
}

/** What a task handler knows about its own run (Celery's `self.request`). */
export interface TaskContext<Kwargs extends Record<string, unknown> = Record<string, unknown>> {
  readonly id: string;
  readonly name: string;
  /** How many times this task has been retried before this run. */
  readonly retries: number;
  readonly eta: Date | null;
  readonly expires: Date | null;
  readonly kwargs: Kwargs;
  /** The message headers exactly as received, with Celery's wire names. */
  readonly headers: Readonly<Record<string, unknown>>;
  readonly rootId: string;
  readonly parentId: string | null;
  readonly groupId: string | null;
  readonly hostname: string;
  readonly delivery: DeliveryInfo;
  /**
   * Aborts at the soft time limit (reason: `SoftTimeLimitExceeded`), at the hard time limit
   * (`TimeLimitExceeded`) or when a shutdown stops waiting (`WorkerShutdownError`). Pass it to
   * fetch and friends, or check it between steps: JS cannot stop a running function from outside.
   */
  readonly signal: AbortSignal;
  /**
   * The W3C trace context of this run when its message carried a valid `traceparent`: a new span
   * (`spanId`) whose parent (`parentSpanId`) is the sender's span. Tasks sent from the handler
   * carry it on. Null when the message had none.
   */
  readonly traceContext: TraceContext | null;
  /** The error to throw to retry this task: `throw ctx.retry({ countdownMs: 5000 })`. */
  retry(options?: RetryOptions): Retry;
}

export function retryError(options: RetryOptions = {}): Retry {
  return new Retry({
    ...(options.countdownMs !== undefined ? { countdownMs: options.countdownMs } : {}),
    ...(options.maxRetries !== undefined ? { maxRetries: options.maxRetries } : {}),
    ...(options.cause !== undefined ? { cause: options.cause } : {}),
    ...(options.message !== undefined ? { message: options.message } : {}),
  });
}

/**
 * A run's abort signal, made only when someone reads it: an AbortController per task costs an
 * allocation and its listeners' bookkeeping on every run, and most handlers never look. An abort
 * before the first read is remembered, so a handler that reads the signal late sees it aborted.
 */
export class LazyAbortSignal {
  private controller: AbortController | null = null;
  private reason: unknown = undefined;
  private isAborted = false;

  get signal(): AbortSignal {
    if (!this.controller) {
      this.controller = new AbortController();
      if (this.isAborted) this.controller.abort(this.reason);
    }
    return this.controller.signal;
  }

  abort(reason: unknown): void {
    if (this.isAborted) return;
    this.isAborted = true;
    this.reason = reason;
    this.controller?.abort(reason);
  }
}

/**
 * The `TaskContext` a handler gets. A class rather than an object literal: a literal with a
 * getter is built property by property on every run, a class instance in one step with its
 * `signal` getter and `retry` on the prototype (`retry` uses no `this`, so it may be destructured).
 */
export class RunContext implements TaskContext {
  constructor(
    readonly id: string,
    readonly name: string,
    readonly retries: number,
    readonly eta: Date | null,
    readonly expires: Date | null,
    readonly kwargs: Record<string, unknown>,
    readonly headers: Readonly<Record<string, unknown>>,
    readonly rootId: string,
    readonly parentId: string | null,
    readonly groupId: string | null,
    readonly hostname: string,
    readonly delivery: DeliveryInfo,
    readonly traceContext: TraceContext | null,
    private readonly lazySignal: LazyAbortSignal,
  ) {}

  /** Created on first read: most handlers never look at it. */
  get signal(): AbortSignal {
    return this.lazySignal.signal;
  }

  retry(options?: RetryOptions): Retry {
    return retryError(options);
  }
}
