import { randomUUID } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createClient, createMemoryResultBackend } from "@celeriac/core";
import type { WireMessage } from "@celeriac/core/transport";
import { createAmqpTransport } from "@celeriac/amqp";
import { createWorker } from "@celeriac/worker";
import { startRabbit, type RabbitNode } from "../../../test-support/rabbitmq.js";

// A node whose consumer_timeout (1 s) is far below the ETAs used here, to show what happens when
// RabbitMQ closes a channel that holds an unacked message too long.
let rabbit: RabbitNode;
beforeAll(async () => {
  rabbit = await startRabbit({ consumerTimeoutMs: 1000 });
}, 120_000);
afterAll(() => rabbit?.shutdown(), 60_000);

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe("RabbitMQ consumer_timeout", () => {
  it("the consumer re-opens its channel, and the held delivery stays valid: its ack settles the redelivered copy", async () => {
    const events: string[] = [];
    const t = createAmqpTransport({ url: rabbit.url, onEvent: (e) => events.push(e) });
    const queue = `ct-${randomUUID().slice(0, 8)}`;
    const id = randomUUID();
    const message: WireMessage = {
      body: new TextEncoder().encode("[[], {}, {}]"),
      contentType: "application/json",
      contentEncoding: "utf-8",
      headers: { lang: "py", task: "t", id },
      properties: { correlationId: id },
    };
    await t.publish(queue, message);
    const c = t.consume([queue], { prefetch: 1 });
    const it = c[Symbol.asyncIterator]();
    const d = (await it.next()).value!;
    const deadline = Date.now() + 90_000;
    while (!events.includes("consumer-recovered")) {
      if (Date.now() > deadline) throw new Error(`channel never timed out: ${events.join(",")}`);
      await sleep(100);
    }
    // The redelivered copy is not handed out a second time ...
    const second = await Promise.race([it.next(), sleep(1500).then(() => null)]);
    expect(second).toBeNull();
    // ... and the ack of the delivery we held reaches the broker.
    await d.ack();
    await sleep(300);
    await c.stop();
    expect(await t.purge(queue)).toBe(0);
    await t.close();
  }, 120_000);

  it("a worker runs an ETA task once even though the channel holding it timed out", async () => {
    const queue = `ct-eta-${randomUUID().slice(0, 8)}`;
    const events: string[] = [];
    const wt = createAmqpTransport({ url: rabbit.url, onEvent: (e) => events.push(e) });
    await wt.connect();
    const results = createMemoryResultBackend();
    let runs = 0;
    const worker = createWorker({ transport: wt, resultBackend: results, queues: [queue], silent: true });
    worker.register("eta.task", () => ++runs);
    await worker.start();
    const ct = createAmqpTransport({ url: rabbit.url });
    const client = createClient({ transport: ct, resultBackend: results, defaultQueue: queue });
    const r = await client.sendTask("eta.task", { countdownMs: 8000 });
    expect(await r.get({ timeoutMs: 90_000 })).toBe(1);
    await sleep(1500);
    expect(runs).toBe(1);
    expect(events).toContain("consumer-recovered");
    await worker.stop();
    await wt.close();
    await ct.close();
  }, 120_000);
});
