import { spawn, type ChildProcess } from "node:child_process";
import { randomUUID } from "node:crypto";
import { Redis } from "ioredis";
import { afterAll, afterEach, describe, expect, it } from "vitest";
import { CeleriacError } from "@celeriac/core";
import type { ExchangeDelivery, ExchangeSpec, WireMessage } from "@celeriac/core/transport";
import { createRedisTransport, type RedisTransport, type RedisTransportOptions } from "@celeriac/redis";
import { describeExchangeConformance } from "@celeriac/conformance";
import { PYTHON, PYTHON_DIR, runPython } from "../../../test-support/python.js";
import { startPythonRedisWorker, startRedisServer, type RedisServer } from "../../../test-support/redis.js";

// The conformance suite registers its tests at collection time, so the server starts at module load.
const server: RedisServer = await startRedisServer();
afterAll(() => server.dispose());

/** Redis pub/sub: a subscription listens once Redis confirmed PSUBSCRIBE, which subscribe() awaits. */
describeExchangeConformance("redis", async () => ({ transport: createRedisTransport({ url: server.url(1) }) }));

const SEP = "\x06\x16";
const DB = 4;
const encoder = new TextEncoder();
const decoder = new TextDecoder();
const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c().catch(() => undefined);
});

async function transport(options: RedisTransportOptions = {}): Promise<RedisTransport> {
  const t = createRedisTransport({ url: server.url(DB), ...options });
  cleanups.push(() => t.close({ drainMs: 1000 }));
  await t.connect();
  return t;
}

function raw(): Redis {
  const r = new Redis({ host: "127.0.0.1", port: server.port, db: DB, lazyConnect: true, maxRetriesPerRequest: null });
  r.on("error", () => undefined);
  cleanups.push(async () => r.disconnect());
  return r;
}

function json(value: unknown, headers: Record<string, unknown> = {}, priority?: number): WireMessage {
  return {
    body: encoder.encode(JSON.stringify(value)),
    contentType: "application/json",
    contentEncoding: "utf-8",
    headers,
    properties: { deliveryMode: 1, ...(priority !== undefined ? { priority } : {}) },
  };
}

const bodyOf = (d: ExchangeDelivery): unknown => JSON.parse(decoder.decode(d.message.body));
const unique = (kind: string) => `${kind}.${randomUUID().slice(0, 8)}`;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function until(what: string, check: () => boolean | Promise<boolean>, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(25);
  }
}

function collect(): { got: ExchangeDelivery[]; onMessage: (d: ExchangeDelivery) => void } {
  const got: ExchangeDelivery[] = [];
  return { got, onMessage: (d) => got.push(d) };
}

describe("redis exchanges: kombu's layout", () => {
  it("fanout publishes kombu's envelope on /{db}.<exchange>/<routing key>, or /{db}.<exchange> without a key", async () => {
    const t = await transport();
    const listener = raw();
    const seen: { channel: string; data: string }[] = [];
    listener.on("pmessage", (_p: string, channel: string, data: string) => seen.push({ channel, data }));
    const ex = unique("fan");
    await listener.psubscribe(`/${DB}.${ex}*`);
    await t.exchanges.publishToExchange({ name: ex, type: "fanout" }, "worker.heartbeat", json({ a: 1 }, { clock: 7 }));
    await t.exchanges.publishToExchange({ name: ex, type: "fanout" }, "", json({ a: 2 }));
    await until("two pub/sub messages", () => seen.length === 2);
    expect(seen.map((s) => s.channel)).toEqual([`/${DB}.${ex}/worker.heartbeat`, `/${DB}.${ex}`]);
    const env = JSON.parse(seen[0]!.data) as Record<string, unknown> & { properties: Record<string, unknown> };
    expect(Object.keys(env)).toEqual(["body", "content-encoding", "content-type", "headers", "properties"]);
    expect(Buffer.from(env["body"] as string, "base64").toString()).toBe('{"a":1}');
    expect(env["headers"]).toEqual({ clock: 7 });
    expect(env.properties["delivery_info"]).toEqual({ exchange: ex, routing_key: "worker.heartbeat" });
    expect(env.properties["body_encoding"]).toBe("base64");
    expect(env.properties["delivery_tag"]).toMatch(/^[0-9a-f-]{36}$/);
    // Python's json.dumps separators, as every kombu envelope.
    expect(seen[0]!.data).toContain('"delivery_info": {"exchange": ');
  });

  it("fanoutPrefix / fanoutPatterns follow kombu's transport options of the same names", async () => {
    const listener = raw();
    const seen: string[] = [];
    listener.on("pmessage", (_p: string, channel: string) => seen.push(channel));
    const ex = unique("fanopt");
    await listener.psubscribe(`*${ex}*`);
    const noPrefix = await transport({ fanoutPrefix: false });
    const custom = await transport({ fanoutPrefix: "/custom{db}.", fanoutPatterns: false });
    await noPrefix.exchanges.publishToExchange({ name: ex, type: "fanout" }, "rk", json(1));
    await custom.exchanges.publishToExchange({ name: ex, type: "fanout" }, "rk", json(2));
    await until("two channels", () => seen.length === 2);
    expect(seen).toEqual([`${ex}/rk`, `/custom${DB}.${ex}`]);
    // And a subscriber with the same options hears a publisher with the same options.
    const sub = collect();
    await custom.exchanges.subscribe({ name: ex, type: "fanout" }, { bindingKey: "#" }, sub.onMessage);
    await custom.exchanges.publishToExchange({ name: ex, type: "fanout" }, "x.y", json(3));
    await until("custom-prefix delivery", () => sub.got.length === 1);
    expect(sub.got[0]!.routingKey).toBe("x.y");
    expect(() => createRedisTransport({ url: server.url(DB), fanoutPatterns: "yes" as unknown as boolean })).toThrow(/fanoutPatterns/);
  });

  it("subscriptions declare kombu's binding members (topic ones with kombu's regex), and close removes them", async () => {
    const t = await transport();
    const r = raw();
    const direct: ExchangeSpec = { name: unique("reply"), type: "direct" };
    const topic: ExchangeSpec = { name: unique("topic"), type: "topic" };
    const fanout: ExchangeSpec = { name: unique("fan"), type: "fanout" };
    const d = await t.exchanges.subscribe(direct, { bindingKey: "oid-1", queue: "oid-1.reply.celery.pidbox" }, () => undefined);
    const tp = await t.exchanges.subscribe(topic, { bindingKey: "task.*", queue: "events-q" }, () => undefined);
    const tp2 = await t.exchanges.subscribe(topic, { bindingKey: "#.fail_ed", queue: "events-q2" }, () => undefined);
    const f = await t.exchanges.subscribe(fanout, { bindingKey: "", queue: "host.celery.pidbox" }, () => undefined);
    expect(await r.smembers(`_kombu.binding.${direct.name}`)).toEqual([`oid-1${SEP}${SEP}oid-1.reply.celery.pidbox`]);
    // kombu's TopicExchange.key_to_pattern, byte for byte: Python publishers route with it.
    expect((await r.smembers(`_kombu.binding.${topic.name}`)).sort()).toEqual([
      `#.fail_ed${SEP}^.*?\\.fail\\_ed$${SEP}events-q2`,
      `task.*${SEP}^task\\..*?[^\\.]$${SEP}events-q`,
    ]);
    expect(await r.smembers(`_kombu.binding.${fanout.name}`)).toEqual([`${SEP}${SEP}host.celery.pidbox`]);
    await d.close();
    await tp.close();
    await tp2.close();
    await f.close();
    await d.close(); // idempotent
    expect(await r.exists(`_kombu.binding.${direct.name}`, `_kombu.binding.${topic.name}`, `_kombu.binding.${fanout.name}`)).toBe(0);
  });

  it("a direct publish LPUSHes on every bound queue, in the list of kombu's (reversed) priority step", async () => {
    const t = await transport();
    const r = raw();
    const spec: ExchangeSpec = { name: unique("direct"), type: "direct" };
    // Bindings as kombu's _queue_bind writes them (a Python consumer declared them).
    await r.sadd(`_kombu.binding.${spec.name}`, `rk${SEP}${SEP}q-a`, `rk${SEP}${SEP}q-b`, `other${SEP}${SEP}q-c`);
    await t.exchanges.publishToExchange(spec, "rk", json("urgent", {}, 9));
    await t.exchanges.publishToExchange(spec, "rk", json("lazy", {}, 0));
    await t.exchanges.publishToExchange(spec, "rk", json("plain"));
    for (const q of ["q-a", "q-b"]) {
      // Celeriac 9 (most urgent) is kombu's 0: the bare list; Celeriac 0 is kombu's 9.
      const bare = (await r.lrange(q, 0, -1)).map((s) => JSON.parse(s) as { properties: { priority: number; delivery_info: unknown } });
      expect(bare.map((e) => e.properties.priority)).toEqual([0, 0]);
      expect(bare[0]!.properties.delivery_info).toEqual({ exchange: spec.name, routing_key: "rk" });
      expect(await r.llen(`${q}${SEP}9`)).toBe(1);
    }
    expect(await r.exists("q-c", `q-c${SEP}9`)).toBe(0);
    await r.del("q-a", "q-b", `q-a${SEP}9`, `q-b${SEP}9`);
  });

  it("a direct subscription hands priorities back in Celeriac's sense, most urgent step first", async () => {
    const t = await transport();
    const spec: ExchangeSpec = { name: unique("direct"), type: "direct" };
    const queue = unique("q");
    const r = raw();
    // Queue filled before anyone listens, so the order is kombu's BRPOP order, not arrival order.
    await r.sadd(`_kombu.binding.${spec.name}`, `k${SEP}${SEP}${queue}`);
    await t.exchanges.publishToExchange(spec, "k", json("low", {}, 1));
    await t.exchanges.publishToExchange(spec, "k", json("high", {}, 9));
    const sub = collect();
    await t.exchanges.subscribe(spec, { bindingKey: "k", queue }, sub.onMessage);
    await until("two deliveries", () => sub.got.length === 2);
    expect(sub.got.map(bodyOf)).toEqual(["high", "low"]);
    expect(sub.got.map((d) => d.message.properties.priority)).toEqual([9, 1]);
  });

  it("a throwing subscriber does not stop the others; bad arguments are rejected", async () => {
    const t = await transport();
    const spec: ExchangeSpec = { name: unique("fan"), type: "fanout" };
    await t.exchanges.subscribe(spec, { bindingKey: "#" }, () => {
      throw new Error("subscriber bug");
    });
    const ok = collect();
    await t.exchanges.subscribe(spec, { bindingKey: "#" }, ok.onMessage);
    await t.exchanges.publishToExchange(spec, "a", json(1));
    await t.exchanges.publishToExchange(spec, "b", json(2));
    await until("both messages", () => ok.got.length === 2);
    expect(t.lastError?.message).toBe("subscriber bug");
    await expect(t.exchanges.subscribe(spec, { bindingKey: "#", durable: true } as never, () => undefined)).rejects.toThrow(/unknown option "durable"/);
    await expect(t.exchanges.publishToExchange({ name: "x", type: "headers" as never }, "", json(1))).rejects.toMatchObject({ code: "invalid_argument" });
    await expect(t.exchanges.publishToExchange({ name: "", type: "direct" }, "q", json(1))).rejects.toMatchObject({ code: "invalid_argument" });
  });

  it("a fanout subscription hears its own exchange only, even with glob characters in the name", async () => {
    const t = await transport();
    const odd: ExchangeSpec = { name: `odd*[x]?${randomUUID().slice(0, 4)}`, type: "fanout" };
    const sub = collect();
    await t.exchanges.subscribe(odd, { bindingKey: "#" }, sub.onMessage);
    await t.exchanges.publishToExchange({ name: odd.name.replace("*[x]?", "ity-x-"), type: "fanout" }, "k", json("other"));
    await t.exchanges.publishToExchange(odd, "k", json("own"));
    await until("a delivery", () => sub.got.length === 1);
    await sleep(200);
    expect(sub.got.map(bodyOf)).toEqual(["own"]);
  });

  it("a subscription to a fanout exchange another one is just subscribing to hears the first publish after it", async () => {
    const t = await transport();
    for (let round = 0; round < 20; round++) {
      const spec: ExchangeSpec = { name: unique("fan"), type: "fanout" };
      const [a, b] = [collect(), collect()];
      // `a` is still waiting for Redis's PSUBSCRIBE reply when `b` finds the pattern taken: `b`
      // must not resolve before that reply either.
      const first = t.exchanges.subscribe(spec, { bindingKey: "#" }, a.onMessage);
      await t.exchanges.subscribe(spec, { bindingKey: "#" }, b.onMessage);
      await t.exchanges.publishToExchange(spec, "k", json(round));
      await first;
      await until(`round ${round}`, () => a.got.length === 1 && b.got.length === 1, 2000);
    }
  });

  it("a subscribe still in progress when the transport closes fails with `closed` and leaves no binding", async () => {
    const t = createRedisTransport({ url: server.url(DB) });
    await t.connect();
    const r = raw();
    const fanout: ExchangeSpec = { name: unique("fan"), type: "fanout" };
    const direct: ExchangeSpec = { name: unique("reply"), type: "direct" };
    const pending = [fanout, direct].map((spec) =>
      t.exchanges
        .subscribe(spec, { bindingKey: "k" }, () => undefined)
        .then(
          () => null,
          (err: unknown) => err,
        ),
    );
    await t.close();
    for (const p of pending) expect(await p).toMatchObject({ code: "closed" });
    expect(await r.exists(`_kombu.binding.${fanout.name}`, `_kombu.binding.${direct.name}`)).toBe(0);
  });

  it("transport.close() finishes while Redis is down, with subscriptions open", async () => {
    const own = await startRedisServer();
    cleanups.push(() => own.dispose());
    const t = createRedisTransport({ url: own.url(0) });
    await t.connect();
    await t.exchanges.subscribe({ name: "celery.pidbox", type: "fanout" }, { bindingKey: "" }, () => undefined);
    await t.exchanges.subscribe({ name: "reply.celery.pidbox", type: "direct" }, { bindingKey: "oid" }, () => undefined);
    await own.stop();
    // A close that waited for ioredis's ~10 s of reconnect attempts per clean-up command would
    // run into this test's timeout.
    await t.close({ drainMs: 500 });
    await expect(t.closed).resolves.toBeUndefined();
  }, 15_000);

  it("transport.close() ends every subscription and removes its bindings; the transport refuses new ones", async () => {
    const t = createRedisTransport({ url: server.url(DB) });
    await t.connect();
    const r = raw();
    const direct: ExchangeSpec = { name: unique("reply"), type: "direct" };
    const fanout: ExchangeSpec = { name: unique("fan"), type: "fanout" };
    const got = collect();
    await t.exchanges.subscribe(direct, { bindingKey: "k" }, got.onMessage);
    await t.exchanges.subscribe(fanout, { bindingKey: "#" }, got.onMessage);
    expect(await r.exists(`_kombu.binding.${direct.name}`, `_kombu.binding.${fanout.name}`)).toBe(2);
    await t.close();
    expect(await r.exists(`_kombu.binding.${direct.name}`, `_kombu.binding.${fanout.name}`)).toBe(0);
    // Nobody is subscribed any more: the pub/sub publish reaches no client.
    expect(await r.publish(`/${DB}.${fanout.name}/x`, "{}")).toBe(0);
    await expect(t.exchanges.subscribe(fanout, { bindingKey: "#" }, () => undefined)).rejects.toBeInstanceOf(CeleriacError);
    await expect(t.exchanges.publishToExchange(fanout, "", json(1))).rejects.toMatchObject({ code: "closed" });
  });

  it("subscriptions survive a Redis restart: pub/sub is re-issued and bindings are declared again", async () => {
    // A server of its own, since it is restarted without its data.
    const own = await startRedisServer();
    cleanups.push(() => own.dispose());
    const sub = createRedisTransport({ url: own.url(0) });
    const pub = createRedisTransport({ url: own.url(0) });
    cleanups.push(
      () => sub.close({ drainMs: 500 }),
      () => pub.close({ drainMs: 500 }),
    );
    await sub.connect();
    await pub.connect();
    const fanout: ExchangeSpec = { name: "celery.pidbox", type: "fanout" };
    const direct: ExchangeSpec = { name: "reply.celery.pidbox", type: "direct" };
    const fan = collect();
    const rep = collect();
    await sub.exchanges.subscribe(fanout, { bindingKey: "" }, fan.onMessage);
    await sub.exchanges.subscribe(direct, { bindingKey: "oid", queue: "oid.reply.celery.pidbox" }, rep.onMessage);
    await pub.exchanges.publishToExchange(fanout, "", json("before"));
    await pub.exchanges.publishToExchange(direct, "oid", json("before"));
    await until("deliveries before the restart", () => fan.got.length === 1 && rep.got.length === 1);

    await own.stop(); // SIGKILL, no save: the binding set is gone with it
    await own.start();
    // Messages published while the subscriber has not reconnected yet are lost (at most once), so
    // publish until one arrives.
    await until(
      "a fanout delivery after the restart",
      async () => {
        await pub.exchanges.publishToExchange(fanout, "", json("after")).catch(() => undefined);
        return fan.got.some((d) => bodyOf(d) === "after");
      },
      15_000,
    );
    await until(
      "a direct delivery after the restart",
      async () => {
        await pub.exchanges.publishToExchange(direct, "oid", json("after")).catch(() => undefined);
        return rep.got.some((d) => bodyOf(d) === "after");
      },
      15_000,
    );
    expect(fan.got.every((d) => d.exchange === "celery.pidbox")).toBe(true);
  });
});

// ---------------------------------------------------------------------------------------------
// Interop with kombu 5.2.4 itself (test-support/python/kombu_exchanges.py).

const PY_DB = 5;
const pyEnv = () => ({ brokerUrl: server.url(PY_DB) });

/** A kombu consumer started with `kombu_exchanges.py consume`, printing one JSON line per message. */
interface PyConsumer {
  messages: {
    body: unknown;
    headers: Record<string, unknown>;
    content_type: string;
    delivery_info: Record<string, unknown>;
    properties: Record<string, unknown>;
  }[];
  exited: Promise<number | null>;
  output(): string;
}

async function pyConsume(
  type: ExchangeSpec["type"],
  exchange: string,
  routingKey: string,
  queue: string,
  count: number,
  transportOptions: Record<string, unknown> = {},
): Promise<PyConsumer> {
  const child: ChildProcess = spawn(PYTHON, ["kombu_exchanges.py", "consume", type, exchange, routingKey, queue, String(count), "20"], {
    cwd: PYTHON_DIR,
    env: {
      ...process.env,
      CELERIAC_BROKER_URL: pyEnv().brokerUrl,
      CELERIAC_TRANSPORT_OPTIONS: JSON.stringify(transportOptions),
      PYTHONPATH: PYTHON_DIR,
      PYTHONUNBUFFERED: "1",
      PYTHONDONTWRITEBYTECODE: "1",
    },
    stdio: ["ignore", "pipe", "pipe"],
  });
  cleanups.push(async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
  });
  let out = "";
  let err = "";
  const consumer: PyConsumer = {
    messages: [],
    exited: new Promise((r) => child.once("exit", (code) => r(code))),
    output: () => `${out}\n${err}`,
  };
  let ready = false;
  let pending = "";
  child.stdout!.on("data", (d: Buffer) => {
    out += d.toString();
    pending += d.toString();
    let nl: number;
    while ((nl = pending.indexOf("\n")) >= 0) {
      const line = pending.slice(0, nl);
      pending = pending.slice(nl + 1);
      if (line === "READY") ready = true;
      else if (line.startsWith("{")) consumer.messages.push(JSON.parse(line) as PyConsumer["messages"][number]);
    }
  });
  child.stderr!.on("data", (d: Buffer) => (err += d.toString()));
  await until(
    "the kombu consumer",
    () => {
      if (child.exitCode !== null) throw new Error(`kombu consumer exited early:\n${consumer.output()}`);
      return ready;
    },
    20_000,
  );
  return consumer;
}

const pyPublish = (type: ExchangeSpec["type"], exchange: string, routingKey: string, body: unknown, headers: Record<string, unknown>) =>
  runPython(pyEnv(), "kombu_exchanges.py", ["publish", type, exchange, routingKey, JSON.stringify(body), JSON.stringify(headers)]);

describe("redis exchanges: interop with kombu 5.2.4", () => {
  async function tsTransport(): Promise<RedisTransport> {
    const t = createRedisTransport({ url: pyEnv().brokerUrl });
    cleanups.push(() => t.close({ drainMs: 1000 }));
    await t.connect();
    return t;
  }

  it("a TS fanout publish reaches kombu consumers bound with '#' (events) and '' (pidbox), body and headers intact", async () => {
    const t = await tsTransport();
    const events = unique("celeryev");
    const pidbox = unique("pidbox");
    const evConsumer = await pyConsume("fanout", events, "#", "-", 1);
    const pbConsumer = await pyConsume("fanout", pidbox, "", `host.${pidbox}`, 1);
    const headers = { hostname: "ts@host", clock: 3, expires: 1_764_000_000.25, nested: { a: [1, "b", null] } };
    const body = { type: "worker-heartbeat", hostname: "ts@host", active: 0, freq: 2.0, sw_ver: "5.2.6" };
    // kombu PSUBSCRIBEs on its first poll: publish until the consumer reports, it stops at one.
    await until(
      "the events consumer",
      async () => {
        await t.exchanges.publishToExchange({ name: events, type: "fanout" }, "worker.heartbeat", json(body, headers));
        return evConsumer.messages.length > 0;
      },
      10_000,
    );
    await until(
      "the pidbox consumer",
      async () => {
        await t.exchanges.publishToExchange({ name: pidbox, type: "fanout" }, "", json({ method: "ping" }, headers));
        return pbConsumer.messages.length > 0;
      },
      10_000,
    );
    const ev = evConsumer.messages[0]!;
    expect(ev.body).toEqual(body);
    expect(ev.headers).toEqual(headers);
    expect(ev.content_type).toBe("application/json");
    expect(ev.delivery_info).toMatchObject({ exchange: events, routing_key: "worker.heartbeat" });
    expect(pbConsumer.messages[0]!.body).toEqual({ method: "ping" });
    expect(pbConsumer.messages[0]!.delivery_info).toMatchObject({ exchange: pidbox, routing_key: "" });
    expect(await evConsumer.exited).toBe(0);
    expect(await pbConsumer.exited).toBe(0);
  });

  it("fanoutPrefix / fanoutPatterns talk to kombu configured with the same transport options", async () => {
    const ex = unique("legacy");
    const kombu3 = createRedisTransport({ url: pyEnv().brokerUrl, fanoutPrefix: false, fanoutPatterns: false });
    cleanups.push(() => kombu3.close({ drainMs: 1000 }));
    const custom = createRedisTransport({ url: pyEnv().brokerUrl, fanoutPrefix: "/v{db}." });
    cleanups.push(() => custom.close({ drainMs: 1000 }));
    const legacy = await pyConsume("fanout", ex, "#", "-", 1, { fanout_prefix: false, fanout_patterns: false });
    const prefixed = await pyConsume("fanout", ex, "#", "-", 1, { fanout_prefix: "/v{db}." });
    await until(
      "the kombu 3-style consumer",
      async () => {
        await kombu3.exchanges.publishToExchange({ name: ex, type: "fanout" }, "task.sent", json("legacy"));
        return legacy.messages.length > 0;
      },
      10_000,
    );
    await until(
      "the custom-prefix consumer",
      async () => {
        await custom.exchanges.publishToExchange({ name: ex, type: "fanout" }, "task.sent", json("custom"));
        return prefixed.messages.length > 0;
      },
      10_000,
    );
    expect(legacy.messages[0]!.body).toBe("legacy");
    expect(prefixed.messages[0]!.body).toBe("custom");
  });

  it("a kombu fanout publish reaches a TS subscription, with and without a routing key", async () => {
    const t = await tsTransport();
    const ex = unique("celeryev");
    const sub = collect();
    await t.exchanges.subscribe({ name: ex, type: "fanout", durable: false }, { bindingKey: "#" }, sub.onMessage);
    const headers = { clock: 11, expires: 0, hostname: "py@host" };
    await pyPublish("fanout", ex, "task.succeeded", { uuid: "abc", result: "'3'" }, headers);
    await pyPublish("fanout", ex, "", { method: "ping", arguments: {} }, headers);
    await until("two deliveries", () => sub.got.length === 2);
    const [first, second] = sub.got;
    expect(bodyOf(first!)).toEqual({ uuid: "abc", result: "'3'" });
    expect(first!.routingKey).toBe("task.succeeded");
    expect(first!.exchange).toBe(ex);
    expect(first!.message.headers).toEqual(headers);
    expect(first!.message.contentType).toBe("application/json");
    expect(bodyOf(second!)).toEqual({ method: "ping", arguments: {} });
    expect(second!.routingKey).toBe("");
  });

  it("a kombu consumer on a direct exchange's queue receives a TS direct publish (pidbox replies)", async () => {
    const t = await tsTransport();
    const ex = unique("reply.celery.pidbox");
    const oid = randomUUID();
    const consumer = await pyConsume("direct", ex, oid, `${oid}.${ex}`, 1);
    const headers = { ticket: randomUUID(), clock: 5 };
    await t.exchanges.publishToExchange({ name: ex, type: "direct", durable: false }, oid, json({ "ts@host": { ok: "pong" } }, headers));
    expect(await consumer.exited).toBe(0);
    expect(consumer.messages).toHaveLength(1);
    expect(consumer.messages[0]!.body).toEqual({ "ts@host": { ok: "pong" } });
    expect(consumer.messages[0]!.headers).toEqual(headers);
    expect(consumer.messages[0]!.delivery_info).toMatchObject({ exchange: ex, routing_key: oid });
  });

  it("a TS direct subscription receives a kombu direct publish", async () => {
    const t = await tsTransport();
    const ex = unique("reply.celery.pidbox");
    const oid = randomUUID();
    const sub = collect();
    await t.exchanges.subscribe({ name: ex, type: "direct", durable: false }, { bindingKey: oid, queue: `${oid}.${ex}` }, sub.onMessage);
    const headers = { ticket: "t-1", clock: 9 };
    await pyPublish("direct", ex, oid, { "py@host": { ok: "pong" } }, headers);
    await pyPublish("direct", ex, "someone-else", { "py@host": { ok: "not for us" } }, headers);
    await until("a delivery", () => sub.got.length === 1);
    await sleep(300);
    expect(sub.got).toHaveLength(1);
    expect(bodyOf(sub.got[0]!)).toEqual({ "py@host": { ok: "pong" } });
    expect(sub.got[0]!.message.headers).toEqual(headers);
    expect(sub.got[0]!.routingKey).toBe(oid);
    expect(sub.got[0]!.exchange).toBe(ex);
  });

  it("Python's `celery inspect ping` reaches a TS pidbox subscriber, and the TS reply reaches it back", async () => {
    const t = await tsTransport();
    const hostname = `ts-${randomUUID().slice(0, 6)}@localhost`;
    const requests: Record<string, unknown>[] = [];
    await t.exchanges.subscribe({ name: "celery.pidbox", type: "fanout", durable: false }, { bindingKey: "", queue: `${hostname}.celery.pidbox` }, (d) => {
      const req = bodyOf(d) as { method: string; ticket: string; reply_to: { exchange: string; routing_key: string } };
      requests.push({ ...req, headers: d.message.headers, routingKey: d.routingKey });
      if (req.method !== "ping") return;
      const reply = json({ [hostname]: { ok: "pong" } }, { ticket: req.ticket, clock: 1 });
      void t.exchanges.publishToExchange({ name: req.reply_to.exchange, type: "direct", durable: false }, req.reply_to.routing_key, reply);
    });
    const out = await runPython({ ...pyEnv(), app: "redis_app" }, "-m", ["celery", "-A", "redis_app", "inspect", "ping", "--timeout", "3", "--json"]);
    expect(JSON.parse(out.trim().split("\n").pop()!)).toEqual({ [hostname]: { ok: "pong" } });
    expect(requests[0]).toMatchObject({ method: "ping", destination: null, reply_to: { exchange: "reply.celery.pidbox" }, routingKey: "" });
    expect(requests[0]!["headers"]).toHaveProperty("clock");
  });

  it("a Python worker answers a TS ping: fanout to celery.pidbox, reply through reply.celery.pidbox", async () => {
    const worker = await startPythonRedisWorker({ brokerUrl: pyEnv().brokerUrl, queues: [unique("idle")] });
    cleanups.push(() => worker.stop());
    const t = await tsTransport();
    const oid = randomUUID();
    const replies = collect();
    await t.exchanges.subscribe(
      { name: "reply.celery.pidbox", type: "direct", durable: false },
      { bindingKey: oid, queue: `${oid}.reply.celery.pidbox` },
      replies.onMessage,
    );
    const ticket = randomUUID();
    const ping = json(
      {
        method: "ping",
        arguments: {},
        destination: null,
        pattern: null,
        matcher: null,
        ticket,
        reply_to: { exchange: "reply.celery.pidbox", routing_key: oid },
      },
      { clock: 1, expires: Date.now() / 1000 + 10 },
    );
    // The worker's pidbox PSUBSCRIBEs around "ready": ask until it answers.
    await until(
      "a pong",
      async () => {
        await t.exchanges.publishToExchange({ name: "celery.pidbox", type: "fanout", durable: false }, "", ping);
        await sleep(200);
        return replies.got.length > 0;
      },
      15_000,
    );
    const reply = replies.got[0]!;
    expect(reply.exchange).toBe("reply.celery.pidbox");
    expect(reply.routingKey).toBe(oid);
    expect(reply.message.headers).toMatchObject({ ticket });
    const body = bodyOf(reply) as Record<string, unknown>;
    expect(Object.values(body)).toEqual([{ ok: "pong" }]);
    expect(Object.keys(body)[0]).toMatch(/^pyredis-/);
  });

  it("topic bindings route the same both ways: kombu evaluates the pattern we store, we evaluate the one kombu stores", async () => {
    const t = await tsTransport();
    const ex = unique("topic");
    const sub = collect();
    await t.exchanges.subscribe({ name: ex, type: "topic" }, { bindingKey: "task.#" }, sub.onMessage);
    await pyPublish("topic", ex, "task.succeeded", { n: 1 }, {});
    await pyPublish("topic", ex, "worker.online", { n: 2 }, {});
    await until("a delivery", () => sub.got.length === 1);
    const consumer = await pyConsume("topic", ex, "*.online", unique("q"), 1);
    await t.exchanges.publishToExchange({ name: ex, type: "topic" }, "worker.online", json({ n: 3 }));
    expect(await consumer.exited).toBe(0);
    expect(consumer.messages.map((m) => m.body)).toEqual([{ n: 3 }]);
    await sleep(300);
    expect(sub.got.map(bodyOf)).toEqual([{ n: 1 }]);
  });
});
