import { randomUUID } from "node:crypto";
import { connect } from "amqplib";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createAmqpTransport, decodeFieldTable, typeFieldValue } from "@celeriac/amqp";
import { createWorker } from "@celeriac/worker";
import { runPython } from "../../../test-support/python.js";
import { sharedRabbit, shutdownSharedRabbit, type RabbitNode } from "../../../test-support/rabbitmq.js";

let rabbit: RabbitNode;
beforeAll(async () => {
  rabbit = await sharedRabbit();
}, 120_000);
afterAll(async () => {
  await shutdownSharedRabbit();
}, 60_000);

/** One field-table entry: short key, tag, value bytes. */
function entry(key: string, tag: string, value: Buffer): Buffer {
  return Buffer.concat([Buffer.from([key.length]), Buffer.from(key), Buffer.from(tag), value]);
}
function int64(v: bigint): Buffer {
  const b = Buffer.alloc(8);
  b.writeBigInt64BE(v);
  return b;
}

describe("AMQP field tables with 64-bit integers", () => {
  it("decodes py-amqp's L and RabbitMQ's l as signed 64-bit: a number when exact, a bigint beyond 2**53", () => {
    const nested = entry("n", "L", int64(-(2n ** 63n)));
    const arr = Buffer.concat([Buffer.from("L"), int64(2n ** 40n), Buffer.from("I"), Buffer.from([0, 0, 0, 7])]);
    const table = Buffer.concat([
      entry("a", "L", int64(2n ** 31n)),
      entry("b", "L", int64(2n ** 63n - 1n)),
      entry("c", "l", int64(-(2n ** 40n))),
      entry("d", "U", Buffer.from([0xff, 0xfe])),
      entry("f", "F", Buffer.concat([Buffer.from([0, 0, 0, nested.length]), nested])),
      entry("g", "A", Buffer.concat([Buffer.from([0, 0, 0, arr.length]), arr])),
      entry("s", "S", Buffer.concat([Buffer.from([0, 0, 0, 2]), Buffer.from("hé").subarray(0, 2)])),
    ]);
    expect(decodeFieldTable(table)).toMatchObject({ a: 2 ** 31, b: 2n ** 63n - 1n, c: -(2 ** 40), d: -2, f: { n: -(2n ** 63n) }, g: [2 ** 40, 7] });
    expect(() => decodeFieldTable(entry("z", "Z", Buffer.alloc(4)))).toThrow(/unknown AMQP field type tag "Z"/);
  });

  it("sends a bigint header exactly when it fits a signed 64-bit long", () => {
    expect(typeFieldValue(2n ** 63n - 1n)).toEqual({ "!": "long", value: 2n ** 63n - 1n });
    expect(typeFieldValue(5n)).toEqual({ "!": "int", value: 5 });
  });

  it("runs every task Python sends with 64-bit headers, mixed with plain ones, and leaves the queue empty", async () => {
    const queue = `amqp-wide-${randomUUID().slice(0, 8)}`;
    const out = await runPython({ brokerUrl: rabbit.url, app: "amqp_app" }, "amqp_send_wide_headers.py", [queue, "wide.record", "100"]);
    const sent = JSON.parse(out.trim().split("\n").pop()!) as { plain: string[]; wide: Record<string, string> };
    expect(sent.plain).toHaveLength(100);
    expect(Object.keys(sent.wide)).toHaveLength(7);

    const transport = createAmqpTransport({ url: rabbit.url });
    await transport.connect();
    const runs = new Map<string, number>();
    const seen = new Map<string, unknown>();
    const worker = createWorker({ transport, queues: [queue], concurrency: 4, silent: true });
    worker.register(
      "wide.record",
      (ctx) => {
        runs.set(ctx.id, (runs.get(ctx.id) ?? 0) + 1);
        if (ctx.headers["x_wide"] !== undefined) seen.set(ctx.id, ctx.headers);
        return null;
      },
      { acksLate: true },
    );
    await worker.start();
    const total = sent.plain.length + Object.keys(sent.wide).length;
    const deadline = Date.now() + 30_000;
    while (runs.size < total && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    await worker.stop();
    await transport.close();

    expect(runs.size).toBe(total);
    expect([...runs.values()].every((n) => n === 1)).toBe(true);
    for (const [id, value] of Object.entries(sent.wide)) {
      const h = seen.get(id) as { x_wide: number | bigint; x_nested: { n: number | bigint; l: unknown[] } };
      const exact = BigInt(value);
      const expected = Number.isSafeInteger(Number(exact)) && BigInt(Number(exact)) === exact ? Number(exact) : exact;
      expect(h.x_wide).toBe(expected);
      expect(h.x_nested).toEqual({ n: expected, l: [expected, 1] });
    }
    const conn = await connect(rabbit.url);
    const ch = await conn.createChannel();
    expect((await ch.checkQueue(queue)).messageCount).toBe(0);
    await conn.close();
  }, 90_000);
});

describe("basic properties read by the transport's own content-header decoder", () => {
  it("gives every property amqplib itself gives, for a message with all of them, with only some, and with none", async () => {
    const { readHeadersExactly } = await import("../src/field-table.js");
    const url = rabbit.url.replace(/\/\/?$/, "/%2F");
    const sender = await connect(url);
    const plain = await connect(url);
    const ours = await connect(url);
    readHeadersExactly((ours as unknown as { connection: unknown }).connection);
    try {
      const ch = await sender.createConfirmChannel();
      const queue = `props-${randomUUID().slice(0, 8)}`;
      await ch.assertQueue(queue, { durable: false, maxPriority: 9 });
      const all = {
        contentType: "application/json",
        contentEncoding: "utf-8",
        headers: { id: "x", retries: 3, nested: { a: [1, "b", null] }, flag: true },
        deliveryMode: 2,
        priority: 7,
        correlationId: "corr-é",
        replyTo: "reply.queue",
        expiration: "60000",
        messageId: "m-1",
        timestamp: 1_764_900_000,
        type: "celery.task",
        userId: "guest",
        appId: "celeriac-test",
      };
      const sent = [all, { correlationId: "only", priority: 1 }, { headers: { only: "headers" } }, {}];
      for (const options of sent) ch.publish("", queue, Buffer.from("{}"), options);
      await ch.waitForConfirms();
      const read = async (conn: typeof plain) => {
        const c = await conn.createChannel();
        const got: Record<string, unknown>[] = [];
        for (let i = 0; i < sent.length; i++) {
          const m = await c.get(queue, { noAck: false });
          if (!m) throw new Error("message missing");
          got.push({ ...m.properties });
          c.nack(m, false, true);
        }
        await c.close();
        return got;
      };
      const fromPlain = await read(plain);
      const fromOurs = await read(ours);
      expect(fromOurs).toEqual(fromPlain);
      expect(fromOurs[0]).toMatchObject({ ...all, headers: all.headers });
    } finally {
      await Promise.all([sender.close(), plain.close(), ours.close()]);
    }
  });
});
