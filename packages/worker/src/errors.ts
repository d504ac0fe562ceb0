import type { ExceptionInfo } from "@celeriac/core";
import { stringifyCeleryJson } from "@celeriac/core/transport";

/**
 * The reason of `ctx.signal` when the soft time limit passes. Named and moduled like billiard's,
 * so a Python client that re-raises the stored failure sees the exception it knows.
 */
export class SoftTimeLimitExceeded extends Error {
  override readonly name = "SoftTimeLimitExceeded";
  readonly excModule = "billiard.exceptions";
  readonly limitSeconds: number;

  constructor(limitMs: number) {
    super(`SoftTimeLimitExceeded(${limitMs / 1000})`);
    this.limitSeconds = limitMs / 1000;
  }
}

/** The reason of `ctx.signal` when the hard time limit passes and the worker abandons the task. */
export class TimeLimitExceeded extends Error {
  override readonly name = "TimeLimitExceeded";
  readonly excModule = "billiard.exceptions";
  readonly limitSeconds: number;

  constructor(limitMs: number) {
    super(`TimeLimitExceeded(${limitMs / 1000})`);
    this.limitSeconds = limitMs / 1000;
  }
}

/** The reason of `ctx.signal` when a forced shutdown abandons the task. */
export class WorkerShutdownError extends Error {
  override readonly name = "WorkerShutdownError";
  constructor() {
    super("worker is shutting down and stopped waiting for this task");
  }
}

/** The reason of `ctx.signal` when a revoke request with `terminate` names the running task. */
export class TaskRevokedError extends Error {
  override readonly name = "TaskRevokedError";
  constructor(readonly taskId: string) {
    super(`task ${taskId} was revoked (terminate) while running`);
  }
}

/**
 * Celery's exception triple for anything a task threw. A JS error has no Python module, so
 * `exc_module` is null unless the error names one (`excModule`): Python then builds a stand-in
 * class of that name instead of importing one, which keeps a JS error named like a Python builtin
 * function (e.g. "open") from tripping Celery's SecurityError check.
 */
export function exceptionInfo(err: unknown): ExceptionInfo {
  if (err instanceof SoftTimeLimitExceeded || err instanceof TimeLimitExceeded) {
    return { exc_type: err.name, exc_message: [err.limitSeconds], exc_module: err.excModule };
  }
  if (err instanceof Error) {
    const withModule = err as Error & { excModule?: unknown; excArgs?: unknown };
    const excModule = typeof withModule.excModule === "string" ? withModule.excModule : null;
    const excArgs = Array.isArray(withModule.excArgs) ? withModule.excArgs : [err.message];
    return { exc_type: err.name || err.constructor.name || "Error", exc_message: jsonSafe(excArgs), exc_module: excModule };
  }
  return { exc_type: "Error", exc_message: [describe(err)], exc_module: null };
}

/** Celery's own failure types, for failures the worker decides rather than the task. */
export function celeryException(excType: string, message: unknown[], excModule = "celery.exceptions"): ExceptionInfo {
  return { exc_type: excType, exc_message: message, exc_module: excModule };
}

/** The traceback slot of a FAILURE meta: the JS stack, since there is no Python traceback. */
export function tracebackOf(err: unknown): string | null {
  if (err instanceof Error && typeof err.stack === "string") return err.stack;
  return null;
}

export function describe(err: unknown): string {
  if (err instanceof Error) return `${err.name}: ${err.message}`;
  if (typeof err === "string") return err;
  try {
    return JSON.stringify(err) ?? String(err);
  } catch {
    return String(err);
  }
}

/** Exception args must survive JSON; anything that does not is stored as its string form. */
function jsonSafe(values: unknown[]): unknown[] {
  return values.map((v) => {
    if (v === undefined) return null;
    try {
      stringifyCeleryJson(v);
      return v;
    } catch {
      return String(v);
    }
  });
}
