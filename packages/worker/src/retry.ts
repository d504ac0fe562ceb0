import { Reject, Retry, type ExceptionInfo, type TaskEnvelope, type TaskOptions } from "@celeriac/core";
import { toCeleryIso } from "@celeriac/core/transport";
import { celeryException, exceptionInfo, tracebackOf } from "./errors.js";

// Celery's Task defaults: max_retries 3, default_retry_delay 180 s, retry_backoff_max 600 s.
const DEFAULT_MAX_RETRIES = 3;
const DEFAULT_RETRY_DELAY_MS = 180_000;
const DEFAULT_BACKOFF_MAX_MS = 600_000;

/**
 * What to do with a task that threw `Retry` (celery/app/task.py `Task.retry`): send it again with
 * `retries + 1` and a new ETA, or, once `max_retries` is used up, fail it with the error the
 * retry was about (`exc`) or with MaxRetriesExceededError.
 */
export type RetryPlan =
  | {
      kind: "retry";
      /** The message to publish: the same task with `retries + 1` and `eta` now + delayMs. */
      envelope: TaskEnvelope;
      retries: number;
      delayMs: number;
      /** Stored as the RETRY result and sent in the task-retried event. */
      exception: ExceptionInfo;
      traceback: string | null;
    }
  | {
      kind: "fail";
      /** The error the FAILURE is about: the retry's cause, or the Retry itself. */
      error: unknown;
      exception: ExceptionInfo;
      traceback: string | null;
    };

/**
 * Plans a retry without doing it: no clock, broker or backend is read, so the rules can be tested
 * on their own. `now` is epoch ms; `random` (for backoff jitter) defaults to Math.random.
 */
export function planRetry(env: TaskEnvelope, retry: Retry, options: TaskOptions, now: number, random: () => number = Math.random): RetryPlan {
  const h = env.headers;
  const retries = h.retries + 1;
  const maxRetries = retry.maxRetries ?? options.maxRetries ?? DEFAULT_MAX_RETRIES;
  if (retries > maxRetries) {
    // Celery re-raises the error the retry was about, if it had one.
    const cause = retry.cause;
    if (cause instanceof Error && !isRetry(cause)) {
      return { kind: "fail", error: cause, exception: exceptionInfo(cause), traceback: tracebackOf(cause) };
    }
    const msg = `Can't retry ${h.task}[${h.id}] args:${safeJson(env.args)} kwargs:${safeJson(env.kwargs)}`;
    return { kind: "fail", error: retry, exception: celeryException("MaxRetriesExceededError", [msg]), traceback: tracebackOf(retry) };
  }
  const delayMs = retryDelayMs(options, retry.countdownMs, h.retries, random);
  return {
    kind: "retry",
    envelope: { ...env, headers: { ...h, retries, eta: toCeleryIso(new Date(now + delayMs)) } },
    retries,
    delayMs,
    exception: retry.cause !== undefined ? exceptionInfo(retry.cause) : celeryException("Retry", [`Retry in ${delayMs / 1000}s`]),
    traceback: tracebackOf(retry.cause ?? retry),
  };
}

/** Celery's retry delay: the explicit countdown, else exponential backoff, else the default. */
export function retryDelayMs(options: TaskOptions, countdownMs: number | undefined, retriesSoFar: number, random: () => number = Math.random): number {
  if (countdownMs !== undefined) return Math.max(0, countdownMs);
  if (options.retryBackoffMs !== undefined && options.retryBackoffMs > 0) {
    const cap = options.retryBackoffMaxMs ?? DEFAULT_BACKOFF_MAX_MS;
    const delay = Math.min(cap, options.retryBackoffMs * 2 ** retriesSoFar);
    // Full jitter, as Celery's get_exponential_backoff_interval: anywhere in [0, delay].
    return (options.retryJitter ?? true) ? Math.floor(random() * (delay + 1)) : delay;
  }
  return options.defaultRetryDelayMs ?? DEFAULT_RETRY_DELAY_MS;
}

// By shape as well as by class: a second copy of @celeriac/core in node_modules (a duplicated
// install) has its own Retry class, and a retry must not be stored as a FAILURE because of that.
export function isRetry(err: unknown): err is Retry {
  return err instanceof Retry || (err instanceof Error && err.name === "Retry" && "countdownMs" in err && "maxRetries" in err);
}

export function isReject(err: unknown): err is Reject {
  return err instanceof Reject || (err instanceof Error && err.name === "Reject" && typeof (err as { requeue?: unknown }).requeue === "boolean");
}

function safeJson(v: unknown): string {
  try {
    return JSON.stringify(v) ?? "null";
  } catch {
    return String(v);
  }
}
