import { spawn, type ChildProcess } from "node:child_process";
import { randomUUID } from "node:crypto";
import { appendFileSync, existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { createClient } from "@celeriac/core";
import { Redis } from "ioredis";
import { createRedisTransport, type RedisTransport } from "@celeriac/redis";
import { createWorker, type Worker } from "@celeriac/worker";
import { runPython } from "../../../test-support/python.js";
import { buildForChildren } from "../../../test-support/build-for-children.js";
import { startPythonRedisWorker, startRedisServer, type PythonRedisWorker, type RedisServer } from "../../../test-support/redis.js";

const root = fileURLToPath(new URL("../../../", import.meta.url));
const fixture = fileURLToPath(new URL("./fixtures/ts-worker.mjs", import.meta.url));

let server: RedisServer;
let dir: string;
let modules: Record<string, string>;
let cleanBuild: () => void;
const cleanups: (() => Promise<void>)[] = [];

beforeAll(async () => {
  server = await startRedisServer();
  dir = mkdtempSync(join(tmpdir(), "celeriac-redis-rel-"));
  ({ modules, cleanup: cleanBuild } = buildForChildren(root, ["core", "worker", "redis"], "redis"));
}, 120_000);
afterAll(async () => {
  await server.dispose();
  rmSync(dir, { recursive: true, force: true });
  cleanBuild();
});
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function lines(file: string): string[] {
  if (!existsSync(file)) return [];
  return readFileSync(file, "utf8")
    .split("\n")
    .filter((l) => l !== "");
}

async function until(what: string, cond: () => boolean, timeoutMs: number, detail: () => string = () => ""): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`${what}: not within ${timeoutMs} ms\n${detail()}`);
    await sleep(25);
  }
}

function transport(url: string, visibilityTimeoutMs: number): RedisTransport {
  const t = createRedisTransport({ url, visibilityTimeoutMs, restoreIntervalMs: 200 });
  cleanups.push(() => t.close());
  return t;
}

/** The fixture worker in its own process (so it can be SIGKILLed). */
async function startTsChild(config: {
  url: string;
  queue: string;
  visibilityTimeoutMs: number;
  concurrency: number;
}): Promise<{ child: ChildProcess; kill: () => Promise<void> }> {
  const child = spawn(
    process.execPath,
    [fixture, JSON.stringify({ ...config, coreModule: modules["core"], workerModule: modules["worker"], redisModule: modules["redis"] })],
    {
      cwd: root,
      stdio: ["ignore", "pipe", "pipe"],
    },
  );
  let out = "";
  child.stdout!.on("data", (d: Buffer) => (out += d.toString()));
  child.stderr!.on("data", (d: Buffer) => (out += d.toString()));
  const exited = new Promise<void>((r) => child.once("exit", () => r()));
  const kill = async () => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    child.kill("SIGKILL");
    await exited;
  };
  cleanups.push(kill);
  await until(
    "TS worker ready",
    () => out.includes("ready") || child.exitCode !== null,
    20_000,
    () => out,
  );
  if (child.exitCode !== null) throw new Error(`TS worker exited: ${out}`);
  return { child, kill };
}

/** An in-process worker with the fixture's slow_record task. */
async function startTsWorker(t: RedisTransport, queue: string, visibilityTimeoutMs: number): Promise<Worker> {
  await t.connect();
  const w = createWorker({
    transport: t,
    queues: [queue],
    concurrency: 2,
    prefetchMultiplier: 1,
    etaHeartbeatMs: Math.floor(visibilityTimeoutMs / 4),
    visibilityExtensionMs: visibilityTimeoutMs,
    silent: true,
  });
  w.register(
    "redis.slow_record",
    async (_ctx, path, label, seconds) => {
      appendFileSync(String(path), `start ${String(label)} ts\n`);
      await sleep(Number(seconds) * 1000);
      appendFileSync(String(path), `done ${String(label)} ts\n`);
      return label;
    },
    { acksLate: true },
  );
  await w.start();
  cleanups.push(() => w.stop({ graceMs: 2000 }));
  return w;
}

/** label -> how many times it completed, from "done <label> <who>" lines. */
function completions(file: string): Map<string, string[]> {
  const done = new Map<string, string[]>();
  for (const l of lines(file)) {
    const [kind, label, who] = l.split(" ");
    if (kind !== "done" || !label || !who) continue;
    done.set(label, [...(done.get(label) ?? []), who]);
  }
  return done;
}

describe("a Python and a Celeriac worker on one queue", () => {
  let py: PythonRedisWorker | null = null;
  afterEach(async () => {
    await py?.kill();
    py = null;
  });

  it("the Python worker is SIGKILLed mid-task: every task still completes exactly once", async () => {
    const url = server.url(4);
    const queue = `mixed-${randomUUID().slice(0, 8)}`;
    const file = join(dir, `${queue}.log`);
    const vt = 3000;
    py = await startPythonRedisWorker({ brokerUrl: url, queues: [queue], prefetchMultiplier: 1, visibilityTimeoutS: vt / 1000 });
    await startTsWorker(transport(url, vt), queue, vt);
    const client = createClient({ transport: transport(url, vt), defaultQueue: queue });
    const labels = Array.from({ length: 12 }, (_, i) => `t${i}`);
    for (const label of labels) await client.sendTask("redis.slow_record", { args: [file, label, 0.4] });

    // Kill Python between "start" and "done" of one of its tasks.
    let victim: string | undefined;
    await until(
      "a Python task in progress",
      () => {
        const ls = lines(file);
        victim = ls.find((l) => l.endsWith(" py") && l.startsWith("start ") && !ls.includes(l.replace("start ", "done ")))?.split(" ")[1];
        return victim !== undefined;
      },
      15_000,
      () => py?.output() ?? "",
    );
    await py.kill();

    await until(
      "every task done",
      () => completions(file).size === labels.length,
      25_000,
      () => lines(file).join("\n"),
    );
    await sleep(vt + 500); // a duplicate would show up by now
    const done = completions(file);
    for (const label of labels) expect(done.get(label)?.length, `${label}: ${String(done.get(label))}`).toBe(1);
    // The victim was restored from Python's unacked entry and finished by Celeriac.
    expect(done.get(victim!)).toEqual(["ts"]);
  }, 60_000);

  it("the Celeriac worker is SIGKILLed mid-task: kombu's restore puts its messages back, Python completes each exactly once", async () => {
    const url = server.url(5);
    const queue = `mixed2-${randomUUID().slice(0, 8)}`;
    const file = join(dir, `${queue}.log`);
    const vt = 2000;
    py = await startPythonRedisWorker({ brokerUrl: url, queues: [queue], prefetchMultiplier: 1, visibilityTimeoutS: vt / 1000 });
    const ts = await startTsChild({ url, queue, visibilityTimeoutMs: vt, concurrency: 2 });
    const client = createClient({ transport: transport(url, vt), defaultQueue: queue });
    const labels = Array.from({ length: 8 }, (_, i) => `k${i}`);
    for (const label of labels) await client.sendTask("redis.slow_record", { args: [file, label, 0.5] });
    await until("a Celeriac task in progress", () => lines(file).some((l) => l.startsWith("start ") && l.endsWith(" ts")), 10_000);
    await ts.kill();
    const killedMidTask = lines(file).filter((l) => l.startsWith("start ") && l.endsWith(" ts") && !lines(file).includes(l.replace("start ", "done ")));
    expect(killedMidTask.length).toBeGreaterThan(0);
    // kombu's own restore (QoS.restore_visible), run once the visibility timeout has passed: a
    // Celery worker runs it on a slow timer (about every 100 s in kombu 5.2), the script now.
    await sleep(vt + 300);
    expect((await runPython({ brokerUrl: url }, "redis_restore.py", [String(vt / 1000)])).trim()).toBe("0");

    await until(
      "every task done",
      () => completions(file).size === labels.length,
      30_000,
      () => `${lines(file).join("\n")}\n${py?.output() ?? ""}`,
    );
    await sleep(1000);
    const done = completions(file);
    for (const label of labels) expect(done.get(label)?.length, `${label}: ${String(done.get(label))}`).toBe(1);
    for (const l of killedMidTask) expect(done.get(l.split(" ")[1]!)).toEqual(["py"]);
  }, 60_000);
});

describe("reliability", () => {
  it("a Celeriac worker SIGKILLed under late ack loses 0 of 1,000 tasks", async () => {
    const url = server.url(6);
    const queue = `kill-${randomUUID().slice(0, 8)}`;
    const file = join(dir, `${queue}.log`);
    // Long enough that a busy machine's event-loop stalls do not expire the live worker's
    // extended entries (the heartbeat runs every vt / 4).
    const vt = 2000;
    const client = createClient({ transport: transport(url, vt), defaultQueue: queue });
    const labels = Array.from({ length: 1000 }, (_, i) => `m${i}`);
    await Promise.all(labels.map((label) => client.sendTask("redis.append", { args: [file, label, 3] })));
    const first = await startTsChild({ url, queue, visibilityTimeoutMs: vt, concurrency: 20 });
    await until("some progress", () => lines(file).length >= 200, 30_000);
    await first.kill();
    const beforeKill = new Set(lines(file)).size;
    expect(beforeKill).toBeLessThan(1000);

    await startTsChild({ url, queue, visibilityTimeoutMs: vt, concurrency: 20 });
    await until(
      "all 1,000 done",
      () => new Set(lines(file)).size === 1000,
      60_000,
      () => `${new Set(lines(file)).size} done`,
    );
    const seen = new Set(lines(file));
    expect(labels.filter((l) => !seen.has(l))).toEqual([]);
    // Late ack: what the killed worker held (at most its prefetch) may run twice, nothing more.
    expect(lines(file).length - seen.size).toBeLessThanOrEqual(40);
  }, 120_000);

  it("Redis restarted under load: the producer and the worker recover and every task runs", async () => {
    const url = server.url(7);
    const queue = `restart-${randomUUID().slice(0, 8)}`;
    const vt = 2000;
    const workerTransport = transport(url, vt);
    // The one typed stream the CLI logs: the outage must open and close on it.
    const lifecycle: string[] = [];
    workerTransport.lifecycle.subscribe((e) => lifecycle.push(e.type));
    await workerTransport.connect();
    const seen = new Set<string>();
    const w = createWorker({ transport: workerTransport, queues: [queue], concurrency: 10, etaHeartbeatMs: 500, visibilityExtensionMs: vt, silent: true });
    w.register("redis.mark", async (_ctx, label) => void seen.add(String(label)), { acksLate: true });
    await w.start();
    cleanups.push(() => w.stop());
    const client = createClient({ transport: transport(url, vt), defaultQueue: queue });

    const total = 400;
    let sent = 0;
    const producer = (async () => {
      for (let i = 0; i < total; i++) {
        await client.sendTask("redis.mark", { args: [`r${i}`] });
        sent++;
        await sleep(5);
      }
    })();
    await until("load under way", () => seen.size >= 50, 10_000);
    await server.stop({ save: true });
    await sleep(1000);
    await server.start();
    await producer;
    expect(sent).toBe(total);
    await until(
      "every task ran",
      () => seen.size === total,
      30_000,
      () => `${seen.size} of ${total}; worker ${w.state}`,
    );
    expect(w.state).toBe("running");
    const lost = lifecycle.indexOf("disconnected");
    expect(lost, lifecycle.join(",")).toBeGreaterThanOrEqual(0);
    expect(lifecycle.slice(lost + 1), lifecycle.join(",")).toContain("connected");
    expect(workerTransport.lifecycle.state).toBe("connected");
  }, 60_000);
});
describe("kombu's restore lock", () => {
  // With kombu's 300 s expiry a recovery once took ~298 s; ours is a short lease, so a killed
  // worker's messages come back after about the visibility timeout plus at most that lease.
  it("a worker SIGKILLed holding unacked_mutex: its late-ack messages come back after about the visibility timeout, not 300 s", async () => {
    const url = server.url(2);
    const queue = `lock-${randomUUID().slice(0, 8)}`;
    const file = join(dir, `${queue}.log`);
    const vt = 2000;
    const redis = new Redis({ port: server.port, host: "127.0.0.1", db: 2 });
    // What lease does a worker take? Redis's MONITOR shows its SET unacked_mutex … PX n NX.
    const watcher = new Redis({ port: server.port, host: "127.0.0.1" });
    const monitor = await watcher.monitor();
    let leaseMs: number | null = null;
    monitor.on("monitor", (_time: string, args: string[]) => {
      if (args[0]?.toLowerCase() === "set" && args[1] === "unacked_mutex") leaseMs = Number(args[args.findIndex((a) => a.toLowerCase() === "px") + 1]);
    });
    const producer = createRedisTransport({ url });
    try {
      const client = createClient({ transport: producer, defaultQueue: queue });
      const taskMs = 4000;
      for (let i = 0; i < 10; i++) await client.sendTask("redis.append", { args: [file, `m${i}`, taskMs] });
      const first = await startTsChild({ url, queue, visibilityTimeoutMs: vt, concurrency: 10 });
      let claimed = 0;
      const poll = setInterval(() => void redis.hlen("unacked").then((n) => (claimed = n)), 50);
      await until("all 10 claimed and a sweep seen", () => claimed === 10 && leaseMs !== null, 10_000);
      clearInterval(poll);
      await first.kill();
      // The kill landed mid-sweep: the lock stays as that worker held it, for its lease.
      await redis.set("unacked_mutex", "token-of-the-killed-worker", "PX", leaseMs!);
      const killedAt = Date.now();
      await startTsChild({ url, queue, visibilityTimeoutMs: vt, concurrency: 10 });
      const done = () => (existsSync(file) ? new Set(readFileSync(file, "utf8").split("\n").filter(Boolean)).size : 0);
      await until("a restored task ran", () => done() > 0, 40_000);
      // The first restored task finished taskMs after it was restored and taken.
      const restoredAt = Date.now() - taskMs;
      await until("all 10 ran", () => done() === 10, 30_000);
      const recoveryMs = restoredAt - killedAt;
      console.log(`restore lock: lease ${leaseMs} ms, visibility timeout ${vt} ms, messages of the killed worker back after ${recoveryMs} ms`);
      expect(leaseMs).toBeLessThanOrEqual(10_000);
      // Back once both the visibility timeout and the left-behind lease ran out, give or take a sweep.
      expect(recoveryMs).toBeGreaterThanOrEqual(Math.min(vt, leaseMs!) - 500);
      expect(recoveryMs).toBeLessThan(Math.max(vt, leaseMs!) + 3000);
    } finally {
      monitor.disconnect();
      watcher.disconnect();
      redis.disconnect();
      await producer.close();
    }
  }, 90_000);
});
