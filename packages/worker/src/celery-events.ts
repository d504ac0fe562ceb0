import { createRequire } from "node:module";
import { loadavg, type as osType } from "node:os";
import { pyRepr, truncatedRepr, type ExchangeMessaging, type ExchangeSpec, type WireMessage } from "@celeriac/core/transport";
import type { AddonHost, WorkerAddon } from "./addons.js";
import type { WorkerEvent } from "./events.js";
import type { LogFn } from "./logger.js";

/**
 * Celery's event stream (`celery worker -E`), sent by this worker so that `celery events`,
 * `app.events.State()`, Flower and friends see it as one of theirs.
 *
 * Wire facts, from Celery 5.2's source:
 * - Exchange `celeryev`, topic, durable (celery/events/event.py `event_exchange`); on Redis its
 *   type becomes fanout (`get_exchange`: "quick hack for Issue #436").
 * - One JSON message per event, routing key = type with `-` -> `.`, header `hostname`,
 *   delivery_mode 1 (celery/events/dispatcher.py `EventDispatcher.publish`/`_publish`).
 * - Every event carries type, hostname, timestamp (float seconds), utcoffset (hours, Python's
 *   `time.timezone // 3600` sign), pid and clock (the Lamport clock, forwarded per event).
 * - Task fields: celery/worker/strategy.py (task-received), celery/worker/request.py (started,
 *   succeeded, retried, failed, rejected, revoked), celery/worker/consumer/consumer.py
 *   (`on_unknown_task`: task-failed with `NotRegistered('name')`).
 * - worker-online / worker-heartbeat / worker-offline: celery/worker/heartbeat.py `Heart._send`.
 */

/** A Celery event: a flat JSON object. */
export type CeleryEvent = Record<string, unknown> & { type: string; hostname: string; timestamp: number; clock: number };

export const CELERY_EVENT_EXCHANGE = "celeryev";

/** celery/events/event.py `get_exchange`: topic on AMQP, fanout on Redis. */
export function celeryEventExchange(transportName: string): ExchangeSpec {
  return { name: CELERY_EVENT_EXCHANGE, type: transportName === "redis" ? "fanout" : "topic", durable: true, autoDelete: false };
}

/** celery/utils/time.py `utcoffset`: hours west of UTC, floored, with DST taken into account. */
export function pythonUtcOffset(now: Date = new Date()): number {
  return Math.floor((now.getTimezoneOffset() * 60) / 3600);
}

/** Python's `platform.system()` for this OS. */
function pythonSystemName(): string {
  const t = osType();
  return t === "Windows_NT" ? "Windows" : t;
}

/** celery/utils/sysinfo.py `load_average`: each value rounded up to two decimals. */
function loadAverage(): number[] {
  return loadavg().map((l) => Math.ceil(l * 100) / 100);
}

function packageVersion(): string {
  try {
    const pkg = createRequire(import.meta.url)("../package.json") as { version?: unknown };
    return typeof pkg.version === "string" ? pkg.version : "unknown";
  } catch {
    return "unknown";
  }
}

/** `sw_ident`/`sw_ver`/`sw_sys` of heartbeats (celery/worker/state.py `SOFTWARE_INFO` on the Python side). */
export const SOFTWARE_INFO = Object.freeze({ sw_ident: "celeriac", sw_ver: packageVersion(), sw_sys: pythonSystemName() });

/**
 * The type and own fields of the Celery event for a worker event (without the common fields),
 * or null when Celery sends none for it.
 */
export function celeryTaskEventFields(event: WorkerEvent): { type: string; fields: Record<string, unknown> } | null {
  switch (event.type) {
    case "task-received":
      return {
        type: "task-received",
        fields: {
          uuid: event.taskId,
          name: event.task,
          // Celery sends the reprs (`req.argsrepr`), which its producer always fills.
          args: event.argsRepr ?? pyRepr(event.args, true),
          kwargs: event.kwargsRepr ?? pyRepr(event.kwargs),
          root_id: event.rootId,
          parent_id: event.parentId,
          retries: event.retries,
          eta: event.eta,
          expires: event.expires,
        },
      };
    case "task-started":
      return { type: "task-started", fields: { uuid: event.taskId } };
    case "task-succeeded":
      // app/trace.py: the result travels as `saferepr(R, resultrepr_maxsize)`; runtime in seconds.
      return { type: "task-succeeded", fields: { uuid: event.taskId, result: truncatedRepr(event.result), runtime: event.runtimeMs / 1000 } };
    case "task-failed":
      return { type: "task-failed", fields: { uuid: event.taskId, exception: event.exception, traceback: event.traceback } };
    case "task-retried":
      return { type: "task-retried", fields: { uuid: event.taskId, exception: event.exception, traceback: event.traceback ?? "" } };
    case "task-revoked":
      // request.py `_announce_revoked`: signum is str(Terminated(signum)); ours is SIGTERM's number.
      return {
        type: "task-revoked",
        fields: { uuid: event.taskId, terminated: event.terminated, signum: event.terminated ? "15" : null, expired: event.expired },
      };
    case "task-rejected":
      if (event.taskId === null) return null; // malformed: Celery's on_invalid_task sends nothing
      if (event.reason.startsWith("NotRegistered")) {
        // consumer.py `on_unknown_task` reports an unregistered task as a failure, not a rejection.
        return { type: "task-failed", fields: { uuid: event.taskId, exception: `NotRegistered(${pyRepr(event.task ?? "")})` } };
      }
      return { type: "task-rejected", fields: { uuid: event.taskId, requeue: event.requeue } };
  }
}

/** What every event of this worker carries besides its own fields. */
export interface EventOrigin {
  hostname: string;
  pid: number;
}

/** celery/events/event.py `Event` plus the dispatcher's common fields. */
export function buildCeleryEvent(type: string, fields: Record<string, unknown>, origin: EventOrigin, clock: number, timestampMs: number): CeleryEvent {
  return {
    hostname: origin.hostname,
    utcoffset: pythonUtcOffset(new Date(timestampMs)),
    pid: origin.pid,
    clock,
    ...fields,
    type,
    timestamp: timestampMs / 1000,
  };
}

const UTF8 = new TextEncoder();

/**
 * The message kombu's Producer.publish makes of an event (JSON, header `hostname`, transient). A
 * list of events of one group is what a Python worker's dispatcher sends for its buffered `task`
 * group (celery/events/dispatcher.py `flush`): one message, routing key `task.multi`, body the
 * list; receivers take a list body as several events (celery/events/receiver.py `_receive`).
 */
export function celeryEventMessage(event: CeleryEvent | readonly CeleryEvent[]): { routingKey: string; message: WireMessage } {
  const first = Array.isArray(event) ? (event as readonly CeleryEvent[])[0] : (event as CeleryEvent);
  if (!first) throw new Error("celeryEventMessage: an empty event group");
  return {
    routingKey: Array.isArray(event) ? `${first.type.split("-")[0]!}.multi` : first.type.replace(/-/g, "."),
    message: {
      body: UTF8.encode(JSON.stringify(event)),
      contentType: "application/json",
      contentEncoding: "utf-8",
      headers: { hostname: first.hostname },
      properties: { deliveryMode: 1 },
    },
  };
}

export interface EventSenderOptions {
  exchanges: ExchangeMessaging;
  exchange: ExchangeSpec;
  log: LogFn;
  /**
   * Events waiting to be published; beyond it the oldest are dropped. Default 10,000: a few
   * seconds of a busy worker's events (three or more per task), enough to ride out a broker
   * hiccup without holding unbounded memory.
   */
  maxBuffered?: number;
  /**
   * Publishes in flight at once. Default 256. Measured with bench/ops-overhead.mjs: with 16, a
   * worker draining ~4,500 tasks/s on Redis produced events faster than 16 round trips could
   * carry them while its event loop was busy, and dropped over half of them.
   */
  maxInFlight?: number;
}

/**
 * Fire-and-forget publishing: `send` never waits and never throws, so a slow or absent broker
 * cannot slow a task down. Events queue in a bounded buffer (oldest dropped first); a failure is
 * logged once per burst of failures, and once more when publishing works again.
 */
export class EventSender {
  /** Messages to publish (an event, or a group of them): `buffer[head..]`; compacted now and then, so taking is O(1). */
  private buffer: (CeleryEvent | CeleryEvent[])[] = [];
  private head = 0;
  private inFlight = 0;
  private failing = false;
  private dropped = 0;
  private idleWaiters: (() => void)[] = [];
  private readonly maxBuffered: number;
  private readonly maxInFlight: number;

  constructor(private readonly opts: EventSenderOptions) {
    this.maxBuffered = opts.maxBuffered ?? 10_000;
    this.maxInFlight = opts.maxInFlight ?? 256;
  }

  /** Events buffered and not yet handed to the broker. */
  get buffered(): number {
    return this.buffer.length - this.head;
  }

  /** Queues one event, or a group of events published as one `<group>.multi` message. */
  send(event: CeleryEvent | CeleryEvent[]): void {
    if (Array.isArray(event) && event.length === 0) return;
    if (this.buffered >= this.maxBuffered) {
      const oldest = this.buffer[this.head++]!;
      this.dropped += Array.isArray(oldest) ? oldest.length : 1;
    }
    this.buffer.push(event);
    this.pump();
  }

  private take(): CeleryEvent | CeleryEvent[] {
    const event = this.buffer[this.head++]!;
    if (this.head >= 1024 && this.head * 2 >= this.buffer.length) {
      this.buffer = this.buffer.slice(this.head);
      this.head = 0;
    }
    return event;
  }

  private pump(): void {
    while (this.inFlight < this.maxInFlight && this.buffered > 0) {
      const event = this.take();
      const { routingKey, message } = celeryEventMessage(event);
      this.inFlight++;
      let p: Promise<void>;
      try {
        p = this.opts.exchanges.publishToExchange(this.opts.exchange, routingKey, message);
      } catch (err) {
        p = Promise.reject(err);
      }
      p.then(
        () => {
          if (this.failing) {
            this.failing = false;
            this.opts.log("info", "Celery events are being published again", { dropped: this.dropped });
            this.dropped = 0;
          }
        },
        (err: unknown) => {
          this.dropped += Array.isArray(event) ? event.length : 1;
          if (!this.failing) {
            this.failing = true;
            this.opts.log("warn", "could not publish a Celery event; dropping events until publishing works again", {
              event: Array.isArray(event) ? event[0]!.type : event.type,
              error: err instanceof Error ? err.message : String(err),
            });
          }
        },
      ).finally(() => {
        this.inFlight--;
        this.pump();
        if (this.inFlight === 0 && this.buffered === 0) for (const w of this.idleWaiters.splice(0)) w();
      });
    }
  }

  /** Resolves when everything sent so far is published (or failed), or after `timeoutMs`. */
  async flush(timeoutMs: number): Promise<void> {
    if (this.inFlight === 0 && this.buffered === 0) return;
    let timer: ReturnType<typeof setTimeout> | undefined;
    await Promise.race([new Promise<void>((r) => this.idleWaiters.push(r)), new Promise<void>((r) => (timer = setTimeout(r, timeoutMs)))]);
    clearTimeout(timer);
  }
}

/** celery/events/dispatcher.py `buffer_limit`: most task events in one `task.multi` message. */
const TASK_GROUP_LIMIT = 24;

/** How long stop waits for worker-offline (and what is still buffered) to reach the broker. */
const STOP_FLUSH_MS = 3_000;

/** The addon: null when events are off or the transport has no exchanges. */
export async function startCeleryEvents(host: AddonHost): Promise<WorkerAddon | null> {
  const settings = host.options.events;
  const exchanges = host.transport.exchanges;
  if (!settings || !exchanges) return null;
  const { worker, log } = host;
  const origin: EventOrigin = { hostname: worker.hostname, pid: process.pid };
  const sender = new EventSender({ exchanges, exchange: celeryEventExchange(host.transport.name), log });
  let clock = 0;
  // Task events are grouped as a Python worker groups them (buffer_group=['task'],
  // buffer_limit=24, flushed on the next loop turn): one `task.multi` message instead of one per
  // event. A busy worker sends three or more events per task; one broker round trip each cost a
  // quarter of its throughput in bench/ops-overhead.mjs.
  let taskGroup: CeleryEvent[] = [];
  let flushScheduled = false;
  const flushTaskGroup = (): void => {
    flushScheduled = false;
    if (taskGroup.length === 0) return;
    sender.send(taskGroup);
    taskGroup = [];
  };
  const emit = (type: string, fields: Record<string, unknown>, timestampMs = Date.now()): void => {
    clock++;
    const event = buildCeleryEvent(type, fields, origin, clock, timestampMs);
    if (!type.startsWith("task-")) {
      flushTaskGroup();
      sender.send(event);
      return;
    }
    taskGroup.push(event);
    if (taskGroup.length >= TASK_GROUP_LIMIT) flushTaskGroup();
    else if (!flushScheduled) {
      flushScheduled = true;
      setImmediate(flushTaskGroup);
    }
  };
  const heartbeatFields = (): Record<string, unknown> => {
    const c = worker.counters;
    return {
      freq: settings.heartbeatMs / 1000,
      active: c.inFlight,
      // state.py all_total_count: tasks accepted (started), finished or not.
      processed: c.processed + c.inFlight,
      loadavg: loadAverage(),
      ...SOFTWARE_INFO,
    };
  };

  const unsubscribe = worker.subscribe((event) => {
    const mapped = celeryTaskEventFields(event);
    if (mapped) emit(mapped.type, mapped.fields, event.timestamp);
  });
  emit("worker-online", heartbeatFields());
  const timer = setInterval(() => emit("worker-heartbeat", heartbeatFields()), settings.heartbeatMs);
  timer.unref();
  log("info", "sending Celery events", { exchange: CELERY_EVENT_EXCHANGE, heartbeatMs: settings.heartbeatMs });

  return {
    name: "celery-events",
    async stop() {
      clearInterval(timer);
      unsubscribe();
      emit("worker-offline", heartbeatFields());
      await sender.flush(STOP_FLUSH_MS);
    },
  };
}
