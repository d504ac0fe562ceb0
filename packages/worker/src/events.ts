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

/** Every task event type, for checking a `subscribe(listener, types)` argument. */
export const WORKER_EVENT_TYPES: readonly EventType[] = [
  "task-received",
  "task-started",
  "task-succeeded",
  "task-failed",
  "task-retried",
  "task-revoked",
  "task-rejected",
] satisfies readonly EventType[];
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
  /** Each listener with the event types it asked for (null: every type). */
  private readonly listeners = new Map<WorkerEventListener, ReadonlySet<EventType> | null>();
  /** Listeners (and the hook) per type, so `wants` is one lookup on the hot path. */
  private readonly wanted = new Map<EventType, number>();
  private wantAll = 0;

  constructor(
    private readonly hook: WorkerEventListener | null,
    private readonly log: LogFn,
  ) {
    if (hook) this.wantAll++;
  }

  /**
   * True when someone listens to `type`: the hot path builds that event's fields only then (the
   * remote-control counter listens to task-started alone, and should not cost a task-received
   * and a task-succeeded per task).
   */
  wants(type: EventType): boolean {
    return this.wantAll > 0 || (this.wanted.get(type) ?? 0) > 0;
  }

  /** `types`: only these event types reach the listener (default: all). */
  subscribe(listener: WorkerEventListener, types?: readonly EventType[]): () => void {
    if (this.listeners.has(listener)) return () => this.unsubscribe(listener);
    const only = types ? new Set(types) : null;
    this.listeners.set(listener, only);
    if (only) for (const t of only) this.wanted.set(t, (this.wanted.get(t) ?? 0) + 1);
    else this.wantAll++;
    return () => this.unsubscribe(listener);
  }

  private unsubscribe(listener: WorkerEventListener): void {
    if (!this.listeners.has(listener)) return;
    const only = this.listeners.get(listener)!;
    this.listeners.delete(listener);
    if (only) for (const t of only) this.wanted.set(t, (this.wanted.get(t) ?? 1) - 1);
    else this.wantAll--;
  }

  /** Sends a `type` event about `subject`, stamped `timestamp` (default now). */
  emit<T extends EventType>(type: T, subject: NoInfer<EventSubject<T>>, fields: NoInfer<EventFields<T>>, timestamp = Date.now()): void {
    // tsc cannot see that spreading the fields of one event type back together gives that type.
    const event = { type, taskId: subject.taskId, task: subject.task, queue: subject.queue, timestamp, ...fields } as unknown as WorkerEvent;
    if (this.hook) this.deliver(this.hook, event, "onEvent hook threw");
    for (const [listener, only] of this.listeners) if (!only || only.has(type)) this.deliver(listener, event, "event listener threw");
  }

  private deliver(listener: WorkerEventListener, event: WorkerEvent, failure: string): void {
    try {
      listener(event);
    } catch (err) {
      this.log("warn", failure, { event: event.type, error: describe(err) });
    }
  }
}
