import { randomUUID } from "node:crypto";
import { connect } from "amqplib";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { celeryJsonCodec, createEnvelope } from "@celeriac/core";
import type { Delivery } from "@celeriac/core/transport";
import { createAmqpTransport } from "@celeriac/amqp";
import { seededRandom } from "../../../test-support/prng.js";
import { sharedRabbit, shutdownSharedRabbit, type RabbitNode } from "../../../test-support/rabbitmq.js";

// Acks are coalesced per tick into `basic.ack multiple` (see flushAcks in transport.ts). A
// multiple ack that covered a delivery still running, or acked a tag twice, would lose a message
// or make RabbitMQ close the channel (PRECONDITION_FAILED, unknown delivery tag): these tests
// settle out of order, mix in nacks and drop the connection before a batch is written.

let rabbit: RabbitNode;
beforeAll(async () => {
  rabbit = await sharedRabbit();
}, 120_000);
afterAll(() => shutdownSharedRabbit(), 60_000);

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function idOf(d: Delivery): string {
  return String(d.message.headers["id"]);
}

async function publish(url: string, queue: string, n: number): Promise<string[]> {
  const t = createAmqpTransport({ url });
  await t.connect();
  const ids = Array.from({ length: n }, () => randomUUID());
  await Promise.all(ids.map((id) => t.publish(queue, celeryJsonCodec.encode(createEnvelope({ task: "t.noop", id, args: [] })))));
  await t.close();
  return ids;
}

/** The messages of `queue` (ready + unacked) and the unacked ones among them, as the broker counts them. */
async function brokerCount(queue: string): Promise<{ messages: number; unacked: number }> {
  const out = await rabbit.ctl("list_queues", "-q", "--no-table-headers", "name", "messages", "messages_unacknowledged");
  const line = out.split("\n").find((l) => l.split("\t")[0] === queue);
  if (!line) throw new Error(`queue ${queue} not listed:\n${out}`);
  const [, messages, unacked] = line.split("\t");
  return { messages: Number(messages), unacked: Number(unacked) };
}

async function waitFor(cond: () => boolean | Promise<boolean>, timeoutMs: number, what: () => string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting: ${what()}`);
    await sleep(20);
  }
}

describe("coalesced acks on a real RabbitMQ", () => {
  it("settles 400 late acks in random order with nacks in between: each message acked exactly once, nacked ones redelivered once", async () => {
    const queue = `coalesce-${randomUUID().slice(0, 8)}`;
    const ids = await publish(rabbit.url, queue, 400);
    const events: string[] = [];
    const transport = createAmqpTransport({ url: rabbit.url, onEvent: (e) => events.push(e) });
    await transport.connect();
    const consumer = transport.consume([queue], { prefetch: 64 });
    const random = seededRandom(14);
    const acked = new Map<string, number>();
    const nacked = new Set<string>();
    const seen = new Map<string, number>();
    const settles: Promise<void>[] = [];
    let redeliveredSeen = 0;
    const it = consumer[Symbol.asyncIterator]();
    while (acked.size < ids.length) {
      const next = await it.next();
      if (next.done) throw new Error("consumer ended");
      const d = next.value;
      const id = idOf(d);
      seen.set(id, (seen.get(id) ?? 0) + 1);
      if (d.redelivered) redeliveredSeen++;
      // Each delivery settles after a random short wait, so settles land out of delivery-tag
      // order and several fall into each tick's batch; about one in eight first deliveries is
      // nacked back to the queue instead.
      const nack = !d.redelivered && !nacked.has(id) && random() < 0.125;
      if (nack) nacked.add(id);
      else acked.set(id, (acked.get(id) ?? 0) + 1);
      const wait = Math.floor(random() * 4);
      settles.push(
        (async () => {
          if (wait > 0) await sleep(wait);
          if (nack) await d.nack({ requeue: true });
          else await d.ack();
        })(),
      );
    }
    await Promise.all(settles);
    expect(events.filter((e) => e === "channel-error")).toEqual([]);
    expect(nacked.size).toBeGreaterThan(20);
    for (const id of ids) {
      expect(acked.get(id)).toBe(1);
      expect(seen.get(id)).toBe(nacked.has(id) ? 2 : 1);
    }
    expect(redeliveredSeen).toBe(nacked.size);
    // Every ack reached the broker while the consumer still runs: nothing unacked, nothing left.
    await waitFor(
      async () => {
        const c = await brokerCount(queue);
        return c.messages === 0 && c.unacked === 0;
      },
      10_000,
      () => `queue ${queue} not empty`,
    );
    await consumer.stop();
    await transport.close();
    expect(await brokerCount(queue)).toEqual({ messages: 0, unacked: 0 });
  }, 120_000);

  it("a connection dropped before a batch of acks is written: the acks apply to the redelivered messages, none is handed out twice, unacked ones come back", async () => {
    const queue = `coalesce-drop-${randomUUID().slice(0, 8)}`;
    const ids = await publish(rabbit.url, queue, 60);
    const transport = createAmqpTransport({ url: rabbit.url });
    await transport.connect();
    const consumer = transport.consume([queue], { prefetch: 60 });
    const it = consumer[Symbol.asyncIterator]();
    const held: Delivery[] = [];
    while (held.length < 60) {
      const next = await it.next();
      if (next.done) throw new Error("consumer ended");
      held.push(next.value);
    }
    // Ack 40 in one tick and cut the socket in that same tick, before the batch is flushed:
    // those acks can never be written on this channel. The other 20 stay unsettled.
    const current = (transport as unknown as { connection: { current: { connection: { stream: { destroy(err?: Error): void } } } | null } }).connection.current;
    expect(current).not.toBeNull();
    const acks = held.slice(0, 40).map((d) => d.ack());
    current!.connection.stream.destroy(new Error("connection dropped by the test"));
    await Promise.all(acks);

    // The broker requeued all 60; the consumer reconnects, applies the 40 remembered acks to
    // their redeliveries and re-attaches the 20 to the deliveries still held here.
    let last: unknown = null;
    await waitFor(
      async () => {
        const c = await brokerCount(queue).catch(() => null);
        last = c;
        return c !== null && c.messages === 20 && c.unacked === 20;
      },
      30_000,
      () => `the 40 acks were not applied after the reconnect: ${JSON.stringify(last)}`,
    );
    for (const d of held.slice(40)) await d.ack();
    await waitFor(
      async () => {
        const c = await brokerCount(queue);
        return c.messages === 0 && c.unacked === 0;
      },
      10_000,
      () => "the 20 re-attached deliveries were not acked",
    );
    // Nothing was handed out a second time.
    const extra = await Promise.race([it.next().then(() => "delivered"), sleep(300).then(() => "none")]);
    expect(extra).toBe("none");
    expect(new Set(held.map(idOf))).toEqual(new Set(ids));
    await consumer.stop();
    await transport.close();
    // A raw check from outside: the queue is empty after the consumer closed (nothing was only
    // believed acked).
    const conn = await connect(rabbit.url.replace(/\/\/?$/, "/%2F"));
    const ch = await conn.createChannel();
    expect((await ch.checkQueue(queue)).messageCount).toBe(0);
    await conn.close();
  }, 120_000);
});
