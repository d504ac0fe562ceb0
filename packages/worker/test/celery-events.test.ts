import { afterEach, describe, expect, it } from "vitest";
import type { ExchangeMessaging, ExchangeSpec, WireMessage } from "@celeriac/core/transport";
import {
  buildCeleryEvent,
  celeryEventExchange,
  celeryEventMessage,
  celeryTaskEventFields,
  EventSender,
  pythonUtcOffset,
  type CeleryEvent,
} from "../src/celery-events.js";
import type { WorkerEvent } from "../src/events.js";
import type { LogLevel } from "../src/logger.js";
import { harness, until, type Harness } from "./helpers.js";

const base = { taskId: "id-1", task: "tasks.add", queue: "celery", timestamp: 1_700_000_000_250 };

/** Records what would be published: a stand-in for a broker's exchanges, owned by this test. */
class RecordingExchanges implements ExchangeMessaging {
  readonly published: { exchange: ExchangeSpec; routingKey: string; message: WireMessage }[] = [];
  behaviour: "ok" | "fail" | "hang" = "ok";
  private hung: (() => void)[] = [];

  publishToExchange(exchange: ExchangeSpec, routingKey: string, message: WireMessage): Promise<void> {
    if (this.behaviour === "fail") return Promise.reject(new Error("broker gone"));
    if (this.behaviour === "hang") return new Promise((r) => this.hung.push(() => r()));
    this.published.push({ exchange, routingKey, message });
    return Promise.resolve();
  }

  release(): void {
    for (const r of this.hung.splice(0)) r();
  }

  subscribe(): never {
    throw new Error("not used");
  }

  events(): CeleryEvent[] {
    // A `task.multi` message carries a list of events, as a Python worker sends them.
    return this.published.flatMap((p) => JSON.parse(new TextDecoder().decode(p.message.body)) as CeleryEvent | CeleryEvent[]);
  }
}

describe("Celery event payloads", () => {
  it("task-received carries Celery's fields, with the producer's reprs (or Python reprs made here)", () => {
    const received: WorkerEvent = {
      ...base,
      type: "task-received",
      eta: "2026-12-01T10:00:00.000000+00:00",
      expires: null,
      retries: 2,
      args: [2, "x"],
      kwargs: { a: true },
      argsRepr: null,
      kwargsRepr: null,
      rootId: "root",
      parentId: "parent",
    };
    expect(celeryTaskEventFields(received)).toEqual({
      type: "task-received",
      fields: {
        uuid: "id-1",
        name: "tasks.add",
        args: "(2, 'x')",
        kwargs: "{'a': True}",
        root_id: "root",
        parent_id: "parent",
        retries: 2,
        eta: "2026-12-01T10:00:00.000000+00:00",
        expires: null,
      },
    });
    expect(celeryTaskEventFields({ ...received, argsRepr: "(1,)", kwargsRepr: "{}" })?.fields).toMatchObject({ args: "(1,)", kwargs: "{}" });
  });

  it("outcome events: result as repr and runtime in seconds; exceptions as reprs; revoke and reject flags", () => {
    expect(celeryTaskEventFields({ ...base, type: "task-started", waitMs: 5 })).toEqual({ type: "task-started", fields: { uuid: "id-1" } });
    expect(celeryTaskEventFields({ ...base, type: "task-succeeded", runtimeMs: 1500, result: { n: [1, null] } })).toEqual({
      type: "task-succeeded",
      fields: { uuid: "id-1", result: "{'n': [1, None]}", runtime: 1.5 },
    });
    const long = celeryTaskEventFields({ ...base, type: "task-succeeded", runtimeMs: 1, result: "x".repeat(5000) })!.fields["result"] as string;
    expect(long.length).toBeLessThanOrEqual(1030);
    expect(
      celeryTaskEventFields({ ...base, type: "task-failed", excType: "ValueError", exception: "ValueError('boom')", traceback: "tb", runtimeMs: 3 }),
    ).toEqual({
      type: "task-failed",
      fields: { uuid: "id-1", exception: "ValueError('boom')", traceback: "tb" },
    });
    expect(celeryTaskEventFields({ ...base, type: "task-retried", retries: 1, delayMs: 100, exception: "Retry('x')", traceback: null })).toEqual({
      type: "task-retried",
      fields: { uuid: "id-1", exception: "Retry('x')", traceback: "" },
    });
    expect(celeryTaskEventFields({ ...base, type: "task-revoked", expired: true, terminated: false })?.fields).toEqual({
      uuid: "id-1",
      terminated: false,
      signum: null,
      expired: true,
    });
    expect(celeryTaskEventFields({ ...base, type: "task-revoked", expired: false, terminated: true })?.fields).toEqual({
      uuid: "id-1",
      terminated: true,
      signum: "15",
      expired: false,
    });
    expect(celeryTaskEventFields({ ...base, type: "task-rejected", reason: "Reject: no", requeue: true })).toEqual({
      type: "task-rejected",
      fields: { uuid: "id-1", requeue: true },
    });
  });

  it("an unknown task is a task-failed NotRegistered (consumer.py on_unknown_task); a malformed message sends nothing", () => {
    expect(celeryTaskEventFields({ ...base, task: "nope", type: "task-rejected", reason: "NotRegistered: nope", requeue: false })).toEqual({
      type: "task-failed",
      fields: { uuid: "id-1", exception: "NotRegistered('nope')" },
    });
    expect(
      celeryTaskEventFields({ type: "task-rejected", taskId: null, task: null, queue: "celery", timestamp: 1, reason: "bad JSON", requeue: false }),
    ).toBeNull();
  });

  it("every event gets hostname, pid, clock, utcoffset and a float-seconds timestamp; the message is kombu's", () => {
    const event = buildCeleryEvent("task-started", { uuid: "id-1" }, { hostname: "w@h", pid: 42 }, 7, 1_700_000_000_250);
    expect(event).toMatchObject({ type: "task-started", uuid: "id-1", hostname: "w@h", pid: 42, clock: 7, timestamp: 1_700_000_000.25 });
    expect(typeof event["utcoffset"]).toBe("number");
    const { routingKey, message } = celeryEventMessage(event);
    expect(routingKey).toBe("task.started");
    expect(message.contentType).toBe("application/json");
    expect(message.contentEncoding).toBe("utf-8");
    expect(message.headers).toEqual({ hostname: "w@h" });
    expect(message.properties.deliveryMode).toBe(1);
    expect(JSON.parse(new TextDecoder().decode(message.body))).toEqual(event);
  });

  it("utcoffset follows Python's time.timezone // 3600 (hours west, floored)", () => {
    const at = (minutesWest: number) => ({ getTimezoneOffset: () => minutesWest }) as Date;
    expect(pythonUtcOffset(at(0))).toBe(0);
    expect(pythonUtcOffset(at(300))).toBe(5); // New York in winter
    expect(pythonUtcOffset(at(-60))).toBe(-1); // Paris in winter
    expect(pythonUtcOffset(at(-330))).toBe(-6); // India: -19800 // 3600 == -6 in Python
  });

  it("a group of task events is one `task.multi` message whose body is the list (dispatcher.py flush)", () => {
    const origin = { hostname: "w@h", pid: 7 };
    const group = [buildCeleryEvent("task-received", { uuid: "a" }, origin, 1, 0), buildCeleryEvent("task-started", { uuid: "a" }, origin, 2, 0)];
    const { routingKey, message } = celeryEventMessage(group);
    expect(routingKey).toBe("task.multi");
    expect(message.headers).toEqual({ hostname: "w@h" });
    expect(JSON.parse(new TextDecoder().decode(message.body))).toEqual(group);
    expect(celeryEventMessage(group[0]!).routingKey).toBe("task.received");
    expect(() => celeryEventMessage([])).toThrow(/empty/);
  });

  it("celeryev is topic on AMQP and fanout on Redis (events/event.py get_exchange)", () => {
    expect(celeryEventExchange("amqp")).toEqual({ name: "celeryev", type: "topic", durable: true, autoDelete: false });
    expect(celeryEventExchange("redis").type).toBe("fanout");
  });
});

describe("EventSender", () => {
  const origin = { hostname: "w@h", pid: 1 };
  const ev = (n: number) => buildCeleryEvent("worker-heartbeat", { n }, origin, n, Date.now());

  it("never waits on the broker: the buffer is bounded and drops the oldest", async () => {
    const ex = new RecordingExchanges();
    ex.behaviour = "hang";
    const logs: string[] = [];
    const sender = new EventSender({ exchanges: ex, exchange: celeryEventExchange("amqp"), log: (_l, m) => logs.push(m), maxBuffered: 10, maxInFlight: 1 });
    for (let i = 1; i <= 1000; i++) sender.send(ev(i));
    ex.behaviour = "ok";
    ex.release();
    await sender.flush(2000);
    const ns = ex.events().map((e) => e["n"]);
    // The hung one was in flight (not recorded); after it, only the newest 10 were still buffered.
    expect(ns).toEqual([991, 992, 993, 994, 995, 996, 997, 998, 999, 1000]);
  });

  it("publishes every event, in order, across many buffer compactions", async () => {
    const ex = new RecordingExchanges();
    ex.behaviour = "hang";
    const sender = new EventSender({ exchanges: ex, exchange: celeryEventExchange("amqp"), log: () => {}, maxBuffered: 5000, maxInFlight: 1 });
    for (let i = 1; i <= 4000; i++) sender.send(ev(i));
    expect(sender.buffered).toBe(3999);
    ex.behaviour = "ok";
    ex.release();
    for (let i = 4001; i <= 4500; i++) sender.send(ev(i));
    await sender.flush(5000);
    expect(sender.buffered).toBe(0);
    // The first one hung in flight and is not recorded; the rest arrive in order, none lost.
    expect(ex.events().map((e) => e["n"])).toEqual(Array.from({ length: 4499 }, (_, i) => i + 2));
  });

  it("logs a failure once per burst, and once when publishing works again", async () => {
    const ex = new RecordingExchanges();
    ex.behaviour = "fail";
    const logs: { level: LogLevel; msg: string; fields?: Record<string, unknown> }[] = [];
    const sender = new EventSender({
      exchanges: ex,
      exchange: celeryEventExchange("amqp"),
      log: (level, msg, fields) => logs.push({ level, msg, ...(fields ? { fields } : {}) }),
    });
    for (let i = 0; i < 50; i++) sender.send(ev(i));
    await sender.flush(2000);
    expect(logs.filter((l) => l.level === "warn")).toHaveLength(1);
    ex.behaviour = "ok";
    sender.send(ev(51));
    await sender.flush(2000);
    expect(logs.filter((l) => l.level === "info")).toHaveLength(1);
    expect(logs[1]?.fields).toMatchObject({ dropped: 50 });
    ex.behaviour = "fail";
    sender.send(ev(52));
    await sender.flush(2000);
    expect(logs.filter((l) => l.level === "warn")).toHaveLength(2);
  });
});

describe("the events addon in a worker", () => {
  let h: Harness;
  afterEach(async () => h?.cleanup());

  it("online first, heartbeats, task events with a rising clock, offline last; nothing when events are off", async () => {
    h = harness();
    const ex = new RecordingExchanges();
    Object.assign(h.transport, { exchanges: ex });
    const w = h
      .worker({ events: { heartbeatMs: 50 }, remoteControl: false, hostname: "events@test" })
      .register("tasks.add", (_ctx, a, b) => (a as number) + (b as number));
    await w.start();
    await h.send("tasks.add", { args: [1, 2] });
    await until("task-succeeded and a heartbeat", () => {
      const types = ex.events().map((e) => e.type);
      return types.includes("task-succeeded") && types.includes("worker-heartbeat");
    });
    await w.stop();
    const events = ex.events();
    expect(events[0]?.type).toBe("worker-online");
    expect(events.at(-1)?.type).toBe("worker-offline");
    expect(events.at(-1)).toMatchObject({ processed: 1, active: 0, freq: 0.05, sw_ident: "celeriac" });
    expect(events.map((e) => e.clock)).toEqual(events.map((_, i) => i + 1));
    expect(events.every((e) => e.hostname === "events@test" && e["pid"] === process.pid)).toBe(true);
    expect(events.filter((e) => e.type.startsWith("task-")).map((e) => e.type)).toEqual(["task-received", "task-started", "task-succeeded"]);
    expect(events.find((e) => e.type === "task-succeeded")).toMatchObject({ result: "3" });
    // Worker events go one per message; task events in `task.multi` groups, as a Python worker sends them.
    for (const p of ex.published) {
      expect(p.exchange.name).toBe("celeryev");
      const body = JSON.parse(new TextDecoder().decode(p.message.body)) as CeleryEvent | CeleryEvent[];
      if (Array.isArray(body)) {
        expect(p.routingKey).toBe("task.multi");
        expect(body.every((e) => e.type.startsWith("task-"))).toBe(true);
      } else {
        expect(p.routingKey).toBe(body.type.replace(/-/g, "."));
        expect(body.type.startsWith("worker-")).toBe(true);
      }
    }

    const quiet = new RecordingExchanges();
    const h2 = harness();
    Object.assign(h2.transport, { exchanges: quiet });
    const w2 = h2.worker({ remoteControl: false }).register("tasks.add", () => 1);
    await w2.start();
    await h2.send("tasks.add");
    await until("task done", () => w2.counters.processed === 1);
    await h2.cleanup();
    expect(quiet.published).toHaveLength(0);
  });
});
