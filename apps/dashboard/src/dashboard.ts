import {
  CeleriacError,
  createClient,
  createControl,
  resultBackendFromUrl,
  transportFromUrl,
  type Client,
  type Control,
  type ResultBackend,
  type ResultMeta,
  type Transport,
} from "@celeriac/core";
import { assertKnownOptions, type ExchangeSubscription } from "@celeriac/core/transport";
import { receiveCeleryEvents, type EventReceiverStats } from "./events.js";
import { createQueueInspector, type QueueInspector, type QueueStats } from "./queues.js";
import { FleetState } from "./state.js";
import { openTaskStore, type TaskStore } from "./store.js";

export interface DashboardOptions {
  /** Broker URL (amqp://, redis://, sqs://, sqlite:///): events, remote control and queue depths come from it. */
  brokerUrl: string;
  /** Result backend URL: task results as stored (Flower's `/api/task/result`), where events carry only a repr. Default none. */
  resultBackendUrl?: string;
  /** Most tasks kept in memory (and in the SQLite file). Default 100,000. */
  maxTasks?: number;
  /** Ask the workers (`inspect stats/registered/active/reserved/active_queues`) this often. Default 5 s. */
  inspectIntervalMs?: number;
  /** Time each remote-control request waits for the next reply. Default 1 s, Celery's. */
  controlTimeoutMs?: number;
  /** Queues always listed, besides those the workers report consuming. Default ["celery"]. */
  queues?: readonly string[];
  /** Keep task history in this SQLite file, so a restart keeps it. Default: memory only. */
  persistPath?: string;
  /** Save to the file this often. Default 2 s. */
  persistIntervalMs?: number;
  /** Logger for the few things an operator must see; default writes to stderr. */
  log?: (level: "info" | "warn" | "error", message: string) => void;
}

/** What a remote-control action returned, for the page and the API. */
export interface ActionResult {
  replies: Record<string, unknown>;
}

export interface Dashboard {
  readonly state: FleetState;
  readonly brokerUrl: string;
  readonly transportName: string;
  /** False on brokers without exchanges (SQS, SQLite): no events and no remote control there. */
  readonly hasEvents: boolean;
  readonly receiverStats: EventReceiverStats;
  /** Last queue statistics, refreshed with the remote-control poll and on demand. */
  queues(refresh?: boolean): Promise<QueueStats[]>;
  /** Asks the workers now (instead of waiting for the next poll). */
  refreshWorkers(): Promise<void>;
  revoke(taskId: string, options?: { terminate?: boolean; signal?: string }): Promise<ActionResult>;
  rateLimit(taskName: string, rateLimit: string, destination?: string[]): Promise<ActionResult>;
  shutdown(hostname: string): Promise<void>;
  /** The stored result meta (null when none); throws `unsupported` without a result backend. */
  storedResult(taskId: string): Promise<ResultMeta | null>;
  readonly hasResultBackend: boolean;
  /** Sends a task by name (Flower's async-apply / send-task). */
  sendTask(name: string, args: unknown[], kwargs: Record<string, unknown>, options: { queue?: string; countdownMs?: number; taskId?: string }): Promise<string>;
  close(): Promise<void>;
}

const OPTION_KEYS = [
  "brokerUrl",
  "resultBackendUrl",
  "maxTasks",
  "inspectIntervalMs",
  "controlTimeoutMs",
  "queues",
  "persistPath",
  "persistIntervalMs",
  "log",
] as const;

function defaultLog(level: string, message: string): void {
  process.stderr.write(`celeriac dashboard ${level}: ${message}\n`);
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/**
 * Connects to the broker, listens to Celery events, polls the workers through remote control and
 * the broker for queue depths. Whoever creates a connection closes it: `close()` closes all of
 * them (the transport, the control client, the queue inspector, the store).
 */
export async function createDashboard(options: DashboardOptions): Promise<Dashboard> {
  assertKnownOptions("createDashboard", options, OPTION_KEYS);
  if (typeof options.brokerUrl !== "string" || options.brokerUrl === "") throw new CeleriacError("invalid_argument", "createDashboard: brokerUrl is required");
  const log = options.log ?? defaultLog;
  const inspectIntervalMs = options.inspectIntervalMs ?? 5_000;
  const controlTimeoutMs = options.controlTimeoutMs ?? 1_000;
  const state = new FleetState({ inspectAliveMs: 3 * inspectIntervalMs, ...(options.maxTasks !== undefined ? { maxTasks: options.maxTasks } : {}) });
  const store: TaskStore | null = options.persistPath
    ? await openTaskStore(options.persistPath, state, { intervalMs: options.persistIntervalMs ?? 2_000, log })
    : null;

  const transport: Transport = await transportFromUrl(options.brokerUrl);
  let backend: ResultBackend | null = null;
  let control: Control | null = null;
  let subscription: ExchangeSubscription | null = null;
  let inspector: QueueInspector | null = null;
  let client: Client | null = null;
  const receiverStats: EventReceiverStats = { messages: 0, events: 0, malformed: 0 };
  let timer: ReturnType<typeof setInterval> | null = null;
  let lastQueues: QueueStats[] = [];
  let closed = false;

  try {
    await transport.connect();
    if (options.resultBackendUrl) backend = await resultBackendFromUrl(options.resultBackendUrl);
    client = createClient({ transport });
    if (transport.exchanges) {
      subscription = await receiveCeleryEvents(transport, (e) => state.ingest(e), receiverStats);
      control = createControl(transport, { timeoutMs: controlTimeoutMs });
    } else {
      log(
        "warn",
        `${transport.name} has no exchanges: no Celery events and no remote control on this broker (kombu has none there either); showing queues only`,
      );
    }
    try {
      inspector = await createQueueInspector(options.brokerUrl);
    } catch (err) {
      log("warn", `queue depths unavailable: ${err instanceof Error ? err.message : String(err)}`);
    }
  } catch (err) {
    await subscription?.close().catch(() => undefined);
    await control?.close().catch(() => undefined);
    await transport.close().catch(() => undefined);
    await backend?.close().catch(() => undefined);
    await store?.close().catch(() => undefined);
    throw CeleriacError.from(err, "connection");
  }

  const queueNames = (): string[] => {
    const names = new Set(options.queues ?? ["celery"]);
    for (const w of state.listWorkers()) for (const q of w.queues ?? []) names.add(q);
    return [...names].sort();
  };

  const refreshQueues = async (): Promise<QueueStats[]> => {
    const names = queueNames();
    let stats: QueueStats[] = names.map((name) => ({ name, messages: null, consumers: null, exists: true }));
    if (inspector) {
      try {
        stats = await inspector.stats(names);
      } catch (err) {
        log("warn", `could not read queue depths from the broker: ${err instanceof Error ? err.message : String(err)}`);
      }
    }
    // Where the broker keeps no consumer list (Redis, SQLite), count the live workers that say they consume it.
    for (const s of stats) {
      if (s.consumers === null && control) {
        s.consumers = state.listWorkers().filter((w) => state.isAlive(w) && (w.queues ?? []).includes(s.name)).length;
      }
    }
    lastQueues = stats;
    return stats;
  };

  let refreshing: Promise<void> | null = null;
  const refreshWorkers = (): Promise<void> => {
    if (!control || closed) return Promise.resolve();
    const c = control;
    refreshing ??= (async () => {
      const [stats, registered, active, reserved, activeQueues] = await Promise.all(
        (["stats", "registered", "active", "reserved", "active_queues"] as const).map((m) => c.broadcast(m).catch(() => ({}) as Record<string, unknown>)),
      );
      const hosts = new Set([
        ...Object.keys(stats!),
        ...Object.keys(registered!),
        ...Object.keys(active!),
        ...Object.keys(reserved!),
        ...Object.keys(activeQueues!),
      ]);
      for (const h of hosts) {
        const s = stats![h];
        const r = registered![h];
        const a = active![h];
        const rs = reserved![h];
        const q = activeQueues![h];
        state.updateFromInspect(h, {
          ...(isRecord(s) && !("error" in s) ? { stats: s } : {}),
          ...(Array.isArray(r) ? { registered: r.map(String) } : {}),
          ...(Array.isArray(a) ? { active: a } : {}),
          ...(Array.isArray(rs) ? { reserved: rs } : {}),
          ...(Array.isArray(q) ? { queues: q.filter(isRecord).map((x) => String(x["name"])) } : {}),
        });
      }
    })().finally(() => (refreshing = null));
    return refreshing;
  };

  const poll = async (): Promise<void> => {
    await refreshWorkers();
    if (!closed) await refreshQueues();
  };
  void poll().catch((err: unknown) => log("warn", `first poll failed: ${String(err)}`));
  timer = setInterval(() => void poll().catch(() => undefined), inspectIntervalMs);
  timer.unref();

  const needControl = (what: string): Control => {
    if (!control) throw new CeleriacError("unsupported", `${what} needs remote control, which ${transport.name} does not have (amqp:// and redis:// do)`);
    return control;
  };

  return {
    state,
    brokerUrl: options.brokerUrl,
    transportName: transport.name,
    hasEvents: transport.exchanges !== undefined,
    receiverStats,
    async queues(refresh = false) {
      return refresh || lastQueues.length === 0 ? refreshQueues() : lastQueues;
    },
    refreshWorkers,
    hasResultBackend: backend !== null,
    async storedResult(taskId) {
      if (!backend) throw new CeleriacError("unsupported", "no result backend: start the dashboard with --result-backend URL");
      return backend.get(taskId);
    },
    async revoke(taskId, o = {}) {
      const replies = await needControl("revoke").revoke(taskId, { terminate: o.terminate ?? false, ...(o.signal ? { signal: o.signal } : {}) });
      return { replies };
    },
    async rateLimit(taskName, rateLimit, destination) {
      // celery/worker/control.py `rate_limit(task_name, rate_limit)`, as Celery's Control.rate_limit sends it.
      const replies = await needControl("rate limit").broadcast(
        "rate_limit",
        { task_name: taskName, rate_limit: rateLimit },
        destination && destination.length > 0 ? { destination } : {},
      );
      return { replies };
    },
    async shutdown(hostname) {
      await needControl("shutdown").shutdown({ destination: [hostname] });
    },
    async sendTask(name, args, kwargs, o) {
      const r = await client!.sendTask(name, {
        args,
        kwargs,
        ...(o.queue ? { queue: o.queue } : {}),
        ...(o.countdownMs !== undefined ? { countdownMs: o.countdownMs } : {}),
        ...(o.taskId ? { taskId: o.taskId } : {}),
      });
      return r.id;
    },
    async close() {
      if (closed) return;
      closed = true;
      if (timer) clearInterval(timer);
      await refreshing?.catch(() => undefined);
      await subscription?.close().catch(() => undefined);
      await control?.close().catch(() => undefined);
      await inspector?.close().catch(() => undefined);
      await transport.close().catch(() => undefined);
      await backend?.close().catch(() => undefined);
      await store?.close();
    },
  };
}
