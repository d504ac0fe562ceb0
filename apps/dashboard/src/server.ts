import { timingSafeEqual } from "node:crypto";
import { existsSync, readFileSync } from "node:fs";
import type { AddressInfo } from "node:net";
import { extname, join, normalize } from "node:path";
import { fileURLToPath } from "node:url";
import { serve, type ServerType } from "@hono/node-server";
import { Hono, type Context } from "hono";
import { streamSSE } from "hono/streaming";
import { CeleriacError, type ResultMeta } from "@celeriac/core";
import { asExceptionInfo, assertKnownOptions, pyRepr } from "@celeriac/core/transport";
import type { Dashboard } from "./dashboard.js";
import { createFleetMetrics } from "./metrics.js";
import { TASK_STATES, type TaskFilter, type TaskRecord, type WorkerRecord } from "./state.js";

export interface ServeOptions {
  /** Interface to bind. Default 127.0.0.1; any other needs `auth`. */
  host?: string;
  /** Default 5555, Flower's. 0 picks a free port. */
  port?: number;
  /** `{ basic: ["user:password", ...] }` or `{ token: "..." }` (sent as `Authorization: Bearer`, or `?token=`). */
  auth?: { basic?: readonly string[]; token?: string };
  /** Refuse actions (revoke, rate limit, shutdown, apply). */
  readOnly?: boolean;
  /** Directory of the built page; default the package's dist/ui. */
  uiDir?: string;
}

export interface DashboardServer {
  readonly url: string;
  readonly port: number;
  close(): Promise<void>;
}

const LOOPBACK = new Set(["127.0.0.1", "::1", "localhost"]);

function defaultUiDir(): string {
  const here = fileURLToPath(new URL(".", import.meta.url));
  // Built: dist/server.js next to dist/ui. From sources (tests): src/ next to ../dist/ui.
  for (const dir of [join(here, "ui"), join(here, "..", "dist", "ui")]) if (existsSync(join(dir, "index.html"))) return dir;
  return join(here, "ui");
}

const MIME: Record<string, string> = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript",
  ".css": "text/css",
  ".svg": "image/svg+xml",
  ".png": "image/png",
  ".ico": "image/x-icon",
};

function equal(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

/** Flower's `received_start`/`received_end` format, `%Y-%m-%d %H:%M` (UTC), or epoch seconds. */
function parseTime(v: string | undefined): number | undefined {
  if (v === undefined || v === "") return undefined;
  if (/^\d+(\.\d+)?$/.test(v)) return Number(v);
  const ms = Date.parse(`${v.replace(" ", "T")}${/[zZ]|[+-]\d\d:?\d\d$/.test(v) ? "" : "Z"}`);
  if (!Number.isFinite(ms)) throw new CeleriacError("invalid_argument", `not a time: ${JSON.stringify(v)} (expected YYYY-MM-DD HH:MM, UTC, or epoch seconds)`);
  return ms / 1000;
}

/** A task as Flower's `tasks.as_dict` writes it: the fields, `worker` as the hostname, no timeline. */
export function flowerTask(t: TaskRecord): Record<string, unknown> {
  const { timeline: _timeline, root_id, parent_id, ...rest } = t;
  return { ...rest, root_id, parent_id, root: root_id, parent: parent_id };
}

/** A stored result as Flower's `TaskResult` writes it: the value, or the exception's repr and the traceback. */
function storedView(taskId: string, meta: ResultMeta | null): Record<string, unknown> {
  if (!meta) return { "task-id": taskId, state: "PENDING" };
  if (meta.status === "SUCCESS") return { "task-id": taskId, state: meta.status, result: meta.result };
  const info = asExceptionInfo(meta.result);
  const result = info ? `${info.exc_type}(${info.exc_message.map((m) => pyRepr(m)).join(", ")})` : meta.result;
  return { "task-id": taskId, state: meta.status, result, ...(meta.status === "FAILURE" ? { traceback: meta.traceback } : {}) };
}

function workerView(d: Dashboard, w: WorkerRecord): Record<string, unknown> {
  return { ...w, alive: d.state.isAlive(w) };
}

/** Serves the page, Flower's HTTP API, the page's own API, live updates (SSE) and /metrics. */
export async function serveDashboard(d: Dashboard, options: ServeOptions = {}): Promise<DashboardServer> {
  assertKnownOptions("serveDashboard", options, ["host", "port", "auth", "readOnly", "uiDir"] as const);
  const host = options.host ?? "127.0.0.1";
  const basic = options.auth?.basic ?? [];
  const token = options.auth?.token;
  if (options.auth) assertKnownOptions("serveDashboard auth", options.auth, ["basic", "token"] as const);
  for (const b of basic) if (!/^[^:]+:.+$/.test(b)) throw new CeleriacError("invalid_argument", "basic auth must be given as user:password");
  if (token !== undefined && token.length < 16) throw new CeleriacError("invalid_argument", "the auth token must be at least 16 characters");
  const authOn = basic.length > 0 || token !== undefined;
  if (!LOOPBACK.has(host) && !authOn) {
    throw new CeleriacError(
      "invalid_argument",
      `binding ${host} exposes the dashboard (and its actions) beyond this machine: give --basic-auth user:password or --auth-token, or bind 127.0.0.1`,
    );
  }
  const readOnly = options.readOnly ?? false;
  const uiDir = options.uiDir ?? defaultUiDir();
  const metrics = createFleetMetrics(d);
  const app = new Hono();

  app.onError((err, c) => {
    if (err instanceof URIError) return c.json({ error: "malformed URL encoding" }, 400);
    const e = CeleriacError.from(err);
    const status = e.code === "invalid_argument" ? 400 : e.code === "unsupported" ? 501 : 500;
    return c.json({ error: e.message }, status);
  });

  if (authOn) {
    app.use("*", async (c, next) => {
      const header = c.req.header("authorization") ?? "";
      let ok = false;
      if (token !== undefined) ok = equal(header, `Bearer ${token}`) || equal(c.req.query("token") ?? "", token);
      if (!ok && header.startsWith("Basic ")) {
        const given = Buffer.from(header.slice(6), "base64").toString("utf8");
        ok = basic.some((b) => equal(given, b));
      }
      if (ok) return next();
      if (basic.length > 0) c.header("WWW-Authenticate", 'Basic realm="celeriac dashboard"');
      return c.json({ error: "unauthorized" }, 401);
    });
  }

  const action = (c: Context): Response | null => (readOnly ? c.json({ error: "the dashboard runs with --read-only: actions are disabled" }, 403) : null);

  const filterOf = (c: Context, flower: boolean): TaskFilter => {
    const all = (v: string | undefined) => (v === undefined || v === "" || v === "All" ? undefined : v);
    return {
      state: all(c.req.query("state")),
      name: all(c.req.query(flower ? "taskname" : "name")),
      worker: all(c.req.query(flower ? "workername" : "worker")),
      receivedFrom: parseTime(c.req.query("received_start")),
      receivedTo: parseTime(c.req.query("received_end")),
      search: all(c.req.query("search")),
    };
  };
  const intOf = (v: string | undefined, dflt: number | null, name: string): number | null => {
    if (v === undefined || v === "") return dflt;
    const n = Number(v);
    if (!Number.isInteger(n) || n < 0) throw new CeleriacError("invalid_argument", `${name} must be a non-negative integer`);
    return n;
  };

  // ---- Flower's HTTP API (flower/api/*.py) --------------------------------------------------
  app.get("/api/workers", async (c) => {
    if (c.req.query("refresh")) await d.refreshWorkers();
    const workers = d.state.listWorkers();
    const name = c.req.query("workername");
    const chosen = name ? workers.filter((w) => w.hostname === name) : workers;
    if (c.req.query("status")) return c.json(Object.fromEntries(chosen.map((w) => [w.hostname, d.state.isAlive(w)])));
    // Flower's inspector keeps each inspect reply under its method name, plus a timestamp.
    return c.json(
      Object.fromEntries(
        chosen.map((w) => [
          w.hostname,
          {
            stats: w.stats ?? {},
            registered: w.registered ?? [],
            active: w.activeTasks ?? [],
            reserved: w.reserved ?? [],
            active_queues: (w.queues ?? []).map((q) => ({ name: q })),
            timestamp: w.inspectedAt,
          },
        ]),
      ),
    );
  });
  app.get("/api/tasks", (c) => {
    const page = d.state.listTasks(
      filterOf(c, true),
      intOf(c.req.query("offset"), 0, "offset")!,
      intOf(c.req.query("limit"), null, "limit"),
      c.req.query("sort_by") || undefined,
    );
    return c.json(Object.fromEntries(page.tasks.map((t) => [t.uuid, flowerTask(t)])));
  });
  app.get("/api/task/types", (c) => c.json({ "task-types": d.state.taskTypes() }));
  app.get("/api/task/info/:id", (c) => {
    const t = d.state.task(c.req.param("id"));
    if (!t) return c.json({ error: `Unknown task '${c.req.param("id")}'` }, 404);
    return c.json({ ...flowerTask(t), children: d.state.children(t.uuid).map((x) => x.uuid) });
  });
  const apply = async (c: Context, name: string) => {
    const denied = action(c);
    if (denied) return denied;
    const raw = await c.req.text();
    let body: unknown = {};
    try {
      body = raw ? JSON.parse(raw) : {};
    } catch (err) {
      return c.json({ error: `invalid JSON: ${String(err)}` }, 400);
    }
    if (typeof body !== "object" || body === null || Array.isArray(body)) return c.json({ error: "invalid options" }, 400);
    const { args = [], kwargs = {}, queue, countdown, task_id } = body as Record<string, unknown>;
    if (!Array.isArray(args)) return c.json({ error: "args must be an array" }, 400);
    if (typeof kwargs !== "object" || kwargs === null || Array.isArray(kwargs)) return c.json({ error: "kwargs must be an object" }, 400);
    const id = await d.sendTask(name, args, kwargs as Record<string, unknown>, {
      ...(typeof queue === "string" ? { queue } : {}),
      ...(countdown !== undefined ? { countdownMs: Number(countdown) * 1000 } : {}),
      ...(typeof task_id === "string" ? { taskId: task_id } : {}),
    });
    return c.json({ "task-id": id, state: "PENDING" });
  };
  app.post("/api/task/async-apply/:name", (c) => apply(c, c.req.param("name")));
  app.post("/api/task/send-task/:name", (c) => apply(c, c.req.param("name")));
  app.post("/api/task/revoke/:id", async (c) => {
    const denied = action(c);
    if (denied) return denied;
    const terminate = ["true", "1"].includes((c.req.query("terminate") ?? "").toLowerCase());
    const signal = c.req.query("signal");
    const r = await d.revoke(c.req.param("id"), { terminate, ...(signal ? { signal } : {}) });
    return c.json({ message: `Revoked '${c.req.param("id")}'`, replies: r.replies });
  });
  app.post("/api/task/rate-limit/:name", async (c) => {
    const denied = action(c);
    if (denied) return denied;
    const form = await c.req.parseBody().catch(() => ({}) as Record<string, unknown>);
    const limit = String(form["ratelimit"] ?? c.req.query("ratelimit") ?? "");
    const worker = String(form["workername"] ?? c.req.query("workername") ?? "");
    if (!limit) return c.json({ error: "ratelimit is required" }, 400);
    const r = await d.rateLimit(c.req.param("name"), limit, worker ? [worker] : undefined);
    return c.json({ message: "new rate limit set successfully", replies: r.replies });
  });
  app.post("/api/worker/shutdown/:name", async (c) => {
    const denied = action(c);
    if (denied) return denied;
    await d.shutdown(c.req.param("name"));
    return c.json({ message: "Shutting down!" });
  });
  app.get("/api/task/result/:id", async (c) => {
    // Flower answers 503 when no result backend is configured.
    if (!d.hasResultBackend) return c.json({ error: "no result backend: start the dashboard with --result-backend URL" }, 503);
    return c.json(storedView(c.req.param("id"), await d.storedResult(c.req.param("id"))));
  });
  app.get("/api/queues/length", async (c) => {
    const queues = await d.queues(true);
    return c.json({ active_queues: queues.map((q) => ({ name: q.name, messages: q.messages })) });
  });
  app.get("/healthcheck", (c) => c.text("OK"));
  app.get("/metrics", async (c) => {
    await d.queues();
    return c.body(await metrics.registry.metrics(), 200, { "Content-Type": metrics.registry.contentType });
  });

  // ---- The page's own API -------------------------------------------------------------------
  app.get("/ui-api/overview", async (c) => {
    const queues = await d.queues(c.req.query("refresh") === "1");
    return c.json({
      broker: { transport: d.transportName, events: d.hasEvents },
      readOnly,
      workers: d.state.listWorkers().map((w) => workerView(d, w)),
      queues,
      counts: d.state.stateCounts(),
      taskCount: d.state.taskCount,
      maxTasks: d.state.maxTasks,
      evicted: d.state.evicted,
      taskTypes: d.state.taskTypes(),
      states: TASK_STATES,
      throughput: d.state.throughput(Number(c.req.query("seconds") ?? 120)),
      events: d.receiverStats,
    });
  });
  app.get("/ui-api/tasks", (c) => {
    const limit = Math.min(intOf(c.req.query("limit"), 50, "limit") ?? 50, 500);
    const page = d.state.listTasks(filterOf(c, false), intOf(c.req.query("offset"), 0, "offset")!, limit);
    return c.json({ total: page.total, tasks: page.tasks.map(flowerTask) });
  });
  app.get("/ui-api/task/:id", async (c) => {
    const t = d.state.task(c.req.param("id"));
    if (!t) return c.json({ error: "unknown task (never seen, or evicted)" }, 404);
    let stored: Record<string, unknown> | null = null;
    if (d.hasResultBackend) {
      try {
        stored = storedView(t.uuid, await d.storedResult(t.uuid));
      } catch (err) {
        stored = { error: CeleriacError.from(err).message };
      }
    }
    return c.json({ ...t, stored, children: d.state.children(t.uuid).map((x) => ({ uuid: x.uuid, name: x.name, state: x.state })) });
  });
  app.post("/ui-api/revoke/:id", async (c) => {
    const denied = action(c);
    if (denied) return denied;
    return c.json(await d.revoke(c.req.param("id"), { terminate: c.req.query("terminate") === "1" }));
  });
  app.post("/ui-api/rate-limit/:name", async (c) => {
    const denied = action(c);
    if (denied) return denied;
    const limit = c.req.query("limit") ?? "";
    if (!/^\d+(\.\d+)?(\/[smh])?$/.test(limit))
      return c.json({ error: "rate limit must look like 10/s, 100/m, 5/h or a number of tasks per second (0 removes it)" }, 400);
    const w = c.req.query("worker");
    return c.json(await d.rateLimit(c.req.param("name"), limit, w ? [w] : undefined));
  });
  app.post("/ui-api/shutdown/:hostname", async (c) => {
    const denied = action(c);
    if (denied) return denied;
    await d.shutdown(c.req.param("hostname"));
    return c.json({ replies: {}, note: "workers do not reply to shutdown (as in Celery); watch it go offline" });
  });
  // Live updates: a small "something changed" note at most twice a second; the page refetches
  // what it shows. The stream never carries the task list itself, so a busy fleet cannot flood it.
  app.get("/ui-api/stream", (c) =>
    streamSSE(c, async (stream) => {
      let tasks = 0;
      let workers = 0;
      const off = d.state.subscribe((ch) => (ch.kind === "task" ? tasks++ : workers++));
      let open = true;
      stream.onAbort(() => {
        open = false;
      });
      try {
        await stream.writeSSE({ event: "hello", data: JSON.stringify({ readOnly }) });
        let idle = 0;
        while (open) {
          await stream.sleep(500);
          if (tasks > 0 || workers > 0 || ++idle >= 10) {
            await stream.writeSSE({ event: "update", data: JSON.stringify({ tasks, workers }) });
            tasks = 0;
            workers = 0;
            idle = 0;
          }
        }
      } finally {
        off();
      }
    }),
  );

  // ---- The page ------------------------------------------------------------------------------
  app.get("*", (c) => {
    const rel = normalize(decodeURIComponent(c.req.path)).replace(/^([/\\])+/, "");
    let file = join(uiDir, rel);
    if (!file.startsWith(uiDir) || rel === "" || !existsSync(file) || !extname(file)) file = join(uiDir, "index.html");
    if (!existsSync(file)) return c.text("the dashboard page is not built: run `npm run build -w @celeriac/dashboard`", 500);
    return c.body(readFileSync(file), 200, { "Content-Type": MIME[extname(file)] ?? "application/octet-stream" });
  });

  const server: ServerType = await new Promise((resolve, reject) => {
    const s = serve({ fetch: app.fetch, hostname: host, port: options.port ?? 5555 }, () => resolve(s));
    s.once("error", reject);
  });
  const addr = server.address() as AddressInfo;
  const shownHost = addr.family === "IPv6" ? `[${addr.address}]` : addr.address;
  return {
    url: `http://${shownHost}:${addr.port}`,
    port: addr.port,
    async close() {
      metrics.close();
      await new Promise<void>((r) => {
        server.close(() => r());
        (server as unknown as { closeAllConnections?: () => void }).closeAllConnections?.();
      });
    },
  };
}
