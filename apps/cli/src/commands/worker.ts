import { resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { CeleriacError, maskUrl, type ConnectionEvent, type ConnectionEvents } from "@celeriac/core";
import { createWorker, jsonLinesLogger, type Logger, type LogLevel, type Worker } from "@celeriac/worker";
import { checkConnectionPackages, displayUrl, openConnections, type Connections, type QueueDeclarationFlags } from "../config.js";
import { celeryTextLogger, parseLogLevel } from "../log-format.js";
import { importOptional } from "../optional.js";

export interface WorkerCommandOptions extends QueueDeclarationFlags {
  broker?: string;
  resultBackend?: string;
  tasks: string[];
  queues: string;
  concurrency: string;
  prefetchMultiplier?: string;
  hostname?: string;
  shutdownGrace: string;
  /** Seconds the broker may stay unreachable before the worker exits 1; 0 never gives up. */
  brokerOutageLimit: string;
  quiet?: boolean;
  /** Celery's -l/--loglevel: DEBUG, INFO, WARNING, ERROR, CRITICAL. */
  loglevel: string;
  /** `text` (Celery's lines) or `json` (one object per line); default: text on a terminal. */
  logFormat?: string;
  /** Celery's -E: send worker and task events. */
  events?: boolean;
  /** `--without-remote-control`: Celery's worker_enable_remote_control = False. */
  withoutRemoteControl?: boolean;
  /** Serve Prometheus metrics on this port (0: any free one), on `metricsHost`. */
  metricsPort?: string;
  metricsHost?: string;
}

/**
 * Loads a tasks module: its default export (or `register`) receives the worker. A module that
 * fails to load is named, with the error's own stack, so the line at fault is on screen.
 */
export async function loadTasks(worker: Worker, path: string): Promise<void> {
  let mod: { default?: unknown; register?: unknown };
  try {
    mod = (await import(pathToFileURL(resolve(path)).href)) as typeof mod;
  } catch (err) {
    const detail = err instanceof Error ? (err.stack ?? `${err.name}: ${err.message}`) : String(err);
    throw new CeleriacError("invalid_argument", `could not load the --tasks module ${path}:\n${detail}`, { cause: err });
  }
  const register = typeof mod.default === "function" ? mod.default : mod.register;
  if (typeof register !== "function") {
    throw new CeleriacError("invalid_argument", `${path} must export a default function (or \`register\`) that takes the worker and registers tasks`);
  }
  await (register as (w: Worker) => unknown)(worker);
}

function positiveInt(flag: string, value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new CeleriacError("invalid_argument", `--${flag} must be a positive integer, got ${JSON.stringify(value)}`);
  return n;
}

function nonNegativeSeconds(flag: string, value: string): number {
  const n = Number(value);
  if (value.trim() === "" || !Number.isFinite(n) || n < 0)
    throw new CeleriacError("invalid_argument", `--${flag} must be a number of seconds, got ${JSON.stringify(value)}`);
  return n;
}

interface Checked {
  queues: string[];
  concurrency: number;
  prefetchMultiplier: number | null;
  shutdownGraceMs: number;
  brokerOutageLimitMs: number;
  metricsPort: number | null;
  logLevel: LogLevel;
  logFormat: "text" | "json";
}

/** Every argument, checked before the worker starts. */
function checkOptions(opts: WorkerCommandOptions): Checked {
  if (opts.tasks.length === 0) throw new CeleriacError("invalid_argument", "--tasks <module> is required: the module that registers your task handlers");
  const queues = opts.queues
    .split(",")
    .map((q) => q.trim())
    .filter(Boolean);
  if (queues.length === 0) throw new CeleriacError("invalid_argument", "--queues names no queue");
  const logFormat = opts.logFormat ?? (process.stderr.isTTY ? "text" : "json");
  if (logFormat !== "text" && logFormat !== "json")
    throw new CeleriacError("invalid_argument", `--log-format must be text or json, got ${JSON.stringify(logFormat)}`);
  return {
    queues,
    concurrency: positiveInt("concurrency", opts.concurrency),
    prefetchMultiplier: opts.prefetchMultiplier !== undefined ? positiveInt("prefetch-multiplier", opts.prefetchMultiplier) : null,
    shutdownGraceMs: nonNegativeSeconds("shutdown-grace", opts.shutdownGrace) * 1000,
    brokerOutageLimitMs: outageLimitMs(opts.brokerOutageLimit),
    metricsPort: opts.metricsPort !== undefined ? portNumber("metrics-port", opts.metricsPort) : null,
    logLevel: parseLogLevel(opts.loglevel),
    logFormat,
  };
}

/**
 * Writes the broker's outages to stderr, whatever `--quiet` says: when one starts, each wait
 * before a reconnect, when it ends (with its length), and a connection that gave up. Returns a
 * function to stop. `onFailed` runs when the transport gives up, so the worker stops and the
 * process exits non-zero rather than sit idle.
 */
export function logConnectionEvents(
  lifecycle: ConnectionEvents,
  write: (line: string) => void,
  onFailed: (event: Extract<ConnectionEvent, { type: "failed" }>) => void,
): () => void {
  let downSince: number | null = null;
  return lifecycle.subscribe((event) => {
    switch (event.type) {
      case "disconnected":
        downSince = Date.now();
        write(`celeriac worker: broker connection lost: ${event.error.message}\n`);
        break;
      case "reconnecting":
        write(`celeriac worker: reconnecting to the broker in ${event.attemptMs} ms (attempt ${event.attempt})\n`);
        break;
      case "connected":
        if (downSince !== null) write(`celeriac worker: broker connection restored after ${((Date.now() - downSince) / 1000).toFixed(1)} s\n`);
        downSince = null;
        break;
      case "failed":
        write(`celeriac worker: broker connection failed, stopping: ${event.error.message}\n`);
        onFailed(event);
        break;
      case "connecting":
        break;
    }
  });
}

/**
 * Exit codes of `celeriac worker`. 0 and 1 are Celery's EX_OK and EX_FAILURE (celery/platforms.py);
 * Celery exits 1 on a cold shutdown too, which would not tell a forced stop from a failure, so a
 * forced stop has a code of its own. 2 is every celeriac command's code for invalid arguments.
 */
export const WORKER_EXIT = {
  /** Warm shutdown: every task in flight finished (or none was running). */
  ok: 0,
  /** The worker could not work: the broker failed or stayed unreachable too long, or the consumer broke. */
  failure: 1,
  /** Cold shutdown: a second SIGTERM/SIGINT, SIGQUIT, or the grace time ran out; running tasks were handed back. */
  forced: 3,
} as const;

/**
 * After a clean stop the process exits by itself once nothing is left on the event loop; a tasks
 * module that left something open (a database pool, a timer) would keep it up forever, so after
 * this long it is named and the process exits anyway.
 */
const LINGER_MS = 2_000;

/** `celeriac worker`: consumes the queues until SIGTERM/SIGINT, then shuts down gracefully. */
export async function workerCommand(opts: WorkerCommandOptions): Promise<void> {
  // The broker's package first: `--broker amqp://` without @celeriac/amqp is the first thing to
  // fix. Then every argument, before any file or connection is opened.
  await checkConnectionPackages({ broker: opts.broker, resultBackend: opts.resultBackend });
  const checked = checkOptions(opts);
  // Imported only when asked for, so a worker without metrics needs no prom-client.
  const serveMetrics =
    checked.metricsPort !== null ? (await importOptional("@celeriac/metrics", "--metrics-port", () => import("@celeriac/metrics"))).serveMetrics : null;
  const conn: Connections = await openConnections({ broker: opts.broker, resultBackend: opts.resultBackend, queueDeclaration: opts });
  const text = checked.logFormat === "text" ? celeryTextLogger(process.stderr, process.stderr.isTTY === true && !process.env["NO_COLOR"]) : null;
  const logger: Logger = text ? text.logger : jsonLinesLogger();
  const worker = createWorker({
    transport: conn.transport,
    ...(conn.resultBackend ? { resultBackend: conn.resultBackend } : {}),
    queues: checked.queues,
    concurrency: checked.concurrency,
    ...(checked.prefetchMultiplier !== null ? { prefetchMultiplier: checked.prefetchMultiplier } : {}),
    ...(opts.hostname ? { hostname: opts.hostname } : {}),
    shutdownGraceMs: checked.shutdownGraceMs,
    brokerOutageLimitMs: checked.brokerOutageLimitMs,
    ...(opts.quiet ? { silent: true } : { logger, logLevel: checked.logLevel }),
    ...(opts.events ? { events: true } : {}),
    ...(opts.withoutRemoteControl ? { remoteControl: false } : {}),
    // SIGTERM/SIGINT: warm shutdown (finish tasks in flight); a second signal forces.
    installSignalHandlers: true,
  });
  text?.attach(worker, checked.logLevel);
  let metrics: Awaited<ReturnType<NonNullable<typeof serveMetrics>>> | null = null;
  // Outages are logged whatever --quiet says; a connection that gives up stops the worker and
  // the process exits non-zero rather than sit idle.
  const stopLogging = logConnectionEvents(
    conn.transport.lifecycle,
    (line) => process.stderr.write(maskUrl(line)),
    // The worker itself fails on a `failed` event (or an outage longer than its limit): closed
    // rejects and the process exits with WORKER_EXIT.failure.
    () => {},
  );
  try {
    for (const t of opts.tasks) await loadTasks(worker, t);
    metrics =
      serveMetrics && checked.metricsPort !== null ? await serveMetrics(worker, { port: checked.metricsPort, host: opts.metricsHost ?? "127.0.0.1" }) : null;
    // A broker that cannot be reached yet keeps connect() waiting (the outage is logged above):
    // SIGTERM/SIGINT meanwhile stops the worker before it started, and closing the connection
    // ends the wait, so the process exits instead of ignoring the signal.
    let connecting = true;
    let stoppedWhileConnecting = false;
    const giveUp = worker.closed.then(() => {
      if (!connecting) return;
      stoppedWhileConnecting = true;
      return conn.close();
    });
    try {
      await conn.transport.connect();
    } catch (err) {
      if (!stoppedWhileConnecting) throw err;
    } finally {
      connecting = false;
    }
    if (stoppedWhileConnecting) {
      await giveUp;
      stopLogging();
      await metrics?.close();
      return;
    }
    await worker.start();
  } catch (err) {
    stopLogging();
    await metrics?.close();
    await conn.close();
    throw err;
  }
  if (metrics && !opts.quiet) process.stderr.write(`celeriac worker metrics: ${metrics.url}\n`);
  if (!opts.quiet) {
    process.stderr.write(
      `celeriac worker ready: broker ${displayUrl(conn.brokerUrl)}, results ${conn.backendUrl ? displayUrl(conn.backendUrl) : "disabled"}, queues ${checked.queues.join(",")}, concurrency ${checked.concurrency}\n`,
    );
  }
  try {
    await worker.closed;
  } catch (err) {
    // Failed: the error reaches bin.ts (exit code 1); abandoned handlers must not keep us up.
    exitUnlessIdle();
    throw err;
  } finally {
    stopLogging();
    await metrics?.close();
    await conn.close();
  }
  if (worker.forced) {
    // A handler that ignores its abort signal would run on (and repeat the side effects of a task
    // whose message is already back on the queue); a cold shutdown ends the process now.
    process.stderr.write("celeriac worker: cold shutdown, running tasks were handed back\n");
    process.exit(WORKER_EXIT.forced);
  }
  process.exitCode ??= WORKER_EXIT.ok;
  exitUnlessIdle();
}

/** Exits (with the exit code set by then) if the event loop has not emptied by itself after `LINGER_MS`. */
function exitUnlessIdle(): void {
  setTimeout(() => {
    process.stderr.write(
      `celeriac worker: stopped, but something (a task still running, or a handle the tasks module opened) keeps the process alive; exiting\n`,
    );
    process.exit();
  }, LINGER_MS).unref();
}

function outageLimitMs(value: string): number {
  const ms = Math.round(nonNegativeSeconds("broker-outage-limit", value) * 1000);
  return ms === 0 ? Infinity : Math.max(1, ms);
}

function portNumber(flag: string, value: string): number {
  const n = Number(value);
  if (value.trim() === "" || !Number.isInteger(n) || n < 0 || n > 65535) {
    throw new CeleriacError("invalid_argument", `--${flag} must be a port number 0..65535, got ${JSON.stringify(value)}`);
  }
  return n;
}
