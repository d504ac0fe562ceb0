import { randomUUID } from "node:crypto";
import { afterEach, describe, expect, it } from "vitest";
import type { Transport } from "@celeriac/core";
import type { ExchangeDelivery, ExchangeMessaging, ExchangeSpec, ExchangeSubscription, SubscribeOptions, WireMessage } from "@celeriac/core/transport";

/**
 * One transport-neutral suite for `Transport.exchanges` (events, remote control), run by every
 * transport that has it against its real broker.
 *
 * Readings of the contract the suite pins down, since transports must agree on them:
 * - Delivery is at most once and only to subscriptions that exist when the message is published.
 *   A broker whose subscribe is not acknowledged synchronously (Redis pub/sub) gets `settleMs`
 *   after each subscribe before the suite publishes.
 * - Fanout subscribers here bind with `#`, as Celery's event receiver does, because kombu's Redis
 *   fanout (with `fanout_patterns`) routes fanout by pattern too; AMQP ignores the key.
 * - Publisher and subscriber are separate transports (separate connections), as a worker and a
 *   monitor are.
 */
export interface ExchangeConformanceOptions {
  /** Wait after each subscribe before publishing (pub/sub brokers). Default 0. */
  settleMs?: number;
  /** How long to wait for a message that should arrive. Default 5000 ms. */
  receiveTimeoutMs?: number;
  /** How long to watch for a message that should not arrive. Default 400 ms. */
  quietMs?: number;
}

export type ExchangeTransportFactory = () => Promise<{ transport: Transport; cleanup?: () => Promise<void> }>;

const encoder = new TextEncoder();
const decoder = new TextDecoder();

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

function message(text: string, headers: Record<string, unknown> = {}): WireMessage {
  return {
    body: encoder.encode(JSON.stringify({ text })),
    contentType: "application/json",
    contentEncoding: "utf-8",
    headers,
    properties: { deliveryMode: 1 },
  };
}

const textOf = (d: ExchangeDelivery): string => (JSON.parse(decoder.decode(d.message.body)) as { text: string }).text;

/** Collects what one subscription receives and waits for it with a deadline. */
class Inbox {
  readonly received: ExchangeDelivery[] = [];
  private waiters: (() => void)[] = [];
  subscription: ExchangeSubscription | null = null;

  readonly onMessage = (d: ExchangeDelivery): void => {
    this.received.push(d);
    for (const w of this.waiters.splice(0)) w();
  };

  texts(): string[] {
    return this.received.map(textOf).sort();
  }

  async waitFor(count: number, timeoutMs: number): Promise<ExchangeDelivery[]> {
    const deadline = Date.now() + timeoutMs;
    while (this.received.length < count) {
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`received ${this.received.length} of ${count} messages within ${timeoutMs} ms: ${JSON.stringify(this.texts())}`);
      await new Promise<void>((r) => {
        const t = setTimeout(r, left);
        this.waiters.push(() => {
          clearTimeout(t);
          r();
        });
      });
    }
    return this.received;
  }
}

export function describeExchangeConformance(name: string, makeTransport: ExchangeTransportFactory, options: ExchangeConformanceOptions = {}): void {
  const settleMs = options.settleMs ?? 0;
  const receiveTimeoutMs = options.receiveTimeoutMs ?? 5000;
  const quietMs = options.quietMs ?? 400;

  describe(`exchange conformance: ${name}`, () => {
    const cleanups: (() => Promise<void>)[] = [];

    afterEach(async () => {
      for (const c of cleanups.splice(0).reverse()) await c().catch(() => undefined);
    });

    async function open(): Promise<ExchangeMessaging> {
      const { transport, cleanup } = await makeTransport();
      cleanups.push(async () => {
        await transport.close({ drainMs: 1000 });
        await cleanup?.();
      });
      await transport.connect();
      const ex = transport.exchanges;
      if (!ex) throw new Error(`${transport.name} transport has no exchanges`);
      return ex;
    }

    async function subscribe(ex: ExchangeMessaging, spec: ExchangeSpec, opts: SubscribeOptions): Promise<Inbox> {
      const inbox = new Inbox();
      inbox.subscription = await ex.subscribe(spec, opts, inbox.onMessage);
      cleanups.push(() => inbox.subscription!.close());
      if (settleMs > 0) await sleep(settleMs);
      return inbox;
    }

    const unique = (kind: string) => `conformance.${kind}.${randomUUID().slice(0, 8)}`;

    it("fanout reaches every subscriber, whatever the routing key", async () => {
      const pub = await open();
      const subA = await open();
      const subB = await open();
      const spec: ExchangeSpec = { name: unique("fanout"), type: "fanout", durable: false, autoDelete: true };
      const a = await subscribe(subA, spec, { bindingKey: "#" });
      const b = await subscribe(subB, spec, { bindingKey: "#" });
      const c = await subscribe(subB, spec, { bindingKey: "#" });
      await pub.publishToExchange(spec, "worker.heartbeat", message("one"));
      await pub.publishToExchange(spec, "", message("two"));
      for (const inbox of [a, b, c]) {
        await inbox.waitFor(2, receiveTimeoutMs);
        expect(inbox.texts()).toEqual(["one", "two"]);
        expect(inbox.received.every((d) => d.exchange === spec.name)).toBe(true);
      }
      expect(a.received.find((d) => textOf(d) === "one")?.routingKey).toBe("worker.heartbeat");
      await sleep(quietMs);
      expect(a.received).toHaveLength(2);
    });

    it("topic routes by `*` (one word) and `#` (zero or more words)", async () => {
      // Only cases where AMQP and kombu's virtual topic exchange agree: kombu's regex reads `*`
      // as "anything ending in a non-dot" and `a.#` as needing the dot, so `task.*` vs
      // `task.started.extra` and `task.#` vs `task` are left out.
      const pub = await open();
      const sub = await open();
      const spec: ExchangeSpec = { name: unique("topic"), type: "topic", durable: false, autoDelete: true };
      const all = await subscribe(sub, spec, { bindingKey: "#" });
      const taskStar = await subscribe(sub, spec, { bindingKey: "task.*" });
      const taskHash = await subscribe(sub, spec, { bindingKey: "task.#" });
      const worker = await subscribe(sub, spec, { bindingKey: "worker.heartbeat" });
      const starMiddle = await subscribe(sub, spec, { bindingKey: "*.started" });
      await pub.publishToExchange(spec, "task.started", message("task.started"));
      await pub.publishToExchange(spec, "task.started.extra", message("task.started.extra"));
      await pub.publishToExchange(spec, "worker.heartbeat", message("worker.heartbeat"));
      await pub.publishToExchange(spec, "worker.online", message("worker.online"));
      await all.waitFor(4, receiveTimeoutMs);
      await taskHash.waitFor(2, receiveTimeoutMs);
      await sleep(quietMs);
      expect(all.texts()).toEqual(["task.started", "task.started.extra", "worker.heartbeat", "worker.online"]);
      expect(taskStar.texts()).toContain("task.started");
      expect(taskStar.texts().filter((t) => t.startsWith("worker."))).toEqual([]);
      expect(taskHash.texts()).toEqual(["task.started", "task.started.extra"]);
      expect(worker.texts()).toEqual(["worker.heartbeat"]);
      expect(starMiddle.texts()).toEqual(["task.started"]);
      expect(worker.received[0]?.routingKey).toBe("worker.heartbeat");
    });

    it("direct routes by exact key, to a named queue too", async () => {
      const pub = await open();
      const sub = await open();
      const spec: ExchangeSpec = { name: unique("direct"), type: "direct", durable: false, autoDelete: true };
      const one = await subscribe(sub, spec, { bindingKey: "reply-one", queue: unique("q"), messageTtlMs: 10_000, queueExpiresMs: 60_000 });
      const two = await subscribe(sub, spec, { bindingKey: "reply-two" });
      await pub.publishToExchange(spec, "reply-one", message("for one"));
      await pub.publishToExchange(spec, "reply-two", message("for two"));
      await pub.publishToExchange(spec, "reply-three", message("for nobody"));
      await one.waitFor(1, receiveTimeoutMs);
      await two.waitFor(1, receiveTimeoutMs);
      await sleep(quietMs);
      expect(one.texts()).toEqual(["for one"]);
      expect(two.texts()).toEqual(["for two"]);
      expect(one.received[0]?.routingKey).toBe("reply-one");
    });

    it("a closed subscription stops receiving; close is idempotent; the others keep receiving", async () => {
      const pub = await open();
      const sub = await open();
      const spec: ExchangeSpec = { name: unique("fanout"), type: "fanout", durable: false, autoDelete: false };
      const closing = await subscribe(sub, spec, { bindingKey: "#" });
      const staying = await subscribe(sub, spec, { bindingKey: "#" });
      await pub.publishToExchange(spec, "x", message("before"));
      await closing.waitFor(1, receiveTimeoutMs);
      await staying.waitFor(1, receiveTimeoutMs);
      await closing.subscription!.close();
      await closing.subscription!.close();
      await pub.publishToExchange(spec, "x", message("after"));
      await staying.waitFor(2, receiveTimeoutMs);
      await sleep(quietMs);
      expect(closing.texts()).toEqual(["before"]);
      expect(staying.texts()).toEqual(["after", "before"]);
    });

    it("publishing where nobody listens succeeds and is dropped (at most once)", async () => {
      const pub = await open();
      const spec: ExchangeSpec = { name: unique("topic"), type: "topic", durable: true, autoDelete: false };
      await pub.publishToExchange(spec, "worker.online", message("lost"));
      const sub = await open();
      const late = await subscribe(sub, spec, { bindingKey: "#" });
      await pub.publishToExchange(spec, "worker.offline", message("heard"));
      await late.waitFor(1, receiveTimeoutMs);
      await sleep(quietMs);
      expect(late.texts()).toEqual(["heard"]);
    });

    it("body, headers and properties round-trip", async () => {
      const pub = await open();
      const sub = await open();
      const spec: ExchangeSpec = { name: unique("direct"), type: "direct", durable: false, autoDelete: true };
      const inbox = await subscribe(sub, spec, { bindingKey: "k" });
      const body = encoder.encode(JSON.stringify({ method: "ping", arguments: {}, destination: null, pattern: null, matcher: null }));
      const headers = {
        hostname: "celery@host",
        clock: 42,
        expires: 1_764_000_000.5,
        flag: true,
        nothing: null,
        list: ["a", 1],
        nested: { a: "b" },
        big: 3_000_000_000,
      };
      const sent: WireMessage = {
        body,
        contentType: "application/json",
        contentEncoding: "utf-8",
        headers,
        properties: { deliveryMode: 1, correlationId: "c0ffee", replyTo: "reply.celery.pidbox" },
      };
      await pub.publishToExchange(spec, "k", sent);
      const [got] = await inbox.waitFor(1, receiveTimeoutMs);
      expect(Buffer.from(got!.message.body).equals(Buffer.from(body))).toBe(true);
      expect(got!.message.contentType).toBe("application/json");
      expect(got!.message.contentEncoding).toBe("utf-8");
      expect(got!.message.headers).toMatchObject(headers);
      expect(got!.message.properties.correlationId).toBe("c0ffee");
      expect(got!.message.properties.replyTo).toBe("reply.celery.pidbox");
      expect(got!.message.properties.deliveryMode).toBe(1);
    });

    it("the same exchange can be used again by a new transport (declarations agree)", async () => {
      const spec: ExchangeSpec = { name: unique("topic"), type: "topic", durable: true, autoDelete: false };
      const first = await open();
      const sub = await open();
      const inbox = await subscribe(sub, spec, { bindingKey: "#" });
      await first.publishToExchange(spec, "a.b", message("first"));
      const second = await open();
      await second.publishToExchange(spec, "a.b", message("second"));
      await inbox.waitFor(2, receiveTimeoutMs);
      expect(inbox.texts()).toEqual(["first", "second"]);
    });
  });
}
