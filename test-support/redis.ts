import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PYTHON, PYTHON_DIR } from "./python.js";

/** A free loopback TCP port (the OS picks it; the socket is closed before returning). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const addr = srv.address();
      const port = typeof addr === "object" && addr ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

export interface RedisServer {
  port: number;
  /** `redis://127.0.0.1:<port>/<db>` */
  url(db?: number): string;
  /** Stops the server; `save` writes its data first (SHUTDOWN SAVE) so a restart keeps it. */
  stop(options?: { save?: boolean }): Promise<void>;
  /** Starts it again on the same port and directory (data saved by `stop({save: true})` is loaded). */
  start(): Promise<void>;
  /** Stops it for good and deletes its directory. */
  dispose(): Promise<void>;
}

/**
 * Starts a private redis-server on a free loopback port (no persistence unless asked by
 * `stop({save: true})`), for one test file; `requirePassword` sets Redis's `requirepass`. Killed by PID in `dispose()`.
 */
export async function startRedisServer(options: { requirePassword?: string } = {}): Promise<RedisServer> {
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), "celeriac-redis-"));
  let child: ChildProcess | null = null;
  let out = "";

  const start = async () => {
    out = "";
    const c = spawn(
      "redis-server",
      [
        ...["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", dir, "--dbfilename", "dump.rdb"],
        ...(options.requirePassword !== undefined ? ["--requirepass", options.requirePassword] : []),
      ],
      {
        stdio: ["ignore", "pipe", "pipe"],
      },
    );
    child = c;
    c.stdout!.on("data", (d: Buffer) => (out += d.toString()));
    c.stderr!.on("data", (d: Buffer) => (out += d.toString()));
    const deadline = Date.now() + 10_000;
    while (!/Ready to accept connections/.test(out)) {
      if (c.exitCode !== null) throw new Error(`redis-server exited early:\n${out}`);
      if (Date.now() > deadline) throw new Error(`redis-server not ready after 10 s:\n${out}`);
      await new Promise((r) => setTimeout(r, 20));
    }
  };

  const stop = async (options: { save?: boolean } = {}) => {
    const c = child;
    if (!c || c.exitCode !== null || c.signalCode !== null) return;
    const exited = new Promise<void>((r) => c.once("exit", () => r()));
    if (options.save) {
      // redis-cli is part of Debian's redis-tools, which redis-server depends on.
      spawn("redis-cli", ["-p", String(port), "SHUTDOWN", "SAVE"], { stdio: "ignore" });
      const timer = setTimeout(() => c.kill("SIGKILL"), 10_000);
      await exited;
      clearTimeout(timer);
    } else {
      c.kill("SIGKILL");
      await exited;
    }
    child = null;
  };

  await start();
  return {
    port,
    url: (db = 0) => `redis://127.0.0.1:${port}/${db}`,
    stop,
    start,
    async dispose() {
      await stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export interface PythonRedisWorker {
  child: ChildProcess;
  output(): string;
  /** SIGTERM, then SIGKILL after 5 s. */
  stop(): Promise<void>;
  /** SIGKILL at once (the process and its pool children, by process group). */
  kill(): Promise<void>;
}

/**
 * A Celery worker on `test-support/python/redis_app.py` (interop_app with kombu's Redis transport
 * options from the environment: `CELERIAC_VISIBILITY_TIMEOUT` in seconds).
 */
export async function startPythonRedisWorker(e: {
  brokerUrl: string;
  resultUrl?: string;
  queues?: string[];
  pool?: string;
  concurrency?: number;
  visibilityTimeoutS?: number;
  prefetchMultiplier?: number;
  /** kombu's `master_name`, for sentinel:// URLs. */
  masterName?: string;
}): Promise<PythonRedisWorker> {
  const args = ["-m", "celery", "-A", "redis_app", "worker", "--loglevel", "INFO", "-Q", (e.queues ?? ["celery"]).join(",")];
  args.push("--pool", e.pool ?? "solo");
  if (e.concurrency) args.push("--concurrency", String(e.concurrency));
  if (e.prefetchMultiplier) args.push("--prefetch-multiplier", String(e.prefetchMultiplier));
  args.push("--without-gossip", "--without-mingle", "--without-heartbeat", "-n", `pyredis-${process.pid}-${Date.now()}@localhost`);
  const child = spawn(PYTHON, args, {
    cwd: PYTHON_DIR,
    detached: true, // own process group, so kill() reaches prefork children too
    env: {
      ...process.env,
      CELERIAC_BROKER_URL: e.brokerUrl,
      CELERIAC_RESULT_URL: e.resultUrl ?? "",
      CELERIAC_VISIBILITY_TIMEOUT: e.visibilityTimeoutS === undefined ? "" : String(e.visibilityTimeoutS),
      CELERIAC_MASTER_NAME: e.masterName ?? "",
      PYTHONPATH: PYTHON_DIR,
      PYTHONUNBUFFERED: "1",
      PYTHONDONTWRITEBYTECODE: "1",
    },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  child.stdout!.on("data", (d: Buffer) => (out += d.toString()));
  child.stderr!.on("data", (d: Buffer) => (out += d.toString()));
  const exited = new Promise<void>((r) => child.once("exit", () => r()));
  const alive = () => child.exitCode === null && child.signalCode === null;
  const worker: PythonRedisWorker = {
    child,
    output: () => out,
    async stop() {
      if (!alive()) return;
      process.kill(-child.pid!, "SIGTERM");
      const timer = setTimeout(() => alive() && process.kill(-child.pid!, "SIGKILL"), 5000);
      await exited;
      clearTimeout(timer);
    },
    async kill() {
      if (!alive()) return;
      process.kill(-child.pid!, "SIGKILL");
      await exited;
    },
  };
  const deadline = Date.now() + 30_000;
  while (!/ ready\.?/.test(out)) {
    if (!alive()) throw new Error(`Python worker exited early (${child.exitCode}):\n${out}`);
    if (Date.now() > deadline) {
      await worker.kill();
      throw new Error(`Python worker not ready after 30 s:\n${out}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  return worker;
}
