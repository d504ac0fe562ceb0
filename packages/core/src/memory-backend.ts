import { READY_STATES, type ResultMeta } from "./envelope.js";
import { CeleriacError } from "./errors.js";
import type { ResultBackend } from "./transport.js";

/** An in-process result backend for tests and single-process use. */
export class MemoryResultBackend implements ResultBackend {
  readonly name = "memory";
  private readonly metas = new Map<string, ResultMeta>();
  private readonly listeners = new Map<string, Set<(m: ResultMeta) => void>>();

  async store(meta: ResultMeta): Promise<void> {
    const prev = this.metas.get(meta.task_id);
    if (prev?.status === "SUCCESS") return; // a SUCCESS is final, as in Celery
    this.metas.set(meta.task_id, meta);
    for (const l of this.listeners.get(meta.task_id) ?? []) l(meta);
  }

  async get(taskId: string): Promise<ResultMeta | null> {
    return this.metas.get(taskId) ?? null;
  }

  waitFor(taskId: string, options: { timeoutMs: number; signal?: AbortSignal }): Promise<ResultMeta> {
    const now = this.metas.get(taskId);
    if (now && READY_STATES.has(now.status)) return Promise.resolve(now);
    return new Promise((resolve, reject) => {
      let set = this.listeners.get(taskId);
      if (!set) this.listeners.set(taskId, (set = new Set()));
      const listeners = set;
      const cleanup = () => {
        clearTimeout(timer);
        listeners.delete(onMeta);
        options.signal?.removeEventListener("abort", onAbort);
      };
      const onMeta = (m: ResultMeta) => {
        if (!READY_STATES.has(m.status)) return;
        cleanup();
        resolve(m);
      };
      const onAbort = () => {
        cleanup();
        reject(new CeleriacError("timeout", `waiting for task ${taskId} was aborted`));
      };
      const timer = setTimeout(() => {
        cleanup();
        reject(new CeleriacError("timeout", `task ${taskId} not ready after ${options.timeoutMs} ms`));
      }, options.timeoutMs);
      listeners.add(onMeta);
      options.signal?.addEventListener("abort", onAbort, { once: true });
    });
  }

  async forget(taskId: string): Promise<void> {
    this.metas.delete(taskId);
  }

  async close(): Promise<void> {}
}

export function createMemoryResultBackend(): MemoryResultBackend {
  return new MemoryResultBackend();
}

/**
 * `waitFor` for backends that can only be polled (SQLite, files): polls `get` with a backoff
 * from 5 ms up to `maxIntervalMs`.
 */
export async function pollForResult(
  get: (taskId: string) => Promise<ResultMeta | null>,
  taskId: string,
  options: { timeoutMs: number; signal?: AbortSignal; maxIntervalMs?: number },
): Promise<ResultMeta> {
  const deadline = Date.now() + options.timeoutMs;
  let interval = 5;
  for (;;) {
    const meta = await get(taskId);
    if (meta && READY_STATES.has(meta.status)) return meta;
    if (options.signal?.aborted) throw new CeleriacError("timeout", `waiting for task ${taskId} was aborted`);
    const left = deadline - Date.now();
    if (left <= 0) throw new CeleriacError("timeout", `task ${taskId} not ready after ${options.timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, Math.min(interval, left)));
    interval = Math.min(interval * 2, options.maxIntervalMs ?? 200);
  }
}
