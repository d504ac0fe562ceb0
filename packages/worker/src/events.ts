/** Task events, named like Celery's (`task-received`, `task-succeeded`, ...). */
export type WorkerEvent =
  | { type: "task-received"; taskId: string; task: string; queue: string; eta: string | null }
  | { type: "task-started"; taskId: string; task: string }
  | { type: "task-succeeded"; taskId: string; task: string; runtimeMs: number }
  | { type: "task-failed"; taskId: string; task: string; excType: string; runtimeMs: number | null }
  | { type: "task-retried"; taskId: string; task: string; retries: number; delayMs: number }
  | { type: "task-revoked"; taskId: string; task: string; expired: boolean }
  | { type: "task-rejected"; taskId: string | null; task: string | null; reason: string; requeue: boolean };

/** Counters for metrics; read them whenever, they only ever describe this worker. */
export interface WorkerCounters {
  /** Tasks that finished running (any outcome). */
  processed: number;
  succeeded: number;
  failed: number;
  retried: number;
  /** Messages rejected: malformed, unknown task, or a task that threw `Reject`. */
  rejected: number;
  /** Tasks revoked because they expired. */
  revoked: number;
  /** Tasks running right now. */
  inFlight: number;
  /** Messages received and not finished yet, running or waiting (ETA, rate limit, slot). */
  prefetched: number;
  /** Of those, messages held for a future ETA. */
  heldEta: number;
}
