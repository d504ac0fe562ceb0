/** Fields every task event has. `timestamp` is epoch milliseconds; `queue` is where it came from. */
interface TaskEventBase {
  taskId: string;
  task: string;
  queue: string;
  timestamp: number;
}

/**
 * Task events, named and shaped after Celery's (`task-received`, `task-succeeded`, ...), so that
 * Celery's event stream, metrics and logs can all be fed from one place.
 */
export type WorkerEvent =
  | (TaskEventBase & {
      type: "task-received";
      eta: string | null;
      expires: string | null;
      retries: number;
      args: unknown[];
      kwargs: Record<string, unknown>;
      /** The producer's display strings (`argsrepr`/`kwargsrepr`), when it sent them. */
      argsRepr: string | null;
      kwargsRepr: string | null;
      rootId: string | null;
      parentId: string | null;
    })
  | (TaskEventBase & {
      type: "task-started";
      /** From the later of receipt and ETA to the start: time spent waiting for a slot or a rate limit. */
      waitMs: number;
    })
  | (TaskEventBase & { type: "task-succeeded"; runtimeMs: number; result: unknown })
  | (TaskEventBase & {
      type: "task-failed";
      excType: string;
      /** Python-style repr of the exception, e.g. `ValueError('boom')`, as Celery's events carry it. */
      exception: string;
      traceback: string | null;
      runtimeMs: number | null;
    })
  | (TaskEventBase & { type: "task-retried"; retries: number; delayMs: number; exception: string; traceback: string | null })
  | (TaskEventBase & {
      type: "task-revoked";
      /** Revoked because its `expires` passed, rather than by a `revoke` request. */
      expired: boolean;
      /** A running task whose signal was aborted by `revoke(..., { terminate: true })`. */
      terminated: boolean;
    })
  | {
      type: "task-rejected";
      taskId: string | null;
      task: string | null;
      queue: string;
      timestamp: number;
      reason: string;
      requeue: boolean;
    };

export type WorkerEventListener = (event: WorkerEvent) => void;

/** Counters for metrics; read them whenever, they only ever describe this worker. */
export interface WorkerCounters {
  /** Tasks that finished running (any outcome). */
  processed: number;
  succeeded: number;
  failed: number;
  retried: number;
  /** Messages rejected: malformed, unknown task, or a task that threw `Reject`. */
  rejected: number;
  /** Tasks revoked: expired, or named in a revoke request. */
  revoked: number;
  /** Tasks running right now. */
  inFlight: number;
  /** Messages received and not finished yet, running or waiting (ETA, rate limit, slot). */
  prefetched: number;
  /** Of those, messages held for a future ETA. */
  heldEta: number;
}

/** A message the worker holds, as remote control (`inspect active/reserved/scheduled`) reports it. */
export interface HeldTask {
  id: string;
  name: string;
  args: unknown[];
  kwargs: Record<string, unknown>;
  argsRepr: string | null;
  kwargsRepr: string | null;
  queue: string;
  priority: number | null;
  redelivered: boolean;
  eta: string | null;
  /** running: its handler is executing; scheduled: waiting for its ETA; reserved: waiting for a slot. */
  phase: "running" | "scheduled" | "reserved";
  /** Epoch ms the handler started, for running tasks. */
  startedAt: number | null;
  /** The message has been acked (early ack, or a finished late-ack task). */
  acknowledged: boolean;
}
