import { describe } from "./errors.js";
import type { LogFn } from "./logger.js";

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

type EventType = WorkerEvent["type"];
type EventOf<T extends EventType> = Extract<WorkerEvent, { type: T }>;
/** Which task and queue an event is about (`taskId`/`task` are null for a message that did not decode). */
export type EventSubject<T extends EventType> = Pick<EventOf<T>, "taskId" | "task" | "queue">;
/** The fields particular to one event type. */
export type EventFields<T extends EventType> = Omit<EventOf<T>, "type" | "taskId" | "task" | "queue" | "timestamp">;

/**
 * The one place task events leave the worker: to the `onEvent` option and to every `subscribe`
 * listener. A listener that throws is logged and the others still get the event, so a broken
 * monitor cannot break task processing.
 */
export class WorkerEvents {
  private readonly listeners = new Set<WorkerEventListener>();

  constructor(
    private readonly hook: WorkerEventListener | null,
    private readonly log: LogFn,
  ) {}

  /** True when someone listens: the hot path builds an event's fields only then. */
  get active(): boolean {
    return Boolean(this.hook) || this.listeners.size > 0;
  }

  subscribe(listener: WorkerEventListener): () => void {
    this.listeners.add(listener);
    return () => void this.listeners.delete(listener);
  }

  /** Sends a `type` event about `subject`, stamped `timestamp` (default now). */
  emit<T extends EventType>(type: T, subject: NoInfer<EventSubject<T>>, fields: NoInfer<EventFields<T>>, timestamp = Date.now()): void {
    // tsc cannot see that spreading the fields of one event type back together gives that type.
    const event = { type, taskId: subject.taskId, task: subject.task, queue: subject.queue, timestamp, ...fields } as unknown as WorkerEvent;
    if (this.hook) this.deliver(this.hook, event, "onEvent hook threw");
    for (const listener of this.listeners) this.deliver(listener, event, "event listener threw");
  }

  private deliver(listener: WorkerEventListener, event: WorkerEvent, failure: string): void {
    try {
      listener(event);
    } catch (err) {
      this.log("warn", failure, { event: event.type, error: describe(err) });
    }
  }
}
