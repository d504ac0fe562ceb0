import { CeleriacError } from "./errors.js";
import { assertKnownOptions, optionKeys } from "./options.js";

/** Per-task defaults, Celery's task options in TypeScript's naming (durations in ms). */
export interface TaskOptions {
  /** Queue the producer sends to when the call names none (Celery's `queue` / task_routes). */
  queue?: string;
  /** Retries allowed before the task fails with MaxRetriesExceededError. Celery's default: 3. */
  maxRetries?: number;
  /** Delay of a retry when the task asks for none and has no backoff. Celery's default: 180 s. */
  defaultRetryDelayMs?: number;
  /** Exponential backoff for retries: delay = base * 2^retries (base = this, in ms). */
  retryBackoffMs?: number;
  /** Cap of the backoff delay. Celery's default: 600 s. */
  retryBackoffMaxMs?: number;
  /** Randomise the backoff delay in [0, delay] (Celery's `retry_jitter`, on by default). */
  retryJitter?: boolean;
  /** Ack after the task finishes instead of before it runs (Celery's `acks_late`). */
  acksLate?: boolean;
  /** Hard time limit: the task is failed with TimeLimitExceeded after this long. */
  timeLimitMs?: number;
  /** Soft time limit: the task's AbortSignal fires after this long. */
  softTimeLimitMs?: number;
  /** Celery rate limit syntax: "10/s", "100/m", "1000/h". Per worker. */
  rateLimit?: string;
  /** Do not store the result. */
  ignoreResult?: boolean;
  /** Default priority 0..9, higher is more urgent. */
  priority?: number;
}

const TASK_OPTION_KEYS = optionKeys<TaskOptions>({
  queue: true,
  maxRetries: true,
  defaultRetryDelayMs: true,
  retryBackoffMs: true,
  retryBackoffMaxMs: true,
  retryJitter: true,
  acksLate: true,
  timeLimitMs: true,
  softTimeLimitMs: true,
  rateLimit: true,
  ignoreResult: true,
  priority: true,
});

/**
 * A task's name and types, shared by producers and workers. It carries no implementation, so a
 * producer can import it without the worker's code. The type parameters exist only for the
 * compiler: `Args` is the positional argument tuple, `Kwargs` the keyword arguments.
 */
export interface TaskDefinition<Args extends unknown[] = unknown[], Result = unknown, Kwargs extends Record<string, unknown> = Record<string, unknown>> {
  readonly name: string;
  readonly options: Readonly<TaskOptions>;
  /** Phantom fields carrying the types; never set at run time. */
  readonly __types?: { args: Args; result: Result; kwargs: Kwargs };
}

export type ArgsOf<T> = T extends TaskDefinition<infer A, infer _R, infer _K> ? A : never;
export type ResultOf<T> = T extends TaskDefinition<infer _A, infer R, infer _K> ? R : never;
export type KwargsOf<T> = T extends TaskDefinition<infer _A, infer _R, infer K> ? K : never;

const RATE = /^\s*(\d+(?:\.\d+)?)\s*(?:\/\s*([smh]))?\s*$/;

/** Parses Celery's rate limit syntax into tasks per second. "10/m" -> 1/6. A bare number is per second. */
export function parseRateLimit(rate: string): number {
  const m = RATE.exec(rate);
  if (!m) throw new CeleriacError("invalid_argument", `invalid rate limit ${JSON.stringify(rate)}; expected Celery syntax like "10/s", "100/m" or "1000/h"`);
  const n = Number(m[1]);
  const per = m[2] === "m" ? 60 : m[2] === "h" ? 3600 : 1;
  return n / per;
}

export function defineTask<Args extends unknown[] = unknown[], Result = unknown, Kwargs extends Record<string, unknown> = Record<string, unknown>>(
  name: string,
  options: TaskOptions = {},
): TaskDefinition<Args, Result, Kwargs> {
  if (typeof name !== "string" || name.length === 0) throw new CeleriacError("invalid_argument", "defineTask: a task needs a non-empty name");
  assertKnownOptions(`defineTask(${JSON.stringify(name)})`, options, TASK_OPTION_KEYS);
  if (options.rateLimit !== undefined) parseRateLimit(options.rateLimit);
  if (options.priority !== undefined && !(Number.isInteger(options.priority) && options.priority >= 0 && options.priority <= 9)) {
    throw new CeleriacError("invalid_argument", `defineTask(${JSON.stringify(name)}): priority must be an integer 0..9`);
  }
  return Object.freeze({ name, options: Object.freeze({ ...options }) });
}
