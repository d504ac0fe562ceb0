import { spawn, type ChildProcess } from "node:child_process";
import { randomUUID } from "node:crypto";
import { appendFileSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { connect } from "amqplib";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { celeryJsonCodec, createClient, TaskFailedError, type Client } from "@celeriac/core";
import { createAmqpTransport, createRpcResultBackend, type AmqpTransport, type RpcResultBackend } from "@celeriac/amqp";
import { createWorker, type Worker } from "@celeriac/worker";
import { PYTHON, PYTHON_DIR, runPython } from "../../../test-support/python.js";
import { sharedRabbit, shutdownSharedRabbit, type RabbitNode } from "../../../test-support/rabbitmq.js";

/**
 * Both directions against real Python Celery 5.2.6 over one private RabbitMQ node, results over
 * rpc://. Every queue has x-max-priority 10 on both sides (amqp_app sets
 * task_queue_max_priority), so declarations agree.
 */
let rabbit: RabbitNode;
let dir: string;
let py: { child: ChildProcess; output: () => string } | null = null;
let transport: AmqpTransport;
let backend: RpcResultBackend;
let client: Client;
let worker: Worker;
let workerTransport: AmqpTransport;
let workerBackend: RpcResultBackend;
const pyQueue = `amqp-py-${randomUUID().slice(0, 8)}`;
const tsQueue = `amqp-ts-${randomUUID().slice(0, 8)}`;

function pyEnv(): NodeJS.ProcessEnv {
  return {
    ...process.env,
    CELERIAC_BROKER_URL: rabbit.url,
    CELERIAC_RESULT_URL: "rpc://",
    CELERIAC_MAX_PRIORITY: "10",
    CELERIAC_PREFETCH_MULTIPLIER: "1",
    PYTHONPATH: PYTHON_DIR,
    PYTHONUNBUFFERED: "1",
    PYTHONDONTWRITEBYTECODE: "1",
  };
}

async function startPyWorker(queue: string, pool: "solo" | "prefork" = "solo"): Promise<{ child: ChildProcess; output: () => string }> {
  const args = ["-m", "celery", "-A", "amqp_app", "worker", "--loglevel", "INFO", "-Q", queue, "--pool", pool];
  if (pool === "prefork") args.push("--concurrency", "1");
  args.push("--without-gossip", "--without-mingle", "--without-heartbeat", "-n", `py-amqp-${pool}-${process.pid}@localhost`);
  const child = spawn(PYTHON, args, { cwd: PYTHON_DIR, env: pyEnv(), stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  child.stdout!.on("data", (d: Buffer) => (out += d.toString()));
  child.stderr!.on("data", (d: Buffer) => (out += d.toString()));
  const deadline = Date.now() + 30_000;
  while (!/ ready\.?/.test(out)) {
    if (child.exitCode !== null) throw new Error(`Python worker exited early:\n${out}`);
    if (Date.now() > deadline) throw new Error(`Python worker not ready:\n${out}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  return { child, output: () => out };
}

async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((r) => child.once("exit", r));
  child.kill("SIGTERM");
  const timer = setTimeout(() => child.kill("SIGKILL"), 5000);
  await exited;
  clearTimeout(timer);
}

interface PyOutcome {
  id: string;
  status: string;
  result?: unknown;
  exc_type?: string;
  exc_message?: string[];
}

async function pySend(name: string, args: unknown[], kwargs: Record<string, unknown> = {}, options: Record<string, unknown> = {}): Promise<PyOutcome> {
  const out = await runPython({ brokerUrl: rabbit.url, resultUrl: "rpc://", app: "amqp_app" }, "send_and_wait.py", [
    name,
    JSON.stringify(args),
    JSON.stringify(kwargs),
    JSON.stringify({ queue: tsQueue, timeout: 20, ...options }),
  ]);
  return JSON.parse(out.trim().split("\n").pop()!) as PyOutcome;
}

beforeAll(async () => {
  rabbit = await sharedRabbit();
  process.env["CELERIAC_MAX_PRIORITY"] = "10";
  dir = mkdtempSync(join(tmpdir(), "celeriac-amqp-py-"));
  py = await startPyWorker(pyQueue);
  transport = createAmqpTransport({ url: rabbit.url, maxPriority: 10 });
  backend = createRpcResultBackend({ url: rabbit.url });
  client = createClient({ transport, resultBackend: backend, defaultQueue: pyQueue });

  workerTransport = createAmqpTransport({ url: rabbit.url, maxPriority: 10 });
  workerBackend = createRpcResultBackend({ url: rabbit.url });
  await workerTransport.connect();
  worker = createWorker({
    transport: workerTransport,
    resultBackend: workerBackend,
    queues: [tsQueue],
    concurrency: 1,
    prefetchMultiplier: 1,
    maxHeldEta: 0,
    silent: true,
  });
  worker.register("ts.echo", (_ctx, ...args) => ({ args, kwargs: _ctx.kwargs }));
  worker.register("ts.fail", () => {
    throw new RangeError("typescript failure");
  });
  worker.register("ts.retry_once", (ctx, value) => {
    if (ctx.retries < 1) throw ctx.retry({ countdownMs: 200 });
    return { value, retries: ctx.retries };
  });
  worker.register("ts.now", () => Date.now());
  worker.register("ts.sleep", async (ctx, ms) => {
    await new Promise<void>((resolve, reject) => {
      const t = setTimeout(resolve, Number(ms));
      ctx.signal.addEventListener("abort", () => {
        clearTimeout(t);
        reject(ctx.signal.reason instanceof Error ? ctx.signal.reason : new Error(String(ctx.signal.reason)));
      });
    });
    return ms;
  });
  worker.register("ts.record", (_ctx, path, label) => {
    appendFileSync(String(path), `${String(label)}\n`);
    return label;
  });
  await worker.start();
}, 120_000);

afterAll(async () => {
  await worker?.stop();
  await workerTransport?.close();
  await workerBackend?.close();
  await transport?.close();
  await backend?.close();
  if (py) await stopChild(py.child);
  if (dir) rmSync(dir, { recursive: true, force: true });
  await shutdownSharedRabbit();
}, 60_000);

const pyLog = () => py?.output().slice(-3000) ?? "";

describe("TypeScript client -> Python worker over amqp://, results over rpc://", () => {
  it("passes args and kwargs of many types and gets the result", async () => {
    const args = [1, -2, 2 ** 40, 1.5, "héllo ✓", null, true, false, [1, [2, "x"]], { a: 1, b: [null] }];
    const kwargs = { s: "y", n: 200, neg: -70000, big: 2 ** 53 - 1, f: -0.25, nested: { deep: { list: [1, 2, 3] } } };
    const r = await client.sendTask("pytasks.echo", { args, kwargs });
    expect(await r.get({ timeoutMs: 20_000 }), pyLog()).toEqual({ args, kwargs });
  });

  it("encodes integer headers so py-amqp reads them: retries 200, timelimit [300, 60], custom ints", async () => {
    const r = await client.sendTask("amqp.request_info", {
      retries: 200,
      timeLimitMs: 300_000,
      softTimeLimitMs: 60_000,
      priority: 7,
      headers: { x_small: 3, x_big: 2 ** 40, x_neg: -70000, x_nested: { n: 300, list: [1, 40000] } },
    });
    expect(await r.get({ timeoutMs: 20_000 }), pyLog()).toEqual({
      retries: 200,
      timelimit: [300, 60],
      priority: 7,
      x_small: 3,
      x_big: 2 ** 40,
      x_neg: -70000,
      x_nested: { n: 300, list: [1, 40000] },
    });
  });

  it("surfaces a Python ValueError with its type and message", async () => {
    const r = await client.sendTask("pytasks.fail", { args: ["bad value from python"] });
    const err = await r.get({ timeoutMs: 20_000 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TaskFailedError);
    expect((err as TaskFailedError).excType).toBe("ValueError");
    expect((err as TaskFailedError).excMessage).toEqual(["bad value from python"]);
  });

  it("follows a Python retry to the final result", async () => {
    const r = await client.sendTask("pytasks.retry_once", { args: [42] });
    expect(await r.get({ timeoutMs: 20_000 })).toEqual({ value: 42, retries: 1 });
  });

  it("honours countdown and eta", async () => {
    const sent = Date.now();
    const a = await client.sendTask("pytasks.now", { countdownMs: 1500 });
    const b = await client.sendTask("pytasks.now", { eta: new Date(sent + 1500) });
    const [ta, tb] = [(await a.get({ timeoutMs: 20_000 })) as number, (await b.get({ timeoutMs: 20_000 })) as number];
    expect(ta - sent).toBeGreaterThanOrEqual(1400);
    expect(tb - sent).toBeGreaterThanOrEqual(1400);
  });

  it("an expired task is revoked by the Python worker", async () => {
    // Celery's `expires` header, already past when the worker reads it. The AMQP per-message TTL
    // that Celery adds as well is left off here, or RabbitMQ would drop the message before any
    // worker saw it.
    const env = client.buildEnvelope("pytasks.add", [1, 2], {}, { expires: new Date(Date.now() - 1000) });
    env.properties.replyTo = await backend.replyTo();
    env.properties.expiration = null;
    await transport.publish(pyQueue, celeryJsonCodec.encode(env));
    const err = await client
      .asyncResult(env.headers.id)
      .get({ timeoutMs: 20_000 })
      .catch((e: unknown) => e);
    expect((err as { code?: string }).code, `${String(err)}\n${pyLog()}`).toBe("task_revoked");
  });

  it("runs a backlog in priority order, higher first", async () => {
    // The backlog is queued before a worker consumes the queue, so the broker's order is all
    // that decides.
    const queue = `amqp-py-prio-${randomUUID().slice(0, 8)}`;
    const file = join(dir, "py-order.txt");
    const rs = [];
    for (const p of [1, 5, 9, 3, 0, 7]) rs.push(await client.sendTask("pytasks.record", { args: [file, `p${p}`], priority: p, queue }));
    const w = await startPyWorker(queue);
    try {
      for (const r of rs) await r.get({ timeoutMs: 20_000 });
      expect(readFileSync(file, "utf8").trim().split("\n")).toEqual(["p9", "p7", "p5", "p3", "p1", "p0"]);
    } finally {
      await stopChild(w.child);
    }
  }, 60_000);

  it("a prefork Python worker enforces the time limits a TypeScript client sent", async () => {
    // The solo pool ignores time limits; prefork enforces them.
    const queue = `amqp-py-prefork-${randomUUID().slice(0, 8)}`;
    const prefork = await startPyWorker(queue, "prefork");
    try {
      const r = await client.sendTask("pytasks.sleep", { args: [10], queue, timeLimitMs: 1000 });
      const err = await r.get({ timeoutMs: 20_000 }).catch((e: unknown) => e);
      expect(err, prefork.output().slice(-2000)).toBeInstanceOf(TaskFailedError);
      expect((err as TaskFailedError).excType).toBe("TimeLimitExceeded");
    } finally {
      await stopChild(prefork.child);
    }
  }, 60_000);

  it("reports which argument differs when a queue exists with other arguments (406)", async () => {
    const plain = createAmqpTransport({ url: rabbit.url });
    try {
      const err = await plain
        .publish(pyQueue, { body: new Uint8Array(), contentType: "application/json", contentEncoding: "utf-8", headers: {}, properties: {} })
        .catch((e: unknown) => e);
      expect(String(err)).toMatch(/queue "amqp-py-[0-9a-f]+" already exists and argument "x-max-priority" differs/);
      // The passive mode never re-declares, so it works with the existing queue.
      const passive = createAmqpTransport({ url: rabbit.url, declare: "passive" });
      await passive.connect();
      const r = await createClient({ transport: passive, resultBackend: backend, defaultQueue: pyQueue }).sendTask("pytasks.add", { args: [2, 3] });
      expect(await r.get({ timeoutMs: 20_000 })).toBe(5);
      await passive.close();
    } finally {
      await plain.close();
    }
  });
});

describe("Python client -> TypeScript worker over amqp://, results over rpc://", () => {
  it("passes args and kwargs of many types and returns the result", async () => {
    const args = [1, -2, 2 ** 40, 1.5, "héllo ✓", null, true, [1, [2, "x"]], { a: 1 }];
    const kwargs = { s: "y", n: 200, nested: { deep: [1, 2] } };
    const out = await pySend("ts.echo", args, kwargs);
    expect(out.status).toBe("SUCCESS");
    expect(out.result).toEqual({ args, kwargs });
  });

  it("a TypeScript failure is re-raised by Python's AsyncResult.get()", async () => {
    const out = await pySend("ts.fail", []);
    expect(out.status).toBe("FAILURE");
    expect(out.exc_type).toBe("RangeError");
    expect(out.exc_message).toEqual(["typescript failure"]);
  });

  it("retries in TypeScript and Python sees the final result", async () => {
    const out = await pySend("ts.retry_once", [9]);
    expect(out).toMatchObject({ status: "SUCCESS", result: { value: 9, retries: 1 } });
  });

  it("honours a Python countdown", async () => {
    const sent = Date.now();
    const out = await pySend("ts.now", [], {}, { countdown: 1.5 });
    expect((out.result as number) - sent).toBeGreaterThanOrEqual(1400);
  });

  it("enforces a Python time_limit as TimeLimitExceeded", async () => {
    const out = await pySend("ts.sleep", [5000], {}, { time_limit: 1 });
    expect(out.status).toBe("FAILURE");
    expect(out.exc_type).toBe("TimeLimitExceeded");
  });

  it("revokes an expired Python task", async () => {
    const [, expired] = await Promise.all([
      pySend("ts.sleep", [3000]),
      new Promise((r) => setTimeout(r, 1200)).then(() => pySend("ts.echo", [1], {}, { expires: 0.8 })),
    ]);
    expect(expired.status).toBe("REVOKED");
    expect(expired.exc_type).toBe("TaskRevokedError");
  });

  it("runs a Python backlog in priority order, higher first", async () => {
    // Python queues the backlog before any worker consumes that queue; then a TypeScript worker
    // starts, and the broker's priority order is all that decides.
    const queue = `amqp-ts-prio-${randomUUID().slice(0, 8)}`;
    const file = join(dir, "ts-order.txt");
    const calls = [1, 5, 9, 3, 0, 7].map((p) => ["ts.record", [file, `p${p}`], { priority: p }]);
    const sent = runPython({ brokerUrl: rabbit.url, resultUrl: "rpc://" }, "amqp_send_many.py", [queue, JSON.stringify(calls)]);
    const conn = await connect(rabbit.url.replace(/\/\/$/, "/%2F"));
    const deadline = Date.now() + 20_000;
    for (;;) {
      // A passive check of a missing queue closes its channel: one channel per check.
      const ch = await conn.createChannel();
      ch.on("error", () => undefined);
      const depth = await ch.checkQueue(queue).then(
        (q) => q.messageCount,
        () => -1,
      );
      await ch.close().catch(() => undefined);
      if (depth === 6) break;
      if (Date.now() > deadline) throw new Error(`backlog not queued (depth ${depth})`);
      await new Promise((r) => setTimeout(r, 100));
    }
    await conn.close();
    const w = createWorker({ transport: workerTransport, resultBackend: workerBackend, queues: [queue], concurrency: 1, silent: true });
    w.register("ts.record", (_ctx, path, label) => {
      appendFileSync(String(path), `${String(label)}\n`);
      return label;
    });
    await w.start();
    try {
      expect(JSON.parse((await sent).trim().split("\n").pop()!)).toEqual(["p1", "p5", "p9", "p3", "p0", "p7"]);
      expect(readFileSync(file, "utf8").trim().split("\n")).toEqual(["p9", "p7", "p5", "p3", "p1", "p0"]);
    } finally {
      await w.stop();
    }
  }, 60_000);
});
