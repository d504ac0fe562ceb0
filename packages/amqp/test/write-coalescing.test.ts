import { randomUUID } from "node:crypto";
import { Socket } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { celeryJsonCodec, createEnvelope } from "@celeriac/core";
import { createAmqpTransport } from "@celeriac/amqp";
import { sharedRabbit, shutdownSharedRabbit, type RabbitNode } from "../../../test-support/rabbitmq.js";

// amqplib writes each queued publish to the socket with its own write call; the transport corks
// the socket for each pass of amqplib's writer (coalesceWrites in connection.ts), so a burst goes
// out in a few writev calls. This pins that patch of amqplib's internals: if an amqplib upgrade
// moves them, either connecting throws or the count below goes back to one write per publish.

let rabbit: RabbitNode;
beforeAll(async () => {
  rabbit = await sharedRabbit();
}, 120_000);
afterAll(() => shutdownSharedRabbit(), 60_000);

type WriteFn = (this: Socket, ...args: unknown[]) => unknown;

/** Counts the socket-level writes (`_write` one chunk, `_writev` many) to `port` while `run` runs. */
async function countWrites(port: number, run: () => Promise<void>): Promise<{ write: number; writev: number; chunks: number }> {
  const proto = Socket.prototype as unknown as Record<"_write" | "_writev", WriteFn>;
  const write = proto._write;
  const writev = proto._writev;
  const counts = { write: 0, writev: 0, chunks: 0 };
  proto._write = function (this: Socket, ...args: unknown[]) {
    if (this.remotePort === port) {
      counts.write++;
      counts.chunks++;
    }
    return write.apply(this, args);
  };
  proto._writev = function (this: Socket, ...args: unknown[]) {
    if (this.remotePort === port) {
      counts.writev++;
      counts.chunks += (args[0] as unknown[]).length;
    }
    return writev.apply(this, args);
  };
  try {
    await run();
  } finally {
    proto._write = write;
    proto._writev = writev;
  }
  return counts;
}

describe("socket writes on a real RabbitMQ", () => {
  it("a burst of 500 confirmed publishes goes out in far fewer socket writes than publishes, and every message arrives", async () => {
    const queue = `coalesce-writes-${randomUUID().slice(0, 8)}`;
    const transport = createAmqpTransport({ url: rabbit.url });
    await transport.connect();
    const message = (id: string) => celeryJsonCodec.encode(createEnvelope({ task: "t.noop", id, args: [1, "x".repeat(200)] }));
    // Declares the queue and opens the publish channel outside the count.
    await transport.publish(queue, message(randomUUID()));
    const ids = Array.from({ length: 500 }, () => randomUUID());
    const counts = await countWrites(rabbit.port, async () => {
      await Promise.all(ids.map((id) => transport.publish(queue, message(id))));
    });
    // Every publish's frames were handed to the socket (one chunk each), in few system calls.
    expect(counts.chunks).toBeGreaterThanOrEqual(500);
    expect(counts.write + counts.writev).toBeLessThan(100);
    expect(counts.writev).toBeGreaterThan(0);

    const seen = new Set<string>();
    const consumer = transport.consume([queue], { prefetch: 200 });
    for await (const d of consumer) {
      seen.add(String(d.message.headers["id"]));
      await d.ack();
      if (seen.size === ids.length + 1) break;
    }
    await consumer.stop();
    await transport.close();
    for (const id of ids) expect(seen.has(id)).toBe(true);
  }, 60_000);
});
