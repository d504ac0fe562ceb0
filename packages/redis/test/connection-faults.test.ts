import { createServer, connect, type Server, type Socket } from "node:net";
import { randomUUID } from "node:crypto";
import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CeleriacError, createClient } from "@celeriac/core";
import { createRedisTransport } from "@celeriac/redis";
import { freePort, startRedisServer, type RedisServer } from "../../../test-support/redis.js";

// Connection faults. A publish reported as failed must not have been delivered: the transport tells "Redis cannot
// have it" (code "connection") from "the reply was lost, Redis may have it" ("outcome_unknown").
// A loopback proxy between the transport and a real Redis makes the lost reply deterministic.
let server: RedisServer;
let direct: Redis;

beforeAll(async () => {
  server = await startRedisServer();
  direct = new Redis({ port: server.port, host: "127.0.0.1", db: 9 });
}, 30_000);
afterAll(async () => {
  direct?.disconnect();
  await server?.dispose();
});

/** Forwards to Redis; `dropReplies` swallows what Redis answers; `cut()` drops every connection and stops listening. */
async function startProxy(port: number): Promise<{ dropReplies: boolean; cut(): Promise<void> }> {
  const sockets = new Set<Socket>();
  const state = { dropReplies: false, cut: async () => undefined as void };
  const srv: Server = createServer((client) => {
    const upstream = connect(server.port, "127.0.0.1");
    sockets.add(client).add(upstream);
    client.on("data", (d) => upstream.write(d));
    upstream.on("data", (d) => {
      if (!state.dropReplies) client.write(d);
    });
    for (const s of [client, upstream]) {
      s.on("error", () => undefined);
      s.on("close", () => (client.destroy(), upstream.destroy()));
    }
  });
  await new Promise<void>((r) => srv.listen(port, "127.0.0.1", () => r()));
  state.cut = async () => {
    await new Promise<void>((r) => {
      srv.close(() => r());
      for (const s of sockets) s.destroy();
    });
  };
  return state;
}

async function until(cond: () => Promise<boolean>, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`not within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe("publish outcomes", () => {
  it("the connection lost after Redis ran the LPUSH, before its reply: outcome_unknown (and the message is there)", async () => {
    const port = await freePort();
    const proxy = await startProxy(port);
    const queue = `lost-reply-${randomUUID().slice(0, 8)}`;
    const t = createRedisTransport({ url: `redis://127.0.0.1:${port}/9` });
    await t.connect();
    const client = createClient({ transport: t, defaultQueue: queue });
    await client.sendTask("x.first", {}); // the binding is declared; the next publish is one LPUSH
    proxy.dropReplies = true;
    const sending = client.sendTask("x.lost", {}).then(
      () => null,
      (err: unknown) => err,
    );
    await until(async () => (await direct.llen(queue)) === 2, 5000);
    await proxy.cut();
    // A broker shutdown: the transport is closed while Redis is away, ending ioredis's retries.
    await t.close({ drainMs: 100 });
    const err = await sending;
    expect(err).toBeInstanceOf(CeleriacError);
    expect((err as CeleriacError).code, String(err)).toBe("outcome_unknown");
    expect((err as CeleriacError).message).toMatch(/may or may not be queued/);
    expect(await direct.llen(queue)).toBe(2);
  });

  it("a publish issued while Redis is unreachable and never sent: code connection, and it is not there", async () => {
    const port = await freePort();
    const proxy = await startProxy(port);
    const queue = `never-sent-${randomUUID().slice(0, 8)}`;
    const t = createRedisTransport({ url: `redis://127.0.0.1:${port}/9` });
    await t.connect();
    const client = createClient({ transport: t, defaultQueue: queue });
    await client.sendTask("x.first", {});
    await proxy.cut();
    await until(async () => t.lifecycle.state === "disconnected", 5000);
    const sending = client.sendTask("x.never", {}).then(
      () => null,
      (err: unknown) => err,
    );
    await t.close({ drainMs: 100 });
    const err = await sending;
    expect(err).toBeInstanceOf(CeleriacError);
    expect((err as CeleriacError).code, String(err)).toBe("connection");
    expect(await direct.llen(queue)).toBe(1);
  });

  it("connect() to a Redis that is down reports the outage (password masked) and gives up after connectTimeoutMs", async () => {
    const port = await freePort();
    const t = createRedisTransport({ url: `redis://:hunter2@127.0.0.1:${port}/0`, connectTimeoutMs: 800 });
    const events: string[] = [];
    t.lifecycle.subscribe((e) => events.push(e.type === "disconnected" ? `disconnected: ${e.error.message}` : e.type));
    const t0 = Date.now();
    const err = await t.connect().then(
      () => null,
      (e: unknown) => e,
    );
    expect(Date.now() - t0).toBeGreaterThanOrEqual(700);
    expect((err as CeleriacError).code).toBe("connection");
    expect(String(err)).toMatch(new RegExp(`cannot connect to redis://:\\*\\*@127\\.0\\.0\\.1:${port}/0 within 800 ms: .*ECONNREFUSED`));
    expect(events[0]).toBe("connecting");
    expect(events[1]).toMatch(/^disconnected: redis: cannot connect to redis:\/\/:\*\*@127\.0\.0\.1/);
    expect(events).toContain("reconnecting");
    expect(events.join("\n")).not.toContain("hunter2");
    await t.close();
  });
});
