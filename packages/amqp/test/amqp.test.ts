import { randomUUID } from "node:crypto";
import { connect } from "amqplib";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CeleriacError, createClient, resultBackendFromUrl, transportFromUrl } from "@celeriac/core";
import type { WireMessage } from "@celeriac/core/transport";
import { amqpTransportFromUrl, createAmqpTransport, createRpcResultBackend, rpcResultBackendFromUrl, typeFieldTable, typeFieldValue } from "@celeriac/amqp";
import { createWorker } from "@celeriac/worker";
import { sharedRabbit, shutdownSharedRabbit, type RabbitNode } from "../../../test-support/rabbitmq.js";

let rabbit: RabbitNode;
beforeAll(async () => {
  rabbit = await sharedRabbit();
}, 120_000);
afterAll(() => shutdownSharedRabbit(), 60_000);

const msg = (headers: Record<string, unknown> = {}): WireMessage => ({
  body: new TextEncoder().encode("[[], {}, {}]"),
  contentType: "application/json",
  contentEncoding: "utf-8",
  headers: { lang: "py", task: "t", id: randomUUID(), ...headers },
  properties: { deliveryMode: 2 },
});

describe("options and capabilities", () => {
  it("rejects unknown option keys", () => {
    expect(() => createAmqpTransport({ url: "amqp://x", prefetch: 3 } as never)).toThrow(/unknown option "prefetch"/);
    expect(() => createRpcResultBackend({ exchange: "x" } as never)).toThrow(/unknown option "exchange"/);
  });

  it("validates declare and maxPriority", () => {
    expect(() => createAmqpTransport({ declare: "auto" as never })).toThrow(CeleriacError);
    expect(() => createAmqpTransport({ maxPriority: 0 })).toThrow(/maxPriority/);
  });

  it("declares capabilities honestly", () => {
    const plain = createAmqpTransport();
    expect(plain.capabilities).toMatchObject({ priority: "none", delayedDelivery: false, visibilityExtension: false, deadLetter: false });
    expect(createAmqpTransport({ maxPriority: 10, deadLetterExchange: "dlx" }).capabilities).toMatchObject({ priority: "native", deadLetter: true });
    expect(createAmqpTransport({ queueArguments: { "x-max-priority": 5 } }).capabilities.priority).toBe("native");
  });

  it("refuses publish with delayMs rather than emulating it", async () => {
    const t = createAmqpTransport({ url: rabbit.url });
    await expect(t.publish("q", msg(), { delayMs: 10 })).rejects.toMatchObject({ code: "unsupported" });
    await t.close();
  });
});

describe("integer headers for py-amqp", () => {
  it("types every integer as signed 32-bit, larger ones as 64-bit, floats as doubles", () => {
    expect(typeFieldValue(200)).toEqual({ "!": "int", value: 200 });
    expect(typeFieldValue(3)).toEqual({ "!": "int", value: 3 });
    expect(typeFieldValue(-70000)).toEqual({ "!": "int", value: -70000 });
    expect(typeFieldValue(2 ** 40)).toEqual({ "!": "long", value: 2 ** 40 });
    expect(typeFieldValue(1.5)).toEqual({ "!": "double", value: 1.5 });
    expect(typeFieldTable({ timelimit: [300, 60], n: null, s: "x", o: { a: true } })).toEqual({
      timelimit: [
        { "!": "int", value: 300 },
        { "!": "int", value: 60 },
      ],
      n: null,
      s: "x",
      o: { a: true },
    });
  });

  it("round-trips typed integer headers through RabbitMQ as numbers", async () => {
    const t = createAmqpTransport({ url: rabbit.url });
    const queue = `hdr-${randomUUID().slice(0, 8)}`;
    await t.publish(queue, msg({ retries: 200, timelimit: [300, 60], small: 1 }));
    const c = t.consume([queue], { prefetch: 1 });
    const it = c[Symbol.asyncIterator]();
    const d = (await it.next()).value!;
    expect(d.message.headers).toMatchObject({ retries: 200, timelimit: [300, 60], small: 1 });
    await d.ack();
    await c.stop();
    await t.close();
  });
});

describe("declarations", () => {
  it("declares like Celery: durable queue, direct exchange of the same name bound by the queue name", async () => {
    const t = createAmqpTransport({ url: rabbit.url });
    const queue = `decl-${randomUUID().slice(0, 8)}`;
    await t.publish(queue, msg());
    const conn = await connect(rabbit.url.replace(/\/\/$/, "/%2F"));
    const ch = await conn.createChannel();
    // Passive checks: they fail (and close the channel) if the objects are missing.
    expect((await ch.checkQueue(queue)).messageCount).toBe(1);
    await ch.checkExchange(queue);
    // Publishing to the exchange with the queue name as routing key reaches the queue: bound.
    ch.publish(queue, queue, Buffer.from("x"));
    await new Promise((r) => setTimeout(r, 200));
    expect((await ch.checkQueue(queue)).messageCount).toBe(2);
    const list = await rabbit.ctl("list_queues", "name", "durable", "--quiet", "--no-table-headers");
    expect(list).toMatch(new RegExp(`${queue}\\s+true`));
    await conn.close();
    await t.close();
  });

  it("a passive transport never creates a queue and says so", async () => {
    const t = createAmqpTransport({ url: rabbit.url, declare: "passive" });
    const err = await t.publish(`missing-${randomUUID().slice(0, 8)}`, msg()).catch((e: unknown) => e);
    expect(String(err)).toMatch(/does not exist \(declare: "passive", --passive-queues, never creates queues\)/);
    await t.close();
  });

  it("declares quorum queues when asked", async () => {
    const t = createAmqpTransport({ url: rabbit.url, queueArguments: { "x-queue-type": "quorum" } });
    const queue = `quorum-${randomUUID().slice(0, 8)}`;
    await t.publish(queue, msg());
    const list = await rabbit.ctl("list_queues", "name", "type", "--quiet", "--no-table-headers");
    expect(list).toMatch(new RegExp(`${queue}\\s+quorum`));
    const c = t.consume([queue], { prefetch: 1 });
    const d = (await c[Symbol.asyncIterator]().next()).value!;
    await d.nack();
    const again = (await c[Symbol.asyncIterator]().next()).value!;
    // Quorum queues count deliveries.
    expect(again.deliveryCount).toBe(2);
    await again.ack();
    await c.stop();
    await t.close();
  });
});

describe("URLs, outages and rpc://", () => {
  it("core resolves amqp:// and rpc:// to this package", async () => {
    const t = await transportFromUrl(rabbit.url);
    expect(t.name).toBe("amqp");
    const b = await resultBackendFromUrl(rabbit.url.replace(/^amqp:/, "rpc:"));
    expect(b.name).toBe("rpc");
    await b.close();
    await t.close();
    expect(() => amqpTransportFromUrl("redis://x")).toThrow(CeleriacError);
    expect(rpcResultBackendFromUrl("rpc://").name).toBe("rpc");
  });

  it("a publish with no broker fails with a clear connection error after publishTimeoutMs", async () => {
    const t = createAmqpTransport({ url: "amqp://guest:guest@127.0.0.1:1//", publishTimeoutMs: 800 });
    const started = Date.now();
    const err = await t.publish("q", msg()).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CeleriacError);
    expect((err as CeleriacError).code).toBe("connection");
    expect(String(err)).toMatch(/no connection to the AMQP broker within 800 ms/);
    expect(Date.now() - started).toBeGreaterThanOrEqual(700);
    await t.close();
  });

  it("connect() fails fast on a wrong address", async () => {
    const t = createAmqpTransport({ url: "amqp://guest:secret@127.0.0.1:1//" });
    const err = await t.connect().catch((e: unknown) => e);
    expect((err as CeleriacError).code).toBe("connection");
    expect(String(err)).not.toContain("secret");
    await t.close();
  });

  it("rpc://: results reach the client that sent the task, matched by correlation id", async () => {
    const queue = `rpc-${randomUUID().slice(0, 8)}`;
    const wt = createAmqpTransport({ url: rabbit.url });
    const wb = createRpcResultBackend({ url: rabbit.url });
    await wt.connect();
    const worker = createWorker({ transport: wt, resultBackend: wb, queues: [queue], silent: true });
    worker.register("double", (_ctx, n) => Number(n) * 2);
    await worker.start();
    const ct = createAmqpTransport({ url: rabbit.url });
    const cb = createRpcResultBackend({ url: rabbit.url });
    const client = createClient({ transport: ct, resultBackend: cb, defaultQueue: queue });
    const results = await Promise.all([1, 2, 3, 4, 5].map((n) => client.sendTask("double", { args: [n] })));
    expect(await Promise.all(results.map((r) => r.get({ timeoutMs: 10_000 })))).toEqual([2, 4, 6, 8, 10]);
    // The reply queue is this client's own: exclusive and auto-delete.
    const list = await rabbit.ctl("list_queues", "name", "exclusive", "auto_delete", "durable", "--quiet", "--no-table-headers");
    expect(list).toMatch(new RegExp(`${cb.replyQueue}\\s+true\\s+true\\s+false`));
    await worker.stop();
    for (const c of [wt, ct]) await c.close();
    for (const b of [wb, cb]) await b.close();
  });
});
