import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { randomUUID } from "node:crypto";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import Database from "better-sqlite3";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { celeryJsonCodec, createEnvelope, decodeTask } from "@celeriac/core";
import type { Delivery } from "@celeriac/core/transport";
import { createSqliteTransport, type SqliteTransport } from "@celeriac/sqlite";

const PY = "/usr/bin/python3";
const fixtures = fileURLToPath(new URL("./fixtures/", import.meta.url));

let dir: string;
let brokerFile: string;
let resultsDir: string;
let worker: ChildProcess | null = null;
let transport: SqliteTransport | null = null;

function env(): NodeJS.ProcessEnv {
  return {
    ...process.env,
    PYTHONPATH: fixtures,
    CELERIAC_BROKER_URL: `sqla+sqlite:///${brokerFile}`,
    CELERIAC_RESULT_BACKEND: `file://${resultsDir}`,
  };
}

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "celeriac-sqlite-py-"));
  brokerFile = join(dir, "broker.db");
  resultsDir = join(dir, "results");
  mkdirSync(resultsDir);
});

afterEach(async () => {
  if (worker && worker.exitCode === null && worker.pid !== undefined) {
    // Only the worker we started, by its pid; SIGKILL if a warm shutdown hangs.
    const w = worker;
    const exited = new Promise((r) => w.once("exit", r));
    process.kill(w.pid!, "SIGTERM");
    const timer = setTimeout(() => w.exitCode === null && process.kill(w.pid!, "SIGKILL"), 5000);
    await exited;
    clearTimeout(timer);
  }
  worker = null;
  await transport?.close();
  transport = null;
  rmSync(dir, { recursive: true, force: true });
});

/** Starts a Python Celery worker on the test's broker file; returns a reader of its output. */
function startWorker(): () => string {
  let log = "";
  worker = spawn(
    PY,
    [
      "-m",
      "celery",
      "-A",
      "pytasks",
      "worker",
      "--pool",
      "solo",
      "-Q",
      "celery",
      "-c",
      "1",
      "--without-gossip",
      "--without-mingle",
      "--without-heartbeat",
      "-l",
      "info",
    ],
    { env: env(), cwd: dir, stdio: ["ignore", "pipe", "pipe"] },
  );
  worker.stdout!.on("data", (b: Buffer) => (log += b.toString()));
  worker.stderr!.on("data", (b: Buffer) => (log += b.toString()));
  return () => log;
}

async function waitForFile(path: string, timeoutMs: number, log: () => string): Promise<string> {
  const deadline = Date.now() + timeoutMs;
  while (!existsSync(path)) {
    if (Date.now() > deadline) throw new Error(`no ${path} after ${timeoutMs} ms; worker output:\n${log()}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  return readFileSync(path, "utf8");
}

async function takeOne(t: SqliteTransport, queue: string, timeoutMs: number): Promise<Delivery> {
  const c = t.consume([queue], { prefetch: 1 });
  const timer = setTimeout(() => void c.stop(), timeoutMs);
  for await (const d of c) {
    clearTimeout(timer);
    await c.stop();
    return d;
  }
  throw new Error(`nothing on ${queue} within ${timeoutMs} ms`);
}

describe("Python Celery interop over sqla+sqlite", () => {
  it("a Python Celery worker runs a task Celeriac published", async () => {
    transport = createSqliteTransport({ path: brokerFile });
    const id = randomUUID();
    const message = celeryJsonCodec.encode(createEnvelope({ task: "pytasks.add", id, args: [2, 3] }));
    await transport.publish("celery", message);

    const log = startWorker();
    const text = await waitForFile(join(resultsDir, `celery-task-meta-${id}`), 25_000, log);
    const meta = JSON.parse(text) as Record<string, unknown>;
    expect(meta).toMatchObject({ status: "SUCCESS", result: 5, task_id: id });
    // kombu's consumer has no real ack: the row stays, hidden, and Celeriac leaves it alone.
    const db = new Database(brokerFile, { readonly: true });
    const rows = db.prepare("SELECT visible FROM kombu_message").all() as { visible: number }[];
    db.close();
    expect(rows).toEqual([{ visible: 0 }]);
    expect(await transport.purge("celery")).toBe(0);
    const c = transport.consume(["celery"], { prefetch: 1 });
    const next = c[Symbol.asyncIterator]().next();
    setTimeout(() => void c.stop(), 300);
    expect((await next).done).toBe(true);
    // ...until asked to prune what kombu consumed; a delayed message of ours stays.
    await transport.publish("celery", message, { delayMs: 60_000 });
    expect(await transport.pruneKombuConsumed()).toBe(1);
    expect(await transport.purge("celery")).toBe(1);
  }, 30_000);

  it("a Python worker and a Celeriac consumer on one queue never both take a message", async () => {
    const log = startWorker();
    const deadline = Date.now() + 20_000;
    while (!/ready\./.test(log())) {
      if (Date.now() > deadline) throw new Error(`worker not ready:\n${log()}`);
      await new Promise((r) => setTimeout(r, 100));
    }
    transport = createSqliteTransport({ path: brokerFile });
    const total = 150;
    const ids: string[] = [];
    const consumer = transport.consume(["celery"], { prefetch: 1 });
    const mine: string[] = [];
    const consuming = (async () => {
      for await (const d of consumer) {
        mine.push(decodeTask(d.message).headers.id);
        await new Promise((r) => setTimeout(r, 20)); // leave the Python worker a share
        await d.ack();
      }
    })();
    for (let i = 0; i < total; i++) {
      const id = randomUUID();
      ids.push(id);
      await transport.publish("celery", celeryJsonCodec.encode(createEnvelope({ task: "pytasks.add", id, args: [i, 1] })));
      await new Promise((r) => setTimeout(r, 5));
    }
    // Done when every message is accounted for: acked here or run by Python.
    const pythonRan = () => ids.filter((id) => existsSync(join(resultsDir, `celery-task-meta-${id}`)));
    while (mine.length + pythonRan().length < total && Date.now() < deadline + 5000) await new Promise((r) => setTimeout(r, 100));
    await consumer.stop();
    await consuming;
    const py = pythonRan();
    console.log(`shared queue: ${mine.length} consumed by Celeriac, ${py.length} run by Python Celery`);
    expect(mine.length + py.length).toBe(total);
    expect(new Set([...mine, ...py]).size).toBe(total);
    expect(mine.length).toBeGreaterThan(0);
    expect(py.length).toBeGreaterThan(0);
  }, 30_000);

  it("Celeriac consumes what Python's send_task and apply_async wrote", async () => {
    const out = spawnSync(
      PY,
      [
        "-c",
        `
import json, datetime
from pytasks import app, echo
eta = datetime.datetime(2030, 1, 2, 3, 4, 5, tzinfo=datetime.timezone.utc)
a = app.send_task('ts.add', args=(2, 3))
b = echo.apply_async(args=(1, 'two'), kwargs={'k': [1, 2]}, eta=eta, priority=7, queue='celery')
print(json.dumps([a.id, b.id]))
`,
      ],
      { env: env(), cwd: dir, encoding: "utf8", timeout: 20_000 },
    );
    expect(out.status, out.stderr).toBe(0);
    const [sendTaskId, applyId] = JSON.parse(out.stdout) as [string, string];

    transport = createSqliteTransport({ path: brokerFile });
    // The apply_async message has priority 7, so it comes first although it was sent second.
    const second = await takeOne(transport, "celery", 5000);
    const first = await takeOne(transport, "celery", 5000);

    const a = decodeTask(first.message);
    expect(a.headers).toMatchObject({ task: "ts.add", id: sendTaskId, retries: 0 });
    expect(a.args).toEqual([2, 3]);
    expect(a.kwargs).toEqual({});
    expect(first.redelivered).toBe(false);
    await first.ack();

    const b = decodeTask(second.message);
    expect(b.headers.task).toBe("pytasks.echo");
    expect(b.headers.id).toBe(applyId);
    expect(b.args).toEqual([1, "two"]);
    expect(b.kwargs).toEqual({ k: [1, 2] });
    expect(new Date(b.headers.eta!).toISOString()).toBe("2030-01-02T03:04:05.000Z");
    expect(b.properties.priority).toBe(7);
    expect(b.properties.correlationId).toBe(applyId);
    await second.ack();
    expect(await transport.purge("celery")).toBe(0);
  }, 30_000);

  it("orders Python-written messages by their priority too", async () => {
    const out = spawnSync(
      PY,
      [
        "-c",
        `
from pytasks import app
for n, p in [(0, 0), (1, 3), (2, 9), (3, None), (4, 3)]:
    app.send_task('ts.n', args=(n,), priority=p)
`,
      ],
      { env: env(), cwd: dir, encoding: "utf8", timeout: 20_000 },
    );
    expect(out.status, out.stderr).toBe(0);
    transport = createSqliteTransport({ path: brokerFile });
    const order: unknown[] = [];
    for (let i = 0; i < 5; i++) {
      const d = await takeOne(transport, "celery", 5000);
      order.push(decodeTask(d.message).args[0]);
      await d.ack();
    }
    expect(order).toEqual([2, 1, 4, 0, 3]);
  }, 30_000);
});
