import { spawn, type ChildProcess } from "node:child_process";
import { appendFileSync, existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createClient, TaskFailedError, type ResultBackend } from "@celeriac/core";
import { createRedisResultBackend } from "@celeriac/redis";
import { createWorker, type Worker } from "@celeriac/worker";
import { createSqsTransport, sqsTransportFromUrl, type SqsTransport } from "@celeriac/sqs";
import { startSqsEmulator, type SqsEmulator } from "../../../test-support/sqs-emulator.mjs";
import { PYTHON, PYTHON_DIR, runPython } from "../../../test-support/python.js";
import { startRedisServer, type RedisServer } from "../../../test-support/redis.js";

// Results go through Celery's file:// backend, which both sides implement.
let emulator: SqsEmulator;
let dir: string;
let resultUrl: string;
// Results go through Redis, the most common Celery result backend, shared by both languages.
let redis: RedisServer;
let brokerUrl: string;
const sqsOptions = JSON.stringify({ region: "us-east-1", wait_time_seconds: 1, polling_interval: 0.1 });

function pyEnv(): NodeJS.ProcessEnv {
  return {
    ...process.env,
    CELERIAC_BROKER_URL: brokerUrl,
    CELERIAC_RESULT_URL: resultUrl,
    CELERIAC_SQS_OPTIONS: sqsOptions,
    PYTHONPATH: PYTHON_DIR,
    PYTHONUNBUFFERED: "1",
    PYTHONDONTWRITEBYTECODE: "1",
  };
}

beforeAll(async () => {
  emulator = await startSqsEmulator();
  dir = mkdtempSync(join(tmpdir(), "celeriac-sqs-py-"));
  redis = await startRedisServer();
  resultUrl = redis.url(0);
  brokerUrl = `sqs://test:test@127.0.0.1:${emulator.port}`;
});
afterAll(async () => {
  await emulator.close();
  await redis.dispose();
  rmSync(dir, { recursive: true, force: true });
});

/** `send_and_wait.py` over SQS: Python's send_task, then r.get(). */
async function pySend(name: string, args: unknown[], kwargs: Record<string, unknown>, options: Record<string, unknown>): Promise<Record<string, unknown>> {
  const out = await runPython(
    { brokerUrl, resultUrl },
    "sqs_send_and_wait.py",
    [name, JSON.stringify(args), JSON.stringify(kwargs), JSON.stringify({ timeout: 25, ...options })],
    40_000,
  );
  return JSON.parse(out.trim().split("\n").at(-1)!) as Record<string, unknown>;
}

describe("Celeriac producer, Python Celery worker (kombu's SQS transport)", () => {
  let py: ChildProcess;
  let log = "";
  let transport: SqsTransport;
  let backend: ResultBackend;

  beforeAll(async () => {
    py = spawn(
      PYTHON,
      [
        "-m",
        "celery",
        "-A",
        "sqs_app",
        "worker",
        "--pool",
        "solo",
        "-l",
        "INFO",
        "-Q",
        "py-in,py-in.fifo",
        "--without-gossip",
        "--without-mingle",
        "--without-heartbeat",
        "-n",
        `py-sqs-${process.pid}@localhost`,
      ],
      {
        cwd: PYTHON_DIR,
        env: pyEnv(),
        stdio: ["ignore", "pipe", "pipe"],
      },
    );
    py.stdout!.on("data", (d: Buffer) => (log += d.toString()));
    py.stderr!.on("data", (d: Buffer) => (log += d.toString()));
    const deadline = Date.now() + 30_000;
    while (!/ ready\.?/.test(log)) {
      if (py.exitCode !== null || Date.now() > deadline) throw new Error(`Python worker not ready:\n${log}`);
      await new Promise((r) => setTimeout(r, 50));
    }
    transport = sqsTransportFromUrl(`${brokerUrl}?region=us-east-1&wait_time_seconds=1`);
    backend = createRedisResultBackend({ url: resultUrl });
  });
  afterAll(async () => {
    const exited = new Promise((r) => py.once("exit", r));
    py.kill("SIGTERM");
    const timer = setTimeout(() => py.kill("SIGKILL"), 5000);
    await exited;
    clearTimeout(timer);
    await transport.close();
    await backend.close();
  });

  const client = () => createClient({ transport, resultBackend: backend, defaultQueue: "py-in" });

  it("args, kwargs and the result", async () => {
    const r = await client().sendTask("pytasks.echo", { args: [1, "two", [3]], kwargs: { k: { nested: true } } });
    expect(await r.get({ timeoutMs: 20_000 })).toEqual({ args: [1, "two", [3]], kwargs: { k: { nested: true } } });
  });

  it("an exception comes back as the failure", async () => {
    const r = await client().sendTask("pytasks.fail", { args: ["boom from python"] });
    const err = await r.get({ timeoutMs: 20_000 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TaskFailedError);
    expect((err as TaskFailedError).excType).toBe("ValueError");
    expect((err as TaskFailedError).excMessage).toEqual(["boom from python"]);
  });

  it("a retry with a countdown", async () => {
    const r = await client().sendTask("pytasks.retry_once", { args: ["v"] });
    expect(await r.get({ timeoutMs: 20_000 })).toEqual({ value: "v", retries: 1 });
  });

  it("countdown: runs no sooner than asked", async () => {
    const sent = Date.now();
    const r = await client().sendTask("pytasks.now", { countdownMs: 2000 });
    const ranAt = (await r.get({ timeoutMs: 20_000 })) as number;
    expect(ranAt - sent).toBeGreaterThanOrEqual(1900);
  });

  it("a FIFO queue keeps the order of a message group", async () => {
    const file = join(dir, "fifo-order.txt");
    const c = client();
    const results = [];
    for (let i = 1; i <= 5; i++) {
      results.push(await c.sendTask("pytasks.record", { args: [file, `m${i}`], queue: "py-in.fifo", headers: { MessageGroupId: "g1" } }));
    }
    for (const r of results) await r.get({ timeoutMs: 20_000 });
    expect(readFileSync(file, "utf8").trim().split("\n")).toEqual(["m1", "m2", "m3", "m4", "m5"]);
  });
});

describe("Python Celery producer, Celeriac worker", () => {
  let transport: SqsTransport;
  let backend: ResultBackend;
  let worker: Worker;
  // FIFO order holds only if a group's messages run one at a time, so the FIFO queue gets its own
  // worker of concurrency 1 (a Celery worker would need -c 1 for the same reason).
  let fifoWorker: Worker;
  const attempts = new Map<string, number>();

  beforeAll(async () => {
    transport = createSqsTransport({
      endpoint: emulator.endpoint,
      region: "us-east-1",
      credentials: { accessKeyId: "test", secretAccessKey: "test" },
      waitTimeSeconds: 1,
    });
    backend = createRedisResultBackend({ url: resultUrl });
    await transport.connect();
    worker = createWorker({ transport, resultBackend: backend, queues: ["ts-in"], concurrency: 4, silent: true });
    worker.register("ts.echo", async (_ctx, ...args) => ({ args, kwargs: _ctx.kwargs }));
    worker.register("ts.fail", async () => {
      throw new RangeError("boom from node");
    });
    worker.register("ts.retry_once", async (ctx, value) => {
      attempts.set(ctx.id, (attempts.get(ctx.id) ?? 0) + 1);
      if (ctx.retries < 1) throw ctx.retry({ countdownMs: 300 });
      return { value, retries: ctx.retries };
    });
    worker.register("ts.now", async () => Date.now());
    fifoWorker = createWorker({ transport, resultBackend: backend, queues: ["ts-in.fifo"], concurrency: 1, silent: true });
    fifoWorker.register("ts.record", async (_ctx, file, label) => {
      appendFileSync(String(file), `${String(label)}\n`);
      return label;
    });
    await worker.start();
    await fifoWorker.start();
  });
  afterAll(async () => {
    await fifoWorker.stop();
    await worker.stop();
    await transport.close();
    await backend.close();
  });

  it("args, kwargs and the result", async () => {
    const out = await pySend("ts.echo", [1, "two"], { k: [1, 2] }, { queue: "ts-in" });
    expect(out).toMatchObject({ status: "SUCCESS", result: { args: [1, "two"], kwargs: { k: [1, 2] } } });
  });

  it("an exception comes back to Python", async () => {
    const out = await pySend("ts.fail", [], {}, { queue: "ts-in" });
    expect(out).toMatchObject({ status: "FAILURE", exc_type: "RangeError", exc_message: ["boom from node"] });
  });

  it("a retry", async () => {
    const out = await pySend("ts.retry_once", ["x"], {}, { queue: "ts-in" });
    expect(out).toMatchObject({ status: "SUCCESS", result: { value: "x", retries: 1 } });
    expect(attempts.get(out["id"] as string)).toBe(2);
  });

  it("countdown (sent as an eta header)", async () => {
    const sent = Date.now();
    const out = await pySend("ts.now", [], {}, { queue: "ts-in", countdown: 2 });
    expect(out["status"]).toBe("SUCCESS");
    expect((out["result"] as number) - sent).toBeGreaterThanOrEqual(1900);
  });

  it("a FIFO queue with Python's MessageGroupId", async () => {
    const file = join(dir, "ts-fifo-order.txt");
    const out = await runPython(
      { brokerUrl, resultUrl },
      "-c",
      [
        `
import sqs_app
from interop_app import app
rs = [app.send_task("ts.record", args=(${JSON.stringify(file)}, f"m{i}"), queue="ts-in.fifo", MessageGroupId="g1") for i in range(1, 6)]
print([r.get(timeout=25) for r in rs])
`,
      ],
      40_000,
    );
    expect(out).toContain("['m1', 'm2', 'm3', 'm4', 'm5']");
    expect(existsSync(file)).toBe(true);
    expect(readFileSync(file, "utf8").trim().split("\n")).toEqual(["m1", "m2", "m3", "m4", "m5"]);
  });
});
