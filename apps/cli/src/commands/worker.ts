import { resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { CeleriacError, type ConnectionEvent, type ConnectionEvents } from "@celeriac/core";
import { createWorker, type Worker } from "@celeriac/worker";
import { displayUrl, openConnections } from "../config.js";

export interface WorkerCommandOptions {
  broker?: string;
  resultBackend?: string;
  tasks: string[];
  queues: string;
  concurrency: string;
  prefetchMultiplier?: string;
  hostname?: string;
  shutdownGrace: string;
  quiet?: boolean;
  /** Celery's -E: send worker and task events. */
  events?: boolean;
  /** `--without-remote-control`: Celery's worker_enable_remote_control = False. */
  withoutRemoteControl?: boolean;
  /** Serve Prometheus metrics on this port (0: any free one), on `metricsHost`. */
  metricsPort?: string;
  metricsHost?: string;
}

/** Loads a tasks module: its default export (or `register`) receives the worker. */
export async function loadTasks(worker: Worker, path: string): Promise<void> {
  const mod = (await import(pathToFileURL(resolve(path)).href)) as { default?: unknown; register?: unknown };
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

/** `celeriac worker`: consumes the queues until SIGTERM/SIGINT, then shuts down gracefully. */
export async function workerCommand(opts: WorkerCommandOptions): Promise<void> {
  if (opts.tasks.length === 0) throw new CeleriacError("invalid_argument", "--tasks <module> is required: the module that registers your task handlers");
  const metricsPort = opts.metricsPort !== undefined ? portNumber("metrics-port", opts.metricsPort) : null;
  const conn = await openConnections({ broker: opts.broker, resultBackend: opts.resultBackend });
  const queues = opts.queues.split(",").map((q) => q.trim()).filter(Boolean);
  const worker = createWorker({
    transport: conn.transport,
    ...(conn.resultBackend ? { resultBackend: conn.resultBackend } : {}),
    queues,
    concurrency: positiveInt("concurrency", opts.concurrency),
    ...(opts.prefetchMultiplier ? { prefetchMultiplier: positiveInt("prefetch-multiplier", opts.prefetchMultiplier) } : {}),
    ...(opts.hostname ? { hostname: opts.hostname } : {}),
    shutdownGraceMs: Number(opts.shutdownGrace) * 1000,
    ...(opts.quiet ? { silent: true } : {}),
    ...(opts.events ? { events: true } : {}),
    ...(opts.withoutRemoteControl ? { remoteControl: false } : {}),
    // SIGTERM/SIGINT: warm shutdown (finish tasks in flight); a second signal forces.
    installSignalHandlers: true,
  });
  for (const t of opts.tasks) await loadTasks(worker, t);

  // Imported only when asked for, so a worker without metrics does not load prom-client.
  const metrics = metricsPort !== null ? await (await import("@celeriac/metrics")).serveMetrics(worker, { port: metricsPort, host: opts.metricsHost ?? "127.0.0.1" }) : null;
  const stopLogging = logConnectionEvents(
    conn.transport.lifecycle,
    (line) => process.stderr.write(line),
    () => {
      process.exitCode = 1;
      void worker.stop();
    },
  );
  await conn.transport.connect();
  await worker.start();
  if (metrics && !opts.quiet) process.stderr.write(`celeriac worker metrics: ${metrics.url}\n`);
  if (!opts.quiet) {
    process.stderr.write(
      `celeriac worker ready: broker ${displayUrl(conn.brokerUrl)}, results ${conn.backendUrl ? displayUrl(conn.backendUrl) : "disabled"}, queues ${queues.join(",")}, concurrency ${opts.concurrency}\n`,
    );
  }
  try {
    await worker.closed;
  } finally {
    stopLogging();
    await metrics?.close();
    await conn.close();
  }
}

function portNumber(flag: string, value: string): number {
  const n = Number(value);
  if (value.trim() === "" || !Number.isInteger(n) || n < 0 || n > 65535) {
    throw new CeleriacError("invalid_argument", `--${flag} must be a port number 0..65535, got ${JSON.stringify(value)}`);
  }
  return n;
}
