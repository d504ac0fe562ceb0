import { describe, expect, it } from "vitest";
import { createDelivery } from "../src/delivery.js";
import { DeliveryQueue } from "../src/delivery-queue.js";
import type { Delivery } from "../src/transport.js";

/** A queue over plain numbers, as a broker-push transport fills it; acks are recorded. */
function numbers(prefetch: number) {
  const acked: number[] = [];
  const givenBack: number[] = [];
  const q = new DeliveryQueue<number>({
    queues: ["q"],
    consume: { prefetch },
    toDelivery: (n, release) =>
      createDelivery({
        transport: "test",
        message: { body: new Uint8Array(), contentType: "application/json", contentEncoding: "utf-8", headers: { n }, properties: {} },
        queue: "q",
        redelivered: false,
        deliveryCount: null,
        onSettled: release,
        ops: { ack: () => void acked.push(n), nack: () => undefined, extend: () => undefined, reject: () => undefined },
      }),
    giveBack: (items) => void givenBack.push(...items),
  });
  return { q, acked, givenBack };
}
const nOf = (d: Delivery | null) => d?.message.headers["n"];

describe("DeliveryQueue.takeBuffered", () => {
  it("hands out buffered items at once, in order, never more than the prefetch window", async () => {
    const { q, acked } = numbers(3);
    q.push(1, 2, 3, 4, 5);
    const held = [q.takeBuffered(), q.takeBuffered(), q.takeBuffered()];
    expect(held.map(nOf)).toEqual([1, 2, 3]);
    expect(q.takeBuffered()).toBeNull();
    expect(q.handedOut).toBe(3);
    expect(q.buffered).toBe(2);
    await held[0]!.ack();
    expect(acked).toEqual([1]);
    expect(nOf(q.takeBuffered())).toBe(4);
    expect(q.takeBuffered()).toBeNull();
    await q.stop();
  });

  it("shares the buffer with the iteration: each item is handed out once, by one of them", async () => {
    const { q } = numbers(10);
    q.push(1, 2);
    const it = q[Symbol.asyncIterator]();
    expect(nOf(q.takeBuffered())).toBe(1);
    expect(nOf((await it.next()).value as Delivery)).toBe(2);
    expect(q.takeBuffered()).toBeNull();
    const waiting = it.next();
    q.push(3);
    expect(nOf((await waiting).value as Delivery)).toBe(3);
    await q.stop();
  });

  it("hands out nothing once stopped, and the buffer goes back to the broker", async () => {
    const { q, givenBack } = numbers(2);
    q.push(1, 2, 3);
    await q.stop();
    expect(q.takeBuffered()).toBeNull();
    expect(givenBack).toEqual([1, 2, 3]);
  });
});
