import { connect as amqpConnect } from "amqplib";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createAmqpTransport } from "@celeriac/amqp";
import { describeExchangeConformance } from "@celeriac/conformance";
import { sharedRabbit, shutdownSharedRabbit, type RabbitNode } from "../../../test-support/rabbitmq.js";

let rabbit: RabbitNode;
beforeAll(async () => {
  rabbit = await sharedRabbit();
}, 120_000);
afterAll(() => shutdownSharedRabbit(), 60_000);

describeExchangeConformance("amqp (RabbitMQ)", async () => ({ transport: createAmqpTransport({ url: rabbit.url }) }));

describe("amqp exchanges: declarations Celery shares", () => {
  it("declares celeryev and the pidbox exchanges exactly as kombu does, so Celery's own declarations are accepted", async () => {
    const t = createAmqpTransport({ url: rabbit.url });
    try {
      await t.connect();
      const message = {
        body: new TextEncoder().encode("{}"),
        contentType: "application/json",
        contentEncoding: "utf-8",
        headers: {},
        properties: { deliveryMode: 1 },
      };
      await t.exchanges.publishToExchange({ name: "celeryev", type: "topic", durable: true, autoDelete: false }, "worker.heartbeat", message);
      await t.exchanges.publishToExchange({ name: "celery.pidbox", type: "fanout", durable: false, autoDelete: false }, "", message);
      await t.exchanges.publishToExchange({ name: "reply.celery.pidbox", type: "direct", durable: false, autoDelete: false }, "x", message);
      // What kombu would declare (passive: false), on a connection of its own: the same flags are accepted.
      const conn = await amqpConnect(rabbit.url);
      const ch = await conn.createChannel();
      await ch.assertExchange("celeryev", "topic", { durable: true, autoDelete: false });
      await ch.assertExchange("celery.pidbox", "fanout", { durable: false, autoDelete: false });
      await ch.assertExchange("reply.celery.pidbox", "direct", { durable: false, autoDelete: false });
      await ch.close();
      await conn.close();
    } finally {
      await t.close();
    }
  });

  it("a declaration that differs from the existing exchange fails with a clear error", async () => {
    const t = createAmqpTransport({ url: rabbit.url });
    try {
      await t.connect();
      const message = { body: new Uint8Array(), contentType: "application/json", contentEncoding: "utf-8", headers: {}, properties: {} };
      await t.exchanges.publishToExchange({ name: "celeriac.mismatch", type: "topic" }, "a", message);
      await expect(t.exchanges.publishToExchange({ name: "celeriac.mismatch", type: "fanout" }, "a", message)).rejects.toMatchObject({
        code: "invalid_argument",
        message: expect.stringContaining("already exists with other settings"),
      });
      await expect(
        t.exchanges.subscribe({ name: "celeriac.mismatch", type: "topic" }, { bindingKey: "#", extra: 1 } as never, () => undefined),
      ).rejects.toMatchObject({
        code: "invalid_argument",
      });
    } finally {
      await t.close();
    }
  });

  it("a subscription comes back after the connection is lost", async () => {
    const pub = createAmqpTransport({ url: rabbit.url });
    const sub = createAmqpTransport({ url: rabbit.url, reconnectInitialDelayMs: 50 });
    try {
      await pub.connect();
      await sub.connect();
      const spec = { name: "celeriac.reconnect", type: "fanout" as const, durable: false };
      const got: string[] = [];
      const s = await sub.exchanges.subscribe(spec, { bindingKey: "#" }, (d) => got.push(new TextDecoder().decode(d.message.body)));
      const msg = (text: string) => ({
        body: new TextEncoder().encode(text),
        contentType: "text/plain",
        contentEncoding: "utf-8",
        headers: {},
        properties: {},
      });
      await pub.exchanges.publishToExchange(spec, "", msg("before"));
      await waitUntil(() => got.length === 1);
      // The broker drops every connection (as on a node restart or a failover).
      await rabbit.ctl("close_all_connections", "exchange subscription test");
      const deadline = Date.now() + 20_000;
      while (!got.includes("after") && Date.now() < deadline) {
        await pub.exchanges.publishToExchange(spec, "", msg("after"));
        await new Promise((r) => setTimeout(r, 200));
      }
      expect(got).toContain("after");
      await s.close();
    } finally {
      await pub.close();
      await sub.close();
    }
  }, 60_000);
});

async function waitUntil(cond: () => boolean, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error("condition not met in time");
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe("amqp exchanges: an exchange deleted behind our back", () => {
  it("is declared again on the next publish", async () => {
    const t = createAmqpTransport({ url: rabbit.url });
    const sub = createAmqpTransport({ url: rabbit.url });
    try {
      await t.connect();
      await sub.connect();
      const spec = { name: "celeriac.deleted", type: "topic" as const };
      const message = { body: new TextEncoder().encode("x"), contentType: "text/plain", contentEncoding: "utf-8", headers: {}, properties: {} };
      await t.exchanges.publishToExchange(spec, "a", message);
      // Deleted by someone else, on a connection of their own.
      const conn = await amqpConnect(rabbit.url);
      const ch = await conn.createChannel();
      await ch.deleteExchange("celeriac.deleted");
      await ch.close();
      await conn.close();
      await t.exchanges.publishToExchange(spec, "a", message);
      const got: string[] = [];
      const s = await sub.exchanges.subscribe(spec, { bindingKey: "#" }, (d) => got.push(d.routingKey));
      await t.exchanges.publishToExchange(spec, "b", message);
      await waitUntil(() => got.length === 1);
      expect(got).toEqual(["b"]);
      await s.close();
    } finally {
      await t.close();
      await sub.close();
    }
  });
});
