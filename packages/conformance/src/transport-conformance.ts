import { randomUUID } from "node:crypto";
import { afterEach, describe, expect, it } from "vitest";
import { CeleriacError, type Transport } from "@celeriac/core";
import type { Consumer, Delivery, WireMessage } from "@celeriac/core/transport";

/**
 * One transport-agnostic suite, run by every transport package against its real broker. Tests
 * for capabilities a transport does not declare are reported as skipped (decided at collection time
 * from the capabilities of a throwaway transport), so a report shows exactly what was checked.
 *
 * Readings of the contract the suite pins down, since transports must agree on them:
 * - `consumer.stop()` returns messages prefetched but not yet handed out at once; a delivery
 *   already handed out stays settleable (a draining worker acks what it finished), and goes
 *   back at the visibility timeout or when the transport closes.
 * - The visibility timeout gives a message back without settling its delivery: a late ack is
 *   accepted, never `already_settled`.
 * - `purge` counts waiting messages (visible or delayed), not unsettled deliveries.
 */
export interface TransportConformanceOptions {
  /**
   * The visibility timeout the factory configured (keep it short, 300-1000 ms). Enables the
   * tests that wait for an unsettled message to come back, and the `extend` test.
   */
  visibilityTimeoutMs?: number;
  /** How long to wait for a message that should arrive. Default 5000 ms. */
  receiveTimeoutMs?: number;
  /** How long to watch for a message that should not arrive. Default 300 ms. */
  quietMs?: number;
}

export type TransportFactory = () => Promise<{ transport: Transport; cleanup?: () => Promise<void> }>;

const encoder = new TextEncoder();

/** Pulls deliveries with a deadline without losing one to a timed-out `next()`. */
class Receiver {
  private readonly it: AsyncIterator<Delivery>;
  private pending: Promise<IteratorResult<Delivery>> | undefined;

  constructor(readonly consumer: Consumer) {
    this.it = consumer[Symbol.asyncIterator]();
  }

  async next(timeoutMs: number): Promise<Delivery | null> {
    this.pending ??= this.it.next();
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<"timeout">((r) => (timer = setTimeout(() => r("timeout"), timeoutMs)));
    const r = await Promise.race([this.pending, timeout]);
    clearTimeout(timer);
    if (r === "timeout") return null;
    this.pending = undefined;
    return r.done ? null : r.value;
  }

  async take(n: number, timeoutMs: number): Promise<Delivery[]> {
    const out: Delivery[] = [];
    const deadline = Date.now() + timeoutMs;
    while (out.length < n) {
      const d = await this.next(Math.max(1, deadline - Date.now()));
      if (!d) throw new Error(`received ${out.length} of ${n} messages within ${timeoutMs} ms`);
      out.push(d);
    }
    return out;
  }
}

function message(n: number, extra: { priority?: number; headers?: Record<string, unknown> } = {}): WireMessage {
  const id = randomUUID();
  return {
    body: encoder.encode(JSON.stringify([[n], {}, {}])),
    contentType: "application/json",
    contentEncoding: "utf-8",
    headers: { lang: "py", task: "conformance.echo", id, n, ...extra.headers },
    properties: { correlationId: id, replyTo: "", deliveryMode: 2, ...(extra.priority !== undefined ? { priority: extra.priority } : {}) },
  };
}

const nOf = (d: Delivery) => d.message.headers["n"];

async function expectCode(p: Promise<unknown>, code: string): Promise<void> {
  const err = await p.then(
    () => null,
    (e: unknown) => e,
  );
  expect(err, `expected CeleriacError ${code}`).toBeInstanceOf(CeleriacError);
  expect((err as CeleriacError).code).toBe(code);
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Registers the suite; call at the top level of a `*.test.ts` file. */
export function describeTransportConformance(name: string, factory: TransportFactory, options: TransportConformanceOptions = {}): void {
  const receiveMs = options.receiveTimeoutMs ?? 5000;
  const quietMs = options.quietMs ?? 300;
  const vt = options.visibilityTimeoutMs;

  describe(`transport conformance: ${name}`, async () => {
    // Capabilities decide which tests are registered, so read them from one throwaway transport
    // (vitest awaits an async describe before collecting its tests).
    const probe = await factory();
    const caps = probe.transport.capabilities;
    await probe.transport.close();
    await probe.cleanup?.();

    const cleanups: (() => Promise<void>)[] = [];
    const consumers: Consumer[] = [];

    afterEach(async () => {
      for (const c of consumers.splice(0)) await c.stop();
      for (const c of cleanups.splice(0).reverse()) await c();
    });

    /** A fresh transport and a queue name no other test (or earlier run) uses. */
    async function setup(): Promise<{ t: Transport; queue: string; receiver: (prefetch?: number, queues?: string[]) => Receiver }> {
      const { transport, cleanup } = await factory();
      cleanups.push(async () => {
        await transport.close();
        await cleanup?.();
      });
      await transport.connect();
      const queue = `conformance-${randomUUID().slice(0, 8)}`;
      const receiver = (prefetch = 1, queues = [queue]) => {
        const c = transport.consume(queues, { prefetch });
        consumers.push(c);
        return new Receiver(c);
      };
      return { t: transport, queue, receiver };
    }

    it("round-trips body, headers and properties", async () => {
      const { t, queue, receiver } = await setup();
      const sent: WireMessage = {
        body: new Uint8Array([0, 1, 2, 250, 255, 10, 13]),
        contentType: "application/x-test",
        contentEncoding: "binary",
        headers: { lang: "py", task: "x.y", id: "abc", retries: 2, timelimit: [10, null], nested: { a: [1, "two", true] }, none: null, text: "héllo ✓" },
        properties: { correlationId: "abc", replyTo: "reply.q", deliveryMode: 2, expiration: "60000" },
      };
      await t.publish(queue, sent);
      const [d] = await receiver().take(1, receiveMs);
      expect(d!.queue).toBe(queue);
      expect(Array.from(d!.message.body)).toEqual(Array.from(sent.body));
      expect(d!.message.contentType).toBe(sent.contentType);
      expect(d!.message.contentEncoding).toBe(sent.contentEncoding);
      expect(d!.message.headers).toEqual(sent.headers);
      expect(d!.message.properties).toMatchObject(sent.properties);
      expect(d!.redelivered).toBe(false);
      expect([1, null]).toContain(d!.deliveryCount);
      expect(d!.settled).toBe(false);
      await d!.ack();
      expect(d!.settled).toBe(true);
    });

    it("delivers in publish order within one priority", async () => {
      const { t, queue, receiver } = await setup();
      for (let n = 0; n < 20; n++) await t.publish(queue, message(n));
      const r = receiver(1);
      const got: unknown[] = [];
      for (let n = 0; n < 20; n++) {
        const [d] = await r.take(1, receiveMs);
        got.push(nOf(d!));
        await d!.ack();
      }
      expect(got).toEqual([...Array(20).keys()]);
    });

    it("consumes several queues with one consumer", async () => {
      const { t, queue, receiver } = await setup();
      const other = `${queue}-b`;
      await t.publish(queue, message(1));
      await t.publish(other, message(2));
      const ds = await receiver(2, [queue, other]).take(2, receiveMs);
      expect(ds.map((d) => d.queue).sort()).toEqual([queue, other].sort());
      for (const d of ds) await d.ack();
    });

    it("delivers each message to one of several consumers", async () => {
      const { t, queue, receiver } = await setup();
      for (let n = 0; n < 40; n++) await t.publish(queue, message(n));
      const a = receiver(5);
      const b = receiver(5);
      const seen: unknown[] = [];
      const drain = async (r: Receiver) => {
        for (;;) {
          const d = await r.next(quietMs);
          if (!d) return;
          seen.push(nOf(d));
          await d.ack();
        }
      };
      await Promise.all([drain(a), drain(b)]);
      expect(seen.length).toBe(40);
      expect(new Set(seen).size).toBe(40);
    });

    it("ack removes the message", async () => {
      const { t, queue, receiver } = await setup();
      await t.publish(queue, message(1));
      const r = receiver();
      const [d] = await r.take(1, receiveMs);
      await d!.ack();
      expect(await r.next((vt ?? 0) + quietMs)).toBeNull();
      expect(await t.purge(queue)).toBe(0);
    });

    it("nack requeues for redelivery", async () => {
      const { t, queue, receiver } = await setup();
      await t.publish(queue, message(7));
      const r = receiver();
      const [first] = await r.take(1, receiveMs);
      await first!.nack();
      expect(first!.settled).toBe(true);
      const [again] = await r.take(1, receiveMs);
      expect(again!.message.headers["id"]).toBe(first!.message.headers["id"]);
      expect(again!.redelivered).toBe(true);
      expect([2, null]).toContain(again!.deliveryCount);
      await again!.ack();
    });

    it("nack without requeue does not redeliver", async () => {
      const { t, queue, receiver } = await setup();
      await t.publish(queue, message(1));
      const r = receiver();
      const [d] = await r.take(1, receiveMs);
      await d!.nack({ requeue: false });
      expect(await r.next((vt ?? 0) + quietMs)).toBeNull();
    });

    it("nack with delayMs redelivers no sooner than the delay", async () => {
      const { t, queue, receiver } = await setup();
      await t.publish(queue, message(1));
      const r = receiver();
      const [d] = await r.take(1, receiveMs);
      const start = Date.now();
      await d!.nack({ delayMs: 600 });
      expect(await r.next(300)).toBeNull();
      const [again] = await r.take(1, receiveMs);
      expect(Date.now() - start).toBeGreaterThanOrEqual(550);
      expect(again!.redelivered).toBe(true);
      await again!.ack();
    });

    it("rejects a second settle with already_settled", async () => {
      const { t, queue, receiver } = await setup();
      await t.publish(queue, message(1));
      await t.publish(queue, message(2));
      const [a, b] = await receiver(2).take(2, receiveMs);
      await a!.ack();
      await expectCode(a!.ack(), "already_settled");
      await expectCode(a!.nack(), "already_settled");
      await expectCode(a!.reject("late"), "already_settled");
      await expectCode(a!.extend(1000), "already_settled");
      await b!.nack({ requeue: false });
      await expectCode(b!.ack(), "already_settled");
    });

    it("checks settle arguments before settling, and refuses settles once the transport is closed", async () => {
      const { t, queue, receiver } = await setup();
      await t.publish(queue, message(1));
      await t.publish(queue, message(2));
      const [a, b] = await receiver(2).take(2, receiveMs);
      await expectCode(a!.nack({ delayMs: -1 }), "invalid_argument");
      await expectCode(a!.extend(Number.NaN), "invalid_argument");
      // A refused argument settles nothing: the delivery is still the caller's.
      expect(a!.settled).toBe(false);
      await a!.ack();
      await t.close();
      // Closed: nothing settles any more (core's createDelivery); b went back to the queue with the close.
      await expectCode(b!.ack(), "closed");
    });

    it("declares its lifecycle: connected once connect() resolved", async () => {
      const { t } = await setup();
      expect(t.lifecycle.state).toBe("connected");
      const seen: string[] = [];
      const off = t.lifecycle.subscribe((e) => seen.push(e.type));
      off();
      expect(seen).toEqual([]);
    });

    it.skipIf(caps.maxMessageBytes === null || caps.maxMessageBytes > 256 * 1024 * 1024)(
      "refuses a body over maxMessageBytes before it reaches the broker",
      async () => {
        const { t, queue, receiver } = await setup();
        const big = { ...message(1), body: new Uint8Array((caps.maxMessageBytes ?? 0) + 1) };
        await expectCode(t.publish(queue, big), "invalid_argument");
        await t.publish(queue, message(2));
        // Nothing of the refused one reached the queue.
        const [d] = await receiver().take(1, receiveMs);
        expect(nOf(d!)).toBe(2);
        await d!.ack();
      },
    );

    it.skipIf(caps.delayedDelivery)("refuses publish with delayMs when delayedDelivery is not declared", async () => {
      const { t, queue } = await setup();
      await expectCode(t.publish(queue, message(1), { delayMs: 10 }), "unsupported");
    });

    it("never hands out more than prefetch unsettled deliveries", async () => {
      const { t, queue, receiver } = await setup();
      for (let n = 0; n < 10; n++) await t.publish(queue, message(n));
      const r = receiver(3);
      const held = await r.take(3, receiveMs);
      // Both quiet windows must end before held messages time out and come back.
      const quiet = Math.min(quietMs, vt === undefined ? quietMs : vt / 3);
      expect(await r.next(quiet)).toBeNull();
      await held[0]!.ack();
      const [fourth] = await r.take(1, receiveMs);
      expect(fourth).toBeDefined();
      expect(await r.next(quiet)).toBeNull();
      for (const d of [...held.slice(1), fourth!]) await d.ack();
    });

    it("takeBuffered and the iteration share one buffer and one prefetch window", async () => {
      const { t, queue } = await setup();
      for (let n = 0; n < 6; n++) await t.publish(queue, message(n));
      const c = t.consume([queue], { prefetch: 3 });
      consumers.push(c);
      // Core's DeliveryQueue, which every transport here consumes through, has it.
      expect(typeof c.takeBuffered).toBe("function");
      const r = new Receiver(c);
      // The worker's pattern: what is buffered at once, else wait on the iteration (which is
      // also what makes an on-demand transport, SQLite, fetch).
      const next = async (timeoutMs: number): Promise<Delivery | null> => c.takeBuffered!() ?? (await r.next(timeoutMs));
      const held: Delivery[] = [];
      for (let i = 0; i < 3; i++) {
        const d = await next(receiveMs);
        expect(d, `delivery ${i + 1} of 3`).not.toBeNull();
        held.push(d!);
      }
      // The window is full: neither hands out a fourth.
      const quiet = Math.min(quietMs, vt === undefined ? quietMs : vt / 3);
      expect(await next(quiet)).toBeNull();
      expect(c.takeBuffered!()).toBeNull();
      await held[0]!.ack();
      const rest: Delivery[] = [];
      while (rest.length < 3) {
        const d = await next(receiveMs);
        expect(d, `delivery ${rest.length + 4} of 6`).not.toBeNull();
        rest.push(d!);
        await d!.ack();
      }
      for (const d of held.slice(1)) await d.ack();
      // Nothing twice, nothing lost, whichever path handed it out.
      expect([...held, ...rest].map(nOf).sort()).toEqual([0, 1, 2, 3, 4, 5]);
    });

    it("stop returns prefetched messages and still lets received ones settle", async () => {
      const { t, queue, receiver } = await setup();
      for (let n = 0; n < 5; n++) await t.publish(queue, message(n));
      const a = receiver(5);
      const [held] = await a.take(1, receiveMs);
      await sleep(50); // let a prefetching transport fill its buffer
      await a.consumer.stop();
      expect(await a.next(quietMs)).toBeNull(); // the iteration has ended
      const b = receiver(10);
      const rest = await b.take(4, Math.min(receiveMs, vt ?? receiveMs));
      expect(rest.map(nOf).sort()).toEqual([0, 1, 2, 3, 4].filter((n) => n !== nOf(held!)));
      await held!.ack();
      for (const d of rest) await d.ack();
      expect(await b.next((vt ?? 0) + quietMs)).toBeNull();
    });

    it("stops when the abort signal fires", async () => {
      const { t, queue } = await setup();
      const ac = new AbortController();
      const c = t.consume([queue], { prefetch: 1, signal: ac.signal });
      consumers.push(c);
      const r = new Receiver(c);
      const pending = r.next(receiveMs);
      ac.abort();
      expect(await pending).toBeNull();
      await t.publish(queue, message(1));
      expect(await t.purge(queue)).toBe(1);
    });

    it("yields nothing when the abort signal fired before consume", async () => {
      const { t, queue } = await setup();
      await t.publish(queue, message(1));
      const c = t.consume([queue], { prefetch: 1, signal: AbortSignal.abort() });
      consumers.push(c);
      expect(await new Receiver(c).next(quietMs)).toBeNull();
      expect(await t.purge(queue)).toBe(1);
    });

    it("purge deletes waiting messages and counts them", async () => {
      const { t, queue, receiver } = await setup();
      for (let n = 0; n < 4; n++) await t.publish(queue, message(n));
      expect(await t.purge(queue)).toBe(4);
      expect(await t.purge(queue)).toBe(0);
      expect(await receiver().next(quietMs)).toBeNull();
    });

    // Transports without a visibility timeout (AMQP: a message stays with its channel) have nothing to time out.
    it.skipIf(vt === undefined)("redelivers a message left unsettled past the visibility timeout", async () => {
      const { t, queue, receiver } = await setup();
      await t.publish(queue, message(1));
      const [d] = await receiver().take(1, receiveMs);
      const b = receiver();
      const [again] = await b.take(1, (vt ?? 0) + receiveMs);
      expect(again!.message.headers["id"]).toBe(d!.message.headers["id"]);
      expect(again!.redelivered).toBe(true);
      await again!.ack();
    });

    it.skipIf(vt === undefined)("still accepts a settle after the visibility timeout gave the message back", async () => {
      const { t, queue, receiver } = await setup();
      await t.publish(queue, message(1));
      const [d] = await receiver().take(1, receiveMs);
      await sleep((vt ?? 0) + 200);
      // The transport never settles on its own: a late ack is accepted and removes the message.
      expect(d!.settled).toBe(false);
      await d!.ack();
      expect(await receiver().next(quietMs)).toBeNull();
      expect(await t.purge(queue)).toBe(0);
    });

    it.skipIf(vt === undefined || !caps.visibilityExtension)("extend keeps a message hidden past the visibility timeout", async () => {
      const { t, queue, receiver } = await setup();
      if (vt === undefined) return;
      await t.publish(queue, message(1));
      const [d] = await receiver().take(1, receiveMs);
      await d!.extend(vt * 4);
      const b = receiver();
      expect(await b.next(vt * 2)).toBeNull();
      await d!.ack();
      expect(await b.next(vt * 2 + quietMs)).toBeNull();
    });

    it(caps.deadLetter ? "reject dead-letters with the reason, without redelivery" : "reject drops without redelivery", async () => {
      const { t, queue, receiver } = await setup();
      await t.publish(queue, message(1));
      const r = receiver();
      const [d] = await r.take(1, receiveMs);
      await d!.reject("poison");
      expect(await r.next((vt ?? 0) + quietMs)).toBeNull();
      if (caps.deadLetter) {
        // The contract's one reader: present exactly when deadLetter is declared.
        expect(t.readDeadLetters, "readDeadLetters with capabilities.deadLetter").toBeTypeOf("function");
        const dead = await t.readDeadLetters!(queue);
        expect(dead.map((x) => x.reason)).toEqual(["poison"]);
        expect(dead[0]!.message!.headers["id"]).toBe(d!.message.headers["id"]);
      }
    });

    it.skipIf(caps.priority === "none")("orders by priority, higher first", async () => {
      const { t, queue, receiver } = await setup();
      const priorities = [0, 5, 9, 1, 5, 0, 9];
      for (const [n, p] of priorities.entries()) await t.publish(queue, message(n, { priority: p }));
      const r = receiver(1);
      const got: unknown[] = [];
      for (let i = 0; i < priorities.length; i++) {
        const [d] = await r.take(1, receiveMs);
        got.push(nOf(d!));
        await d!.ack();
      }
      // 9s (FIFO), 5s, 1, 0s
      expect(got).toEqual([2, 6, 1, 4, 3, 0, 5]);
    });

    it.skipIf(!caps.delayedDelivery)("publish with delayMs hides the message until then", async () => {
      const { t, queue, receiver } = await setup();
      const start = Date.now();
      await t.publish(queue, message(1), { delayMs: 600 });
      await t.publish(queue, message(2));
      const r = receiver();
      const [now] = await r.take(1, receiveMs);
      expect(nOf(now!)).toBe(2);
      await now!.ack();
      expect(await r.next(200)).toBeNull();
      const [later] = await r.take(1, receiveMs);
      expect(nOf(later!)).toBe(1);
      expect(Date.now() - start).toBeGreaterThanOrEqual(550);
      await later!.ack();
    });

    it.skipIf(!caps.delayedDelivery)("purge counts delayed messages too", async () => {
      const { t, queue, receiver } = await setup();
      await t.publish(queue, message(1), { delayMs: 300 });
      await t.publish(queue, message(2));
      expect(await t.purge(queue)).toBe(2);
      expect(await receiver().next(600)).toBeNull();
    });

    it("close is idempotent, resolves closed, and refuses publishes after", async () => {
      const { t, queue, receiver } = await setup();
      const r = receiver();
      const pending = r.next(receiveMs);
      await t.close();
      await t.close();
      await expect(t.closed).resolves.toBeUndefined();
      expect(await pending).toBeNull();
      await expectCode(t.publish(queue, message(1)), "closed");
    });
  });
}
