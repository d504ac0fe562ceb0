import { maskUrl } from "./url-credentials.js";
/**
 * One error base for the whole SDK. `code` is a small closed set so callers can branch on it
 * without string-matching messages.
 */
export type CeleriacErrorCode =
  | "invalid_argument" // options or inputs the caller got wrong
  | "decode_failed" // a message that cannot be read (malformed, unsupported encoding, pickle)
  | "unsupported" // a capability the transport or codec does not have
  | "already_settled" // a delivery acked/nacked twice
  | "timeout" // waiting for a result or a broker took too long
  | "closed" // a transport, client or worker used after close
  | "task_failed" // a task finished in FAILURE; see exc_type / exc_message
  | "task_revoked" // a task was revoked or expired
  | "connection" // a broker or backend connection problem
  | "outcome_unknown" // a publish whose reply was lost with the connection: the broker may have it, so a retry may duplicate
  | "internal";

export class CeleriacError extends Error {
  override readonly name: string = "CeleriacError";
  readonly code: CeleriacErrorCode;

  constructor(code: CeleriacErrorCode, message: string, options?: { cause?: unknown }) {
    // A broker URL inside a message (ours, or a client library's wrapped by `from`) never shows its password.
    super(maskUrl(message), options);
    this.code = code;
  }

  /** Normalise anything thrown into a CeleriacError, keeping the original as `cause`. */
  static from(err: unknown, code: CeleriacErrorCode = "internal"): CeleriacError {
    if (err instanceof CeleriacError) return err;
    if (err instanceof Error) return new CeleriacError(code, err.message, { cause: err });
    return new CeleriacError(code, String(err), { cause: err });
  }
}

/**
 * The FAILURE of a task, as stored in the result backend by Python Celery or a Celeriac worker.
 * `excType`/`excMessage`/`excModule` are Celery's exception triple.
 */
export class TaskFailedError extends CeleriacError {
  override readonly name = "TaskFailedError";
  readonly taskId: string;
  readonly excType: string;
  readonly excMessage: unknown[];
  readonly excModule: string | null;
  readonly traceback: string | null;

  constructor(taskId: string, excType: string, excMessage: unknown[], excModule: string | null, traceback: string | null) {
    super("task_failed", `task ${taskId} failed: ${excType}: ${excMessage.map((m) => String(m)).join(", ")}`);
    this.taskId = taskId;
    this.excType = excType;
    this.excMessage = excMessage;
    this.excModule = excModule;
    this.traceback = traceback;
  }
}

/**
 * Thrown by a task to ask for a retry (Celery's `self.retry()`). The worker re-sends the task
 * with `retries + 1` and an ETA, or fails it with `MaxRetriesExceededError` when out of retries.
 */
export class Retry extends Error {
  override readonly name = "Retry";
  /** Delay before the retry runs; when absent the task's backoff policy decides. */
  readonly countdownMs: number | undefined;
  readonly maxRetries: number | undefined;

  constructor(options: { countdownMs?: number; maxRetries?: number; cause?: unknown; message?: string } = {}) {
    super(options.message ?? "retry requested", { cause: options.cause });
    this.countdownMs = options.countdownMs;
    this.maxRetries = options.maxRetries;
  }
}

/**
 * Thrown by a task to reject its message (Celery's `Reject`): the message is dead-lettered
 * (or dropped where the transport has no dead-letter) unless `requeue` is set.
 */
export class Reject extends Error {
  override readonly name = "Reject";
  readonly requeue: boolean;

  constructor(reason: string, options: { requeue?: boolean } = {}) {
    super(reason);
    this.requeue = options.requeue ?? false;
  }
}
