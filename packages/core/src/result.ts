import { READY_STATES, type ExceptionInfo, type ResultMeta, type TaskState } from "./envelope.js";
import { CeleriacError, TaskFailedError } from "./errors.js";
import type { ResultBackend } from "./transport.js";

export interface GetResultOptions {
  /** Give up after this long with `CeleriacError("timeout")`. Default 60 s. */
  timeoutMs?: number;
  signal?: AbortSignal;
}

/**
 * A handle to a task's result (Celery's `AsyncResult`). `Result` is the task's declared return
 * type; nothing at run time checks it.
 */
export class AsyncResult<Result = unknown> {
  readonly id: string;
  private readonly backend: ResultBackend | null;
  private cached: ResultMeta | null = null;

  constructor(id: string, backend: ResultBackend | null) {
    this.id = id;
    this.backend = backend;
  }

  private requireBackend(): ResultBackend {
    if (!this.backend) throw new CeleriacError("unsupported", `no result backend configured; cannot read the result of task ${this.id}`);
    return this.backend;
  }

  /** The stored meta, refreshed from the backend unless already ready. */
  async meta(): Promise<ResultMeta | null> {
    if (this.cached && READY_STATES.has(this.cached.status)) return this.cached;
    this.cached = await this.requireBackend().get(this.id);
    return this.cached;
  }

  /** Celery's state: PENDING until a worker stores anything. */
  async state(): Promise<TaskState> {
    return (await this.meta())?.status ?? "PENDING";
  }

  async ready(): Promise<boolean> {
    return READY_STATES.has(await this.state());
  }

  /**
   * Waits for the result. SUCCESS returns it; FAILURE throws `TaskFailedError` carrying Celery's
   * `exc_type`/`exc_message`; REVOKED throws `CeleriacError("task_revoked")`.
   */
  async get(options: GetResultOptions = {}): Promise<Result> {
    const meta = await this.requireBackend().waitFor(this.id, {
      timeoutMs: options.timeoutMs ?? 60_000,
      ...(options.signal ? { signal: options.signal } : {}),
    });
    this.cached = meta;
    return resultFromMeta<Result>(meta);
  }
}

/** Turns a ready meta into the value or the error it stands for. */
export function resultFromMeta<Result>(meta: ResultMeta): Result {
  if (meta.status === "SUCCESS") return meta.result as Result;
  const info = asExceptionInfo(meta.result);
  if (meta.status === "REVOKED") {
    throw new CeleriacError("task_revoked", `task ${meta.task_id} was revoked${info ? `: ${info.exc_message.join(", ")}` : ""}`);
  }
  if (info) throw new TaskFailedError(meta.task_id, info.exc_type, info.exc_message, info.exc_module, meta.traceback);
  throw new TaskFailedError(meta.task_id, "Exception", [String(meta.result)], null, meta.traceback);
}

export function asExceptionInfo(value: unknown): ExceptionInfo | null {
  if (typeof value !== "object" || value === null || !("exc_type" in value)) return null;
  const v = value as Record<string, unknown>;
  const msg = v["exc_message"];
  return {
    exc_type: String(v["exc_type"]),
    // Celery stores the exception's args tuple; older versions a plain string.
    exc_message: Array.isArray(msg) ? msg : msg === undefined || msg === null ? [] : [msg],
    exc_module: typeof v["exc_module"] === "string" ? v["exc_module"] : null,
  };
}

/**
 * A group's results (Celery's `GroupResult`): `get()` gives every member's result in member
 * order, failing with the first failure in that order, as Celery's `join` does.
 */
export class GroupResult<Results extends unknown[] = unknown[]> {
  readonly id: string;
  /** The members' handles, in member order (a member may itself be a group). */
  readonly results: readonly (AsyncResult | GroupResult)[];
  private readonly backend: ResultBackend | null;

  constructor(id: string, results: readonly (AsyncResult | GroupResult)[], backend: ResultBackend | null) {
    this.id = id;
    this.results = results;
    this.backend = backend;
  }

  /** Waits for every member; the deadline is shared by all of them. */
  async get(options: GetResultOptions = {}): Promise<Results> {
    const deadline = Date.now() + (options.timeoutMs ?? 60_000);
    const out: unknown[] = [];
    for (const r of this.results) {
      const left = Math.max(1, deadline - Date.now());
      out.push(await r.get({ timeoutMs: left, ...(options.signal ? { signal: options.signal } : {}) }));
    }
    return out as Results;
  }

  /** True when every member is ready (SUCCESS, FAILURE or REVOKED). */
  async ready(): Promise<boolean> {
    for (const r of this.results) if (!(await r.ready())) return false;
    return true;
  }

  /** Member task ids in order (a nested group contributes its own ids). */
  taskIds(): string[] {
    return this.results.flatMap((r) => (r instanceof GroupResult ? r.taskIds() : [r.id]));
  }

  /**
   * Celery's `GroupResult.save()`: stores the member ids under the group id so
   * `GroupResult.restore(id)` (Python) finds them. Needs a backend with `saveGroup`.
   */
  async save(): Promise<void> {
    if (!this.backend?.saveGroup) {
      throw new CeleriacError("unsupported", `the result backend${this.backend ? ` "${this.backend.name}"` : ""} cannot save group results`);
    }
    await this.backend.saveGroup(this.id, this.taskIds());
  }
}
