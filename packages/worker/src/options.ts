import { CeleriacError, type Codec, type ResultBackend, type Transport } from "@celeriac/core";
import { assertKnownOptions, optionKeys } from "@celeriac/core/transport";
import { hostname as osHostname } from "node:os";
import type { Logger, LogLevel } from "./logger.js";
import type { WorkerEvent } from "./events.js";

export interface WorkerOptions {
  /** The broker connection. The worker never connects or closes it: whoever creates it does. */
  transport: Transport;
  /** Where states and results go. Without one, results are not stored (Celery's DisabledBackend). */
  resultBackend?: ResultBackend;
  /** Queues to consume. Default `["celery"]`, Celery's default queue. */
  queues?: string[];
  /** Tasks running at once. Default 10: handlers are async I/O, not CPU-bound processes. */
  concurrency?: number;
  /** Messages held per running slot (Celery's `worker_prefetch_multiplier`). Default 4. */
  prefetchMultiplier?: number;
  /** How long `stop()` waits for running tasks before forcing. Default 30 s. */
  shutdownGraceMs?: number;
  /**
   * Names this worker in logs, contexts, results, events and remote control (Celery's `-n`).
   * Default `celeriac-<pid>@<os hostname>`: unique per process, because remote control gives each
   * name one mailbox queue, and two processes sharing a name would split its messages between
   * them (Celery warns of duplicate nodenames for the same reason).
   */
  hostname?: string;
  /** Structured log sink. Default: JSON lines on stderr. */
  logger?: Logger;
  /** Least level logged. Default "info". */
  logLevel?: LogLevel;
  /** Log nothing. */
  silent?: boolean;
  /**
   * How often the unsettled messages the worker holds (running, waiting for an ETA or a slot) get
   * their visibility extended, on transports with `visibilityExtension`. Default: a third of the
   * transport's visibility timeout (`delivery.visibilityTimeoutMs`), so a held message is always
   * extended well before the broker would hand it to another worker; 60 s where the transport
   * names no timeout.
   */
  etaHeartbeatMs?: number;
  /**
   * How far each extension pushes the visibility out from now. Default: the transport's whole
   * visibility timeout; where it names none, 5 heartbeats.
   */
  visibilityExtensionMs?: number;
  /**
   * How long the broker may stay unreachable (from the transport's `disconnected` until its
   * `connected`) before the worker gives up and fails, so `closed` rejects and `celeriac worker`
   * exits 1 for its supervisor to see. A transport that reports `failed` fails the worker at
   * once. Default 15 minutes; `Infinity` waits forever. Celery's worker gives up after
   * `broker_connection_max_retries` = 100 attempts spaced 2 s, 4 s, ... up to 30 s (about 46
   * minutes); a time bound says the same thing independently of each transport's backoff.
   */
  brokerOutageLimitMs?: number;
  /**
   * Most messages held in memory for a future ETA on top of the prefetch window. Default: the
   * prefetch window again (concurrency * prefetchMultiplier), so the broker is asked for at most
   * twice Celery's prefetch. Beyond it, ETA messages go back to the broker with a delay when the
   * transport has `delayedDelivery`, and otherwise take a regular prefetch slot.
   */
  maxHeldEta?: number;
  /**
   * An ETA message further away than this goes back to the broker with a delay instead of
   * being held, where the broker delays a nack itself (`delivery.maxNackDelayMs`, e.g. SQS
   * standard queues, up to 15 minutes a hop): it comes back when its ETA is near, and costs no
   * worker memory or visibility heartbeats meanwhile. Elsewhere (and on SQS FIFO queues) the
   * worker holds it as before. Default 15 minutes.
   */
  handBackEtaBeyondMs?: number;
  /** Called for each task event (Celery's event names). Errors thrown here are logged. */
  onEvent?: (event: WorkerEvent) => void;
  /** Decoders by content type. Default: core's codecs. */
  codecs?: ReadonlyMap<string, Codec>;
  /** Store STARTED when a task begins (Celery's `task_track_started`). Default false. */
  trackStarted?: boolean;
  /**
   * Send Celery events (`celery worker -E`): worker-online/heartbeat/offline and task events on
   * the `celeryev` exchange, for `celery events`, Flower and friends. Needs a transport with
   * exchanges (AMQP, Redis). Default false, as in Celery.
   */
  events?: boolean | EventsOptions;
  /**
   * Answer Celery's remote control (`celery inspect`, `celery control`) on `celery.pidbox`.
   * Default: on when the transport has exchanges (AMQP, Redis), as Celery's
   * `worker_enable_remote_control`; `true` on a transport without them is an error.
   */
  remoteControl?: boolean;
  /**
   * Celery's `task_routes` for the messages this worker sends itself (chain steps, links,
   * errbacks, chord bodies) whose signature names no `queue`: task name (or glob with `*`) ->
   * queue, the same shape as the client's `routes`. Unrouted ones go to the worker's first queue.
   */
  routes?: Record<string, string>;
}

export interface EventsOptions {
  /** How often worker-heartbeat is sent. Default 2 s (Celery's `--heartbeat-interval`). */
  heartbeatMs?: number;
}

export interface ResolvedOptions {
  transport: Transport;
  resultBackend: ResultBackend | null;
  queues: string[];
  concurrency: number;
  prefetch: number;
  shutdownGraceMs: number;
  hostname: string;
  /** null: derived from each delivery's visibility timeout. */
  etaHeartbeatMs: number | null;
  /** null: derived from each delivery's visibility timeout. */
  visibilityExtensionMs: number | null;
  brokerOutageLimitMs: number;
  maxHeldEta: number;
  handBackEtaBeyondMs: number;
  onEvent: ((event: WorkerEvent) => void) | null;
  codecs: ReadonlyMap<string, Codec> | undefined;
  trackStarted: boolean;
  /** null when events are off. */
  events: { heartbeatMs: number } | null;
  remoteControl: boolean;
  /** The queue `routes` gives a task name, or null. */
  route: (task: string) => string | null;
}

const KNOWN = optionKeys<WorkerOptions>({
  transport: true,
  resultBackend: true,
  queues: true,
  concurrency: true,
  prefetchMultiplier: true,
  shutdownGraceMs: true,
  hostname: true,
  logger: true,
  logLevel: true,
  silent: true,
  etaHeartbeatMs: true,
  visibilityExtensionMs: true,
  brokerOutageLimitMs: true,
  maxHeldEta: true,
  handBackEtaBeyondMs: true,
  onEvent: true,
  codecs: true,
  trackStarted: true,
  events: true,
  remoteControl: true,
  routes: true,
});

const DEFAULT_BROKER_OUTAGE_LIMIT_MS = 15 * 60_000;

function positiveInt(name: string, value: number | undefined, fallback: number, min = 1): number {
  if (value === undefined) return fallback;
  if (!Number.isInteger(value) || value < min) {
    throw new CeleriacError("invalid_argument", `createWorker: ${name} must be an integer >= ${min}, got ${String(value)}`);
  }
  return value;
}

export function resolveOptions(options: WorkerOptions): ResolvedOptions {
  if (options === null || typeof options !== "object") throw new CeleriacError("invalid_argument", "createWorker: options are required");
  assertKnownOptions("createWorker", options, KNOWN);
  if (!options.transport) throw new CeleriacError("invalid_argument", "createWorker: transport is required");
  if (typeof options.transport.consume !== "function" || typeof options.transport.publish !== "function") {
    throw new CeleriacError("invalid_argument", "createWorker: transport must implement the Transport contract (consume, publish, capabilities)");
  }
  const logger = options.logger as unknown;
  if (logger !== undefined && typeof logger !== "function" && typeof (logger as { log?: unknown } | null)?.log !== "function") {
    throw new CeleriacError("invalid_argument", "createWorker: logger must be a function or an object with a log(record) method");
  }
  if (options.logLevel !== undefined && !["debug", "info", "warn", "error"].includes(options.logLevel)) {
    throw new CeleriacError("invalid_argument", `createWorker: logLevel must be "debug", "info", "warn" or "error", got ${JSON.stringify(options.logLevel)}`);
  }
  if (options.onEvent !== undefined && typeof options.onEvent !== "function") {
    throw new CeleriacError("invalid_argument", "createWorker: onEvent must be a function");
  }
  const queues = options.queues ?? ["celery"];
  if (!Array.isArray(queues) || queues.length === 0 || queues.some((q) => typeof q !== "string" || q === "")) {
    throw new CeleriacError("invalid_argument", "createWorker: queues must be a non-empty list of queue names");
  }
  const concurrency = positiveInt("concurrency", options.concurrency, 10);
  const multiplier = positiveInt("prefetchMultiplier", options.prefetchMultiplier, 4);
  const hasExchanges = options.transport.exchanges !== undefined;
  let events: { heartbeatMs: number } | null = null;
  if (options.events !== undefined && options.events !== false) {
    if (options.events !== true && (options.events === null || typeof options.events !== "object")) {
      throw new CeleriacError("invalid_argument", "createWorker: events must be a boolean or { heartbeatMs }");
    }
    const eo = options.events === true ? {} : options.events;
    assertKnownOptions("createWorker events", eo, optionKeys<EventsOptions>({ heartbeatMs: true }));
    if (!hasExchanges) {
      throw new CeleriacError("unsupported", `createWorker: events need a transport with exchanges (AMQP, Redis); ${options.transport.name} has none`);
    }
    events = { heartbeatMs: positiveInt("events.heartbeatMs", eo.heartbeatMs, 2_000) };
  }
  if (options.remoteControl === true && !hasExchanges) {
    throw new CeleriacError("unsupported", `createWorker: remote control needs a transport with exchanges (AMQP, Redis); ${options.transport.name} has none`);
  }
  const routes = Object.entries(options.routes ?? {}).map(([glob, queue]) => {
    if (typeof queue !== "string" || queue === "")
      throw new CeleriacError("invalid_argument", `createWorker: routes[${JSON.stringify(glob)}] must be a queue name`);
    return {
      pattern: new RegExp(
        `^${glob
          .split("*")
          .map((part) => part.replace(/[.*+?^${}()|[\]\\]/g, "\\$&"))
          .join(".*")}$`,
      ),
      queue,
    };
  });
  return {
    route: (task: string) => routes.find((r) => r.pattern.test(task))?.queue ?? null,
    transport: options.transport,
    resultBackend: options.resultBackend ?? null,
    queues: [...queues],
    concurrency,
    prefetch: concurrency * multiplier,
    shutdownGraceMs: positiveInt("shutdownGraceMs", options.shutdownGraceMs, 30_000, 0),
    hostname: options.hostname ?? `celeriac-${process.pid}@${osHostname()}`,
    etaHeartbeatMs: options.etaHeartbeatMs === undefined ? null : positiveInt("etaHeartbeatMs", options.etaHeartbeatMs, 0),
    visibilityExtensionMs: options.visibilityExtensionMs === undefined ? null : positiveInt("visibilityExtensionMs", options.visibilityExtensionMs, 0),
    brokerOutageLimitMs:
      options.brokerOutageLimitMs === Infinity ? Infinity : positiveInt("brokerOutageLimitMs", options.brokerOutageLimitMs, DEFAULT_BROKER_OUTAGE_LIMIT_MS),
    maxHeldEta: positiveInt("maxHeldEta", options.maxHeldEta, concurrency * multiplier, 0),
    handBackEtaBeyondMs: positiveInt("handBackEtaBeyondMs", options.handBackEtaBeyondMs, 900_000, 0),
    onEvent: options.onEvent ?? null,
    codecs: options.codecs,
    trackStarted: options.trackStarted ?? false,
    events,
    remoteControl: options.remoteControl ?? hasExchanges,
  };
}
