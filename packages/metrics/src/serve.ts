import { CeleriacError } from "@celeriac/core";
import { assertKnownOptions, optionKeys } from "@celeriac/core/transport";
import type { Worker } from "@celeriac/worker";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import type { Registry } from "prom-client";
import { instrumentWorker, type WorkerMetrics } from "./instrument.js";

export interface ServeMetricsOptions {
  /** TCP port; 0 picks a free one (read it back from `url`). */
  port: number;
  /**
   * Interface to listen on. Default `"127.0.0.1"`: metrics name your tasks and hosts, so they are
   * not exposed beyond the machine unless asked (`"0.0.0.0"` or `"::"` for a scraper elsewhere).
   */
  host?: string;
  /** Path that serves the metrics. Default `"/metrics"`. */
  path?: string;
}

const KNOWN_OPTIONS = optionKeys<ServeMetricsOptions>({ port: true, host: true, path: true });

export interface MetricsServer {
  /** Where to scrape, e.g. `http://127.0.0.1:9808/metrics`. */
  readonly url: string;
  /** Stops listening and drops open connections. Metrics this server created for a worker are removed. */
  close(): Promise<void>;
}

type Source = Worker | WorkerMetrics | Registry;

/**
 * Serves Prometheus metrics over plain `node:http`: GET (or HEAD) on `path` answers with the
 * text exposition; other paths get 404, other methods 405. Given a worker, it is instrumented
 * with a registry of its own first; given a registry or `instrumentWorker`'s handle, that is
 * served as it is.
 */
export async function serveMetrics(source: Source, options: ServeMetricsOptions): Promise<MetricsServer> {
  if (options === null || typeof options !== "object") throw new CeleriacError("invalid_argument", "serveMetrics: options with a port are required");
  assertKnownOptions("serveMetrics", options, KNOWN_OPTIONS);
  const { port, host = "127.0.0.1", path = "/metrics" } = options;
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    throw new CeleriacError("invalid_argument", `serveMetrics: port must be an integer 0..65535, got ${String(port)}`);
  }
  if (typeof host !== "string" || host === "") throw new CeleriacError("invalid_argument", "serveMetrics: host must be a non-empty string");
  if (typeof path !== "string" || !path.startsWith("/"))
    throw new CeleriacError("invalid_argument", `serveMetrics: path must start with "/", got ${JSON.stringify(path)}`);

  let owned: WorkerMetrics | null = null;
  let registry: Pick<Registry, "metrics" | "contentType">;
  if (isRegistry(source)) {
    registry = source;
  } else if (isWorkerMetrics(source)) {
    registry = source.registry;
  } else if (isWorker(source)) {
    owned = instrumentWorker(source);
    registry = owned.registry;
  } else {
    throw new CeleriacError("invalid_argument", "serveMetrics: the first argument must be a worker, instrumentWorker()'s result, or a prom-client Registry");
  }

  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const url = new URL(req.url ?? "/", "http://localhost");
    if (url.pathname !== path) {
      res.writeHead(404, { "content-type": "text/plain; charset=utf-8" }).end(`Not found; metrics are at ${path}\n`);
      return;
    }
    if (req.method !== "GET" && req.method !== "HEAD") {
      res.writeHead(405, { allow: "GET, HEAD", "content-type": "text/plain; charset=utf-8" }).end("Method not allowed\n");
      return;
    }
    registry.metrics().then(
      (text) => {
        res.writeHead(200, { "content-type": registry.contentType, "cache-control": "no-store" });
        res.end(req.method === "HEAD" ? undefined : text);
      },
      (err: unknown) => {
        // A collect callback threw; the scraper records the failure, the worker goes on.
        res
          .writeHead(500, { "content-type": "text/plain; charset=utf-8" })
          .end(`Collecting metrics failed: ${err instanceof Error ? err.message : String(err)}\n`);
      },
    );
  });
  // The process's life belongs to the worker, not to the scrape endpoint.
  server.unref();
  await new Promise<void>((resolve, reject) => {
    server.once("error", (err) => {
      owned?.close();
      reject(new CeleriacError("connection", `serveMetrics: cannot listen on ${host}:${port}: ${err.message}`, { cause: err }));
    });
    server.listen(port, host, () => resolve());
  });
  const address = server.address() as AddressInfo;
  const shownHost = address.family === "IPv6" ? `[${address.address}]` : address.address;
  let closing: Promise<void> | null = null;
  return {
    url: `http://${shownHost}:${address.port}${path}`,
    close() {
      closing ??= new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
        owned?.close();
      });
      return closing;
    },
  };
}

function isRegistry(v: unknown): v is Registry {
  // By shape: a second copy of prom-client in node_modules has its own Registry class.
  const r = v as Partial<Registry> | null;
  return typeof r === "object" && r !== null && typeof r.metrics === "function" && typeof r.getSingleMetric === "function" && typeof r.contentType === "string";
}

function isWorkerMetrics(v: unknown): v is WorkerMetrics {
  const m = v as Partial<WorkerMetrics> | null;
  return typeof m === "object" && m !== null && isRegistry(m.registry) && typeof m.close === "function";
}

function isWorker(v: unknown): v is Worker {
  const w = v as Partial<Worker> | null;
  return typeof w === "object" && w !== null && typeof w.subscribe === "function" && typeof w.counters === "object";
}
