import { randomUUID } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { TaskFailedError, createClient } from "@celeriac/core";
import { createRedisResultBackend, createRedisTransport, type RedisResultBackend, type RedisTransport } from "@celeriac/redis";
import { createWorker, type Worker } from "@celeriac/worker";
import { runPython } from "../../../test-support/python.js";
import { startPythonRedisWorker, startRedisServer, type PythonRedisWorker, type RedisServer } from "../../../test-support/redis.js";

let server: RedisServer;
let dir: string;
const cleanups: (() => Promise<void>)[] = [];

beforeAll(async () => {
  server = await startRedisServer();
  dir = mkdtempSync(join(tmpdir(), "celeriac-redis-py-"));
});
afterAll(async () => {
  await server.dispose();
  rmSync(dir, { recursive: true, force: true });
});
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/** Broker and results on one Redis, in separate databases, as a typical Celery deployment. */
const brokerUrl = () => server.url(2);
const resultUrl = () => server.url(3);
const pyEnv = () => ({ brokerUrl: brokerUrl(), resultUrl: resultUrl() });

function transport(): RedisTransport {
  const t = createRedisTransport({ url: brokerUrl() });
  cleanups.push(() => t.close());
  return t;
}
function results(): RedisResultBackend {
  const b = createRedisResultBackend({ url: resultUrl() });
  cleanups.push(() => b.close());
  return b;
}

interface PyOutcome {
  id: string;
  status: string;
  result?: unknown;
  exc_type?: string;
  exc_message?: string[];
}

async function pySend(
  queue: string,
  specs: { name: string; args?: unknown[]; kwargs?: Record<string, unknown>; options?: Record<string, unknown> }[],
): Promise<string[]> {
  const withQueue = specs.map((s) => ({ ...s, options: { queue, ...s.options } }));
  return JSON.parse(await runPython({ ...pyEnv(), app: "redis_app" }, "send_many.py", [JSON.stringify(withQueue)])) as string[];
}

async function pyResults(ids: string[], groupId?: string): Promise<{ results: PyOutcome[]; group?: string[] | null }> {
  const out = JSON.parse(await runPython(pyEnv(), "redis_results.py", [JSON.stringify(ids), "30", ...(groupId ? [groupId] : [])])) as unknown;
  return groupId ? (out as { results: PyOutcome[]; group: string[] | null }) : { results: out as PyOutcome[] };
}

async function tsWorker(queue: string, t: RedisTransport, b: RedisResultBackend, log: string[] = []): Promise<Worker> {
  await t.connect();
  const w = createWorker({ transport: t, resultBackend: b, queues: [queue], concurrency: 1, prefetchMultiplier: 1, silent: true });
  w.register("ts.add", async (_ctx, a, c) => (a as number) + (c as number));
  w.register("ts.echo", async (ctx, ...args) => ({ args, kwargs: ctx.kwargs }));
  w.register("ts.fail", async (_ctx, message) => {
    throw new RangeError(String(message));
  });
  w.register("ts.retry_once", async (ctx, value) => {
    if (ctx.retries < 1) throw ctx.retry({ countdownMs: 200 });
    return { value, retries: ctx.retries };
  });
  w.register("ts.now", async () => Date.now());
  w.register("ts.record", async (ctx, label) => {
    log.push(String(label));
    return ctx.delivery.priority;
  });
  await w.start();
  cleanups.push(() => w.stop());
  return w;
}

describe("Python Celery -> Celeriac worker over redis://", () => {
  it("runs Python's tasks and Python reads the results: args/kwargs, values, exceptions, retries, eta, expires", async () => {
    const queue = `py2ts-${randomUUID().slice(0, 8)}`;
    await tsWorker(queue, transport(), results());
    const sentAt = Date.now();
    const ids = await pySend(queue, [
      { name: "ts.echo", args: [1, "two", [3]], kwargs: { k: { nested: true }, n: null } },
      { name: "ts.add", args: [2, 3] },
      { name: "ts.fail", args: ["boom"] },
      { name: "ts.retry_once", args: ["v"] },
      { name: "ts.now", options: { countdown: 1.5 } },
      { name: "ts.add", args: [1, 1], options: { expires: -5 } },
    ]);
    const { results: out } = await pyResults(ids.slice(0, 5));
    expect(out[0]).toMatchObject({ status: "SUCCESS", result: { args: [1, "two", [3]], kwargs: { k: { nested: true }, n: null } } });
    expect(out[1]).toMatchObject({ status: "SUCCESS", result: 5 });
    expect(out[2]).toMatchObject({ status: "FAILURE", exc_type: "RangeError", exc_message: ["boom"] });
    expect(out[3]).toMatchObject({ status: "SUCCESS", result: { value: "v", retries: 1 } });
    expect(out[4]!.status).toBe("SUCCESS");
    expect(out[4]!.result as number).toBeGreaterThanOrEqual(sentAt + 1400);
    const expired = await results().waitFor(ids[5]!, { timeoutMs: 10_000 });
    expect(expired.status).toBe("REVOKED");
  }, 60_000);

  it("takes Python's priorities 0, 3, 6, 9 in Celery's order on Redis (0 first)", async () => {
    const queue = `py2ts-pri-${randomUUID().slice(0, 8)}`;
    const specs = [9, 6, 3, 0, 9, 6, 3, 0].map((p, i) => ({ name: "ts.record", args: [`p${p}-${i}`], options: { priority: p } }));
    await pySend(queue, specs);
    const log: string[] = [];
    const t = transport();
    await tsWorker(queue, t, results(), log);
    const deadline = Date.now() + 15_000;
    while (log.length < specs.length && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    expect(log).toEqual(["p0-3", "p0-7", "p3-2", "p3-6", "p6-1", "p6-5", "p9-0", "p9-4"]);
  }, 30_000);
});

describe("Celeriac client -> Python Celery worker over redis://", () => {
  let py: PythonRedisWorker | null = null;
  afterEach(async () => {
    await py?.stop();
    py = null;
  });

  it("Python runs Celeriac's tasks and Celeriac reads the results: args/kwargs, values, exceptions, retries, eta, expires, groups", async () => {
    const queue = `ts2py-${randomUUID().slice(0, 8)}`;
    py = await startPythonRedisWorker({ ...pyEnv(), queues: [queue] });
    const b = results();
    const client = createClient({ transport: transport(), resultBackend: b, defaultQueue: queue });
    const echo = await client.sendTask("pytasks.echo", { args: [1, "x"], kwargs: { k: [1, null, true] } });
    const add = await client.sendTask("pytasks.add", { args: [2, 3] });
    const fail = await client.sendTask("pytasks.fail", { args: ["from ts"] });
    const retry = await client.sendTask("pytasks.retry_once", { args: ["v"] });
    const sentAt = Date.now();
    const later = await client.sendTask("pytasks.now", { countdownMs: 1500 });
    const expired = await client.sendTask("pytasks.add", { args: [1, 1], expires: new Date(Date.now() - 5000) });
    expect(await echo.get({ timeoutMs: 20_000 })).toEqual({ args: [1, "x"], kwargs: { k: [1, null, true] } });
    expect(await add.get({ timeoutMs: 20_000 })).toBe(5);
    const err = await fail.get({ timeoutMs: 20_000 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TaskFailedError);
    expect((err as TaskFailedError).excType).toBe("ValueError");
    expect((err as TaskFailedError).excMessage).toEqual(["from ts"]);
    expect(await retry.get({ timeoutMs: 20_000 })).toEqual({ value: "v", retries: 1 });
    expect((await later.get({ timeoutMs: 20_000 })) as number).toBeGreaterThanOrEqual(sentAt + 1400);
    expect((await b.waitFor(expired.id, { timeoutMs: 20_000 })).status).toBe("REVOKED");

    // A group saved by Celeriac, restored by Python's GroupResult.restore.
    const groupId = randomUUID();
    await b.saveGroup(groupId, [add.id, echo.id]);
    const { results: pyView, group } = await pyResults([add.id], groupId);
    expect(pyView[0]).toMatchObject({ status: "SUCCESS", result: 5 });
    expect(group).toEqual([add.id, echo.id]);
    expect(await b.restoreGroup(groupId)).toEqual({ groupId, taskIds: [add.id, echo.id] });
  }, 60_000);

  it("Python takes Celeriac's priorities 9, 6, 3, 0 most urgent first", async () => {
    const queue = `ts2py-pri-${randomUUID().slice(0, 8)}`;
    const file = join(dir, `${queue}.log`);
    const client = createClient({ transport: transport(), defaultQueue: queue });
    const priorities = [0, 3, 6, 9, 0, 3, 6, 9];
    for (const [i, p] of priorities.entries()) await client.sendTask("pytasks.record", { args: [file, `p${p}-${i}`], priority: p });
    py = await startPythonRedisWorker({ ...pyEnv(), queues: [queue], prefetchMultiplier: 1 });
    const deadline = Date.now() + 20_000;
    let lines: string[] = [];
    while (Date.now() < deadline) {
      try {
        lines = readFileSync(file, "utf8").trim().split("\n");
      } catch {
        lines = [];
      }
      if (lines.length >= priorities.length) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    expect(lines).toEqual(["p9-3", "p9-7", "p6-2", "p6-6", "p3-1", "p3-5", "p0-0", "p0-4"]);
  }, 40_000);
});
