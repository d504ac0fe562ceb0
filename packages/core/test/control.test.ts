import { describe, expect, it } from "vitest";
import { createControl, createMemoryTransport, type Transport } from "../src/index.js";
import {
  decodeControlBody,
  encodeControlMessage,
  LamportClock,
  type ExchangeDelivery,
  type ExchangeMessaging,
  type ExchangeSpec,
  type SubscribeOptions,
  type WireMessage,
} from "../src/transport-api.js";

/*
 * The control client's own logic (request framing, reply collection by ticket, limits, close)
 * over an in-process exchange router. What goes over real brokers, against Python Celery's
 * workers and CLI, is in the AMQP and Redis remote-control suites.
 */

interface Sub {
  exchange: string;
  options: SubscribeOptions;
  onMessage: (d: ExchangeDelivery) => void;
  closed: boolean;
}

/** Routes like a broker would: fanout to every binding of the exchange, direct by exact key. */
class LoopbackExchanges implements ExchangeMessaging {
  readonly published: { exchange: ExchangeSpec; routingKey: string; message: WireMessage }[] = [];
  readonly subs: Sub[] = [];
  async publishToExchange(exchange: ExchangeSpec, routingKey: string, message: WireMessage): Promise<void> {
    this.published.push({ exchange, routingKey, message });
    for (const s of this.subs) {
      if (s.closed || s.exchange !== exchange.name) continue;
      if (exchange.type === "fanout" || s.options.bindingKey === routingKey) {
        queueMicrotask(() => s.onMessage({ message, exchange: exchange.name, routingKey }));
      }
    }
  }
  async subscribe(exchange: ExchangeSpec, options: SubscribeOptions, onMessage: (d: ExchangeDelivery) => void) {
    const sub: Sub = { exchange: exchange.name, options, onMessage, closed: false };
    this.subs.push(sub);
    return { close: async () => void (sub.closed = true) };
  }
}

function setup(): { transport: Transport; ex: LoopbackExchanges } {
  const ex = new LoopbackExchanges();
  return { transport: Object.assign(createMemoryTransport(), { exchanges: ex }), ex };
}

/** A pretend worker: answers requests addressed to it as kombu's Node would. */
function node(ex: LoopbackExchanges, hostname: string, answer: (method: string, args: Record<string, unknown>) => unknown, ticketOverride?: string): void {
  void ex.subscribe({ name: "celery.pidbox", type: "fanout" }, { bindingKey: "", queue: `${hostname}.celery.pidbox` }, ({ message }) => {
    const body = decodeControlBody(message) as Record<string, unknown>;
    const dest = body["destination"] as string[] | null;
    if (dest && !dest.includes(hostname)) return;
    const replyTo = body["reply_to"] as { exchange: string; routing_key: string } | undefined;
    if (!replyTo) return;
    const reply = encodeControlMessage(
      { [hostname]: answer(body["method"] as string, body["arguments"] as Record<string, unknown>) },
      { ticket: ticketOverride ?? body["ticket"], clock: 7 },
      1,
    );
    void ex.publishToExchange({ name: replyTo.exchange, type: "direct" }, replyTo.routing_key, reply);
  });
}

describe("createControl", () => {
  it("needs a transport with exchanges and rejects unknown options", () => {
    expect(() => createControl(createMemoryTransport())).toThrow(expect.objectContaining({ code: "unsupported" }));
    const { transport } = setup();
    expect(() => createControl(transport, { timeout: 1 } as never)).toThrow(/unknown option "timeout"/);
    expect(() => createControl(transport, { timeoutMs: 0 })).toThrow(/timeoutMs/);
  });

  it("publishes kombu's request body and headers, and declares its reply queue as kombu's Mailbox", async () => {
    const { transport, ex } = setup();
    const control = createControl(transport, { timeoutMs: 50 });
    const before = Date.now() / 1000;
    expect(await control.broadcast("ping")).toEqual({});
    const reply = ex.subs.find((s) => s.exchange === "reply.celery.pidbox")!;
    const oid = reply.options.bindingKey;
    expect(reply.options).toEqual({ bindingKey: oid, queue: `${oid}.reply.celery.pidbox`, messageTtlMs: 300_000, queueExpiresMs: 10_000 });
    const req = ex.published[0]!;
    expect(req.exchange).toMatchObject({ name: "celery.pidbox", type: "fanout", durable: false });
    expect(req.routingKey).toBe("");
    expect(req.message.contentType).toBe("application/json");
    const text = new TextDecoder().decode(req.message.body);
    const body = JSON.parse(text) as Record<string, unknown>;
    expect(Object.keys(body)).toEqual(["method", "arguments", "destination", "pattern", "matcher", "ticket", "reply_to"]);
    expect(body).toMatchObject({
      method: "ping",
      arguments: {},
      destination: null,
      pattern: null,
      matcher: null,
      reply_to: { exchange: "reply.celery.pidbox", routing_key: oid },
    });
    expect(typeof body["ticket"]).toBe("string");
    expect(req.message.headers["clock"]).toBe(1);
    expect(req.message.headers["expires"] as number).toBeGreaterThanOrEqual(before);
    await control.close();
    expect(reply.closed).toBe(true);
  });

  it("collects {hostname: reply} from every node, ignoring replies to other tickets", async () => {
    const { transport, ex } = setup();
    node(ex, "a@h", () => ({ ok: "pong" }));
    node(ex, "b@h", () => ({ ok: "pong" }));
    node(ex, "stray@h", () => ({ ok: "wrong ticket" }), "some-other-ticket");
    const control = createControl(transport, { timeoutMs: 100 });
    const seen: string[] = [];
    expect(await control.inspect.ping({ onReply: (h) => seen.push(h) })).toEqual({ "a@h": { ok: "pong" }, "b@h": { ok: "pong" } });
    expect(seen.sort()).toEqual(["a@h", "b@h"]);
    await control.close();
  });

  it("with destinations, ends as soon as each of them answered (kombu's limit)", async () => {
    const { transport, ex } = setup();
    node(ex, "a@h", () => ["tasks.x"]);
    node(ex, "b@h", () => ["tasks.y"]);
    // A one-minute wait per reply: only the limit can end this within the test's time.
    const control = createControl(transport, { timeoutMs: 60_000 });
    expect(await control.inspect.registered({ destination: ["b@h"] })).toEqual({ "b@h": ["tasks.y"] });
    expect(await control.broadcast("registered", {}, { limit: 1, destination: ["a@h", "b@h"] })).toHaveProperty(["a@h"]);
    await control.close();
  }, 10_000);

  it("revoke sends Celery's arguments; reply: false and shutdown publish without waiting", async () => {
    const { transport, ex } = setup();
    const args: Record<string, unknown>[] = [];
    node(ex, "a@h", (method, a) => {
      args.push({ method, ...a });
      return { ok: "done" };
    });
    const control = createControl(transport, { timeoutMs: 60_000 });
    expect(await control.revoke("id-1", { destination: ["a@h"] })).toEqual({ "a@h": { ok: "done" } });
    expect(await control.revoke(["id-2", "id-3"], { terminate: true, signal: "SIGKILL", reply: false })).toEqual({});
    await control.shutdown({ destination: ["a@h"] });
    const sent = ex.published
      .filter((p) => p.exchange.name === "celery.pidbox")
      .map((p) => JSON.parse(new TextDecoder().decode(p.message.body)) as Record<string, unknown>);
    expect(sent.map((b) => [b["method"], b["arguments"], "reply_to" in b])).toEqual([
      ["revoke", { task_id: "id-1", terminate: false, signal: "SIGTERM" }, true],
      ["revoke", { task_id: ["id-2", "id-3"], terminate: true, signal: "SIGKILL" }, false],
      ["shutdown", {}, false],
    ]);
    await expect(control.revoke([])).rejects.toThrow(/task ids/);
    await control.close();
    await expect(control.inspect.ping()).rejects.toThrow(expect.objectContaining({ code: "closed" }));
  }, 10_000);
});

describe("LamportClock", () => {
  it("moves past what it hears and forward on each send, as kombu's", () => {
    const c = new LamportClock();
    expect(c.forward()).toBe(1);
    expect(c.adjust(10)).toBe(11);
    expect(c.adjust(3)).toBe(12);
    expect(c.adjust("20")).toBe(21);
    expect(c.adjust(undefined)).toBe(22);
  });
});
