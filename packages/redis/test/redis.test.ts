import { randomUUID } from "node:crypto";
import { Redis } from "ioredis";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { CeleriacError, celeryJsonCodec, createEnvelope, resultBackendFromUrl, transportFromUrl, type ResultMeta } from "@celeriac/core";
import { pyParse, type Delivery } from "@celeriac/core/transport";
import {
  createRedisResultBackend,
  createRedisTransport,
  fromRedisPriority,
  parseRedisUrl,
  redisResultBackendFromUrl,
  redisTransportFromUrl,
  toRedisPriority,
  type RedisTransport,
} from "@celeriac/redis";
import { createWorker, type LogRecord } from "@celeriac/worker";
import { runPython } from "../../../test-support/python.js";
import { startRedisServer, type RedisServer } from "../../../test-support/redis.js";

let server: RedisServer;
let raw: Redis;
const cleanups: (() => Promise<void>)[] = [];
const DB = 8;

beforeAll(async () => {
  server = await startRedisServer();
  raw = new Redis(server.url(DB));
});
afterAll(async () => {
  raw.disconnect();
  await server.dispose();
});
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

function transport(options: { visibilityTimeoutMs?: number; restoreIntervalMs?: number } = {}): RedisTransport {
  const t = createRedisTransport({ url: server.url(DB), ...options });
  cleanups.push(() => t.close());
  return t;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function takeOne(t: RedisTransport, queue: string): Promise<Delivery> {
  for await (const d of t.consume([queue], { prefetch: 1 })) return d;
  throw new Error("consumer ended");
}

describe("URLs and options", () => {
  it("parses redis:// and rediss:// with user, password, port and database", () => {
    expect(parseRedisUrl("redis://localhost").connection).toEqual({ host: "localhost", port: 6379, db: 0, tls: false });
    // As redis-py (urllib) reads them: a raw @ stays in the password, an invalid escape is kept.
    expect(parseRedisUrl("redis://:p@ss%zz@h:6380/1").connection).toEqual({ host: "h", port: 6380, db: 1, tls: false, password: "p@ss%zz" });
    expect(parseRedisUrl("rediss://u:p%40ss@cache.example:6380/5").connection).toEqual({
      host: "cache.example",
      port: 6380,
      db: 5,
      tls: true,
      username: "u",
      password: "p@ss",
    });
    expect(parseRedisUrl("redis://:secret@127.0.0.1:1/?db=3").connection).toMatchObject({ password: "secret", db: 3 });
    expect(() => parseRedisUrl("redis://h/notanumber")).toThrow(CeleriacError);
    expect(() => parseRedisUrl("amqp://h")).toThrow(/redis:\/\//);
  });

  it("rejects unknown options and bad values", () => {
    expect(() => createRedisTransport({ visibilityTimeout: 5 } as never)).toThrow(/unknown option "visibilityTimeout"/);
    expect(() => createRedisTransport({ visibilityTimeoutMs: -1 })).toThrow(/positive/);
    expect(() => createRedisResultBackend({ expires: 1 } as never)).toThrow(/unknown option/);
    expect(() => redisTransportFromUrl("redis://localhost/0?visibility_timeot=1")).toThrow(/unknown parameter/);
    expect(() => redisResultBackendFromUrl("redis://localhost/0?result_expires=0")).toThrow(/positive/);
  });

  it("core resolves redis:// URLs to this package", async () => {
    const t = await transportFromUrl(`${server.url(DB)}?visibility_timeout=60`);
    const b = await resultBackendFromUrl(server.url(DB));
    expect(t.name).toBe("redis");
    expect(b.name).toBe("redis");
    await t.connect();
    await t.close();
    await b.close();
  });

  it("maps Celeriac priority (9 most urgent) to kombu's Redis priority (0 first) and back", () => {
    expect([0, 3, 5, 6, 9].map(toRedisPriority)).toEqual([9, 6, 4, 3, 0]);
    expect(toRedisPriority(undefined)).toBe(0);
    for (let p = 0; p <= 9; p++) expect(fromRedisPriority(toRedisPriority(p))).toBe(p);
  });
});

describe("kombu's layout", () => {
  it("writes the same keys and envelope shape as Python's kombu", async () => {
    const queue = `layout-${randomUUID().slice(0, 8)}`;
    // Python publishes one task at priority 5 into the same database.
    await runPython({ brokerUrl: server.url(DB), app: "redis_app" }, "send_many.py", [
      JSON.stringify([{ name: "pytasks.add", args: [2, 3], options: { queue, priority: 5 } }]),
    ]);
    const pyItem = await raw.rpop(`${queue}\x06\x163`);
    expect(pyItem).not.toBeNull();
    const t = transport();
    const id = randomUUID();
    // Celeriac priority 4 is kombu priority 5: the same list.
    await t.publish(queue, celeryJsonCodec.encode(createEnvelope({ task: "pytasks.add", id, args: [2, 3], properties: { priority: 4 } })));
    expect(await raw.smembers(`_kombu.binding.${queue}`)).toEqual([`${queue}\x06\x16\x06\x16${queue}`]);
    const tsItem = await raw.rpop(`${queue}\x06\x163`);
    expect(tsItem).not.toBeNull();
    const py = pyParse(pyItem!) as Record<string, Record<string, unknown>>;
    const ts = pyParse(tsItem!) as Record<string, Record<string, unknown>>;
    expect(Object.keys(ts)).toEqual(Object.keys(py));
    expect(Object.keys(ts["properties"]!)).toEqual(Object.keys(py["properties"]!));
    expect(ts["properties"]).toMatchObject({ delivery_info: { exchange: "", routing_key: queue }, body_encoding: "base64", correlation_id: id });
    expect(ts["properties"]!["priority"]).toBe(5);
    expect(py["properties"]!["priority"]).toBe(5);
    // Python's json.dumps separators, as kombu writes.
    expect(tsItem).toMatch(/^\{"body": "/);
    expect(Buffer.from(String(ts["body"]), "base64").toString()).toBe(Buffer.from(String(py["body"]), "base64").toString());
    expect(ts["properties"]!["delivery_tag"]).not.toBe(py["properties"]!["delivery_tag"]);
  }, 30_000);

  it("holds a received message in unacked / unacked_index as kombu does, and ack removes both", async () => {
    const queue = `unacked-${randomUUID().slice(0, 8)}`;
    const t = transport();
    await t.connect();
    await t.publish(queue, celeryJsonCodec.encode(createEnvelope({ task: "x", id: randomUUID() })));
    const item = await raw.lindex(queue, 0);
    const d = await takeOne(t, queue);
    const tag = (pyParse(item!) as { properties: { delivery_tag: string } }).properties.delivery_tag;
    expect(await raw.hget("unacked", tag)).toBe(`[${item}, "", "${queue}"]`);
    const score = Number(await raw.zscore("unacked_index", tag));
    expect(Math.abs(score - Date.now() / 1000)).toBeLessThan(5);
    await d.ack();
    expect(await raw.hexists("unacked", tag)).toBe(0);
    expect(await raw.zscore("unacked_index", tag)).toBeNull();
  });

  it("an ETA held longer than the visibility timeout is not run twice (kombu#337)", async () => {
    const queue = `eta-${randomUUID().slice(0, 8)}`;
    const vt = 600;
    const t = transport({ visibilityTimeoutMs: vt, restoreIntervalMs: 100 });
    const other = transport({ visibilityTimeoutMs: vt, restoreIntervalMs: 100 });
    await t.connect();
    await other.connect();
    const runs: string[] = [];
    const make = (tr: RedisTransport, who: string) => {
      const w = createWorker({ transport: tr, queues: [queue], concurrency: 2, etaHeartbeatMs: 150, visibilityExtensionMs: vt, silent: true });
      w.register("eta.task", async () => void runs.push(who));
      cleanups.push(() => w.stop());
      return w;
    };
    await make(t, "a").start();
    const id = randomUUID();
    await t.publish(queue, celeryJsonCodec.encode(createEnvelope({ task: "eta.task", id, headers: { eta: new Date(Date.now() + 4 * vt).toISOString() } })));
    await sleep(200);
    await make(other, "b").start(); // a second worker whose sweeper would restore a stale entry
    await sleep(6 * vt);
    expect(runs).toHaveLength(1);
  }, 20_000);

  it("an item that is no kombu envelope is refused with one log line and removed, not dropped unseen", async () => {
    const queue = `garbage-${randomUUID().slice(0, 8)}`;
    const t = transport();
    await t.connect();
    for (const item of ["not kombu", '{"a": 1}', "[1, 2, 3]"]) await raw.lpush(queue, item);
    const logs: LogRecord[] = [];
    const ran: string[] = [];
    const worker = createWorker({ transport: t, queues: [queue], concurrency: 2, logger: (r) => logs.push(r) });
    worker.register("rec", (ctx) => void ran.push(ctx.id));
    cleanups.push(() => worker.stop());
    await worker.start();
    await t.publish(queue, celeryJsonCodec.encode(createEnvelope({ task: "rec", id: randomUUID() })));
    const refused = () => logs.filter((l) => /Received invalid task message: .*not a kombu envelope/.test(l.msg));
    for (let waited = 0; (refused().length < 3 || ran.length < 1) && waited < 10_000; waited += 50) await sleep(50);
    await sleep(300);
    expect(refused(), JSON.stringify(logs.map((l) => l.msg))).toHaveLength(3);
    expect(ran).toHaveLength(1);
    expect(await raw.llen(queue)).toBe(0);
    expect(await raw.hlen("unacked")).toBe(0);
  }, 20_000);
});

describe("result backend", () => {
  const meta = (taskId: string, status: string, result: unknown): ResultMeta => ({
    status: status as ResultMeta["status"],
    result,
    traceback: null,
    children: [],
    date_done: "2026-12-01T02:01:09.291958",
    task_id: taskId,
  });

  it("SETEX celery-task-meta-<id> with a one-day TTL in Python's JSON, and never overwrites SUCCESS", async () => {
    const b = createRedisResultBackend({ url: server.url(DB) });
    cleanups.push(() => b.close());
    const id = randomUUID();
    await b.store(meta(id, "STARTED", null));
    await b.store(meta(id, "SUCCESS", 5));
    await b.store(meta(id, "FAILURE", { exc_type: "ValueError", exc_message: ["late"], exc_module: "builtins" }));
    expect(await raw.get(`celery-task-meta-${id}`)).toBe(
      `{"status": "SUCCESS", "result": 5, "traceback": null, "children": [], "date_done": "2026-12-01T02:01:09.291958", "task_id": "${id}"}`,
    );
    const ttl = await raw.ttl(`celery-task-meta-${id}`);
    expect(ttl).toBeGreaterThan(86_000);
    expect(ttl).toBeLessThanOrEqual(86_400);
    expect((await b.get(id))?.status).toBe("SUCCESS");
    await b.forget(id);
    expect(await b.get(id)).toBeNull();
  });

  it("waitFor sees a result stored before it subscribed and one published after", async () => {
    const b = createRedisResultBackend({ url: server.url(DB), expiresMs: 60_000 });
    cleanups.push(() => b.close());
    const early = randomUUID();
    await b.store(meta(early, "SUCCESS", "early"));
    expect((await b.waitFor(early, { timeoutMs: 2000 })).result).toBe("early");
    const late = randomUUID();
    const waiting = b.waitFor(late, { timeoutMs: 5000 });
    await sleep(100);
    // Another process (a plain client) stores it the way Celery does: SETEX + PUBLISH.
    const text = `{"status": "SUCCESS", "result": [1, 2], "traceback": null, "children": [], "date_done": null, "task_id": "${late}"}`;
    await raw.multi().setex(`celery-task-meta-${late}`, 60, text).publish(`celery-task-meta-${late}`, text).exec();
    expect((await waiting).result).toEqual([1, 2]);
    expect(await raw.ttl(`celery-task-meta-${early}`)).toBeLessThanOrEqual(60);
    await expect(b.waitFor(randomUUID(), { timeoutMs: 200 })).rejects.toMatchObject({ code: "timeout" });
  });

  it("saves and restores groups as celery-taskset-meta-<gid>", async () => {
    const b = createRedisResultBackend({ url: server.url(DB) });
    cleanups.push(() => b.close());
    const gid = randomUUID();
    await b.saveGroup(gid, ["a", "b"]);
    expect(await raw.get(`celery-taskset-meta-${gid}`)).toBe(`{"result": [["${gid}", null], [[["a", null], null], [["b", null], null]]]}`);
    expect(await b.restoreGroup(gid)).toEqual({ groupId: gid, taskIds: ["a", "b"] });
    await b.deleteGroup(gid);
    expect(await b.restoreGroup(gid)).toBeNull();
  });
});
