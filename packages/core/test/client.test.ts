import { describe, expect, expectTypeOf, it } from "vitest";
import {
  CeleriacError,
  createClient,
  createMemoryResultBackend,
  createMemoryTransport,
  decodeTask,
  defineTask,
  signature,
  TaskFailedError,
} from "@celeriac/core";

const add = defineTask<[number, number], number>("tasks.add");

async function receiveOne(transport: ReturnType<typeof createMemoryTransport>, queue = "celery") {
  const consumer = transport.consume([queue], { prefetch: 1 });
  for await (const d of consumer) {
    await d.ack();
    await consumer.stop();
    return d;
  }
  throw new Error("no delivery");
}

describe("Client", () => {
  it("sends a protocol v2 task with Celery's headers", async () => {
    const transport = createMemoryTransport();
    const client = createClient({ transport });
    const before = Date.now();
    const r = await client.send(add, [2, 3], { countdownMs: 30_000, expires: 120_000, priority: 7, retries: 1, timeLimitMs: 300_000, softTimeLimitMs: 60_000 });
    const d = await receiveOne(transport);
    const h = d.message.headers;
    expect(h["task"]).toBe("tasks.add");
    expect(h["id"]).toBe(r.id);
    expect(h["root_id"]).toBe(r.id);
    expect(h["argsrepr"]).toBe("(2, 3)");
    expect(h["kwargsrepr"]).toBe("{}");
    expect(h["retries"]).toBe(1);
    expect(h["timelimit"]).toEqual([300, 60]);
    expect(String(h["origin"])).toMatch(/^gen\d+@/);
    expect(String(h["eta"])).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{6})?\+00:00$/);
    const eta = Date.parse(String(h["eta"]));
    expect(eta).toBeGreaterThanOrEqual(before + 29_000);
    expect(eta).toBeLessThanOrEqual(Date.now() + 30_000);
    expect(d.message.properties.priority).toBe(7);
    expect(d.message.properties.correlationId).toBe(r.id);
    expect(Number(d.message.properties.expiration)).toBeGreaterThan(119_000);
    const env = decodeTask(d.message);
    expect(env.args).toEqual([2, 3]);
    expect(env.kwargs).toEqual({});
  });

  it("routes by task queue, routes table, then default queue", async () => {
    const transport = createMemoryTransport();
    const client = createClient({ transport, routes: { "billing.*": "billing" }, defaultQueue: "default" });
    await client.sendTask("billing.charge", { args: [1] });
    await client.sendTask("other.task");
    await client.send(defineTask<[], void>("x", { queue: "special" }), []);
    expect(transport.size("billing")).toBe(1);
    expect(transport.size("default")).toBe(1);
    expect(transport.size("special")).toBe(1);
  });

  it("embeds link and link_error signatures", async () => {
    const transport = createMemoryTransport();
    const client = createClient({ transport });
    await client.send(add, [1, 1], { link: signature(add, { args: [10] }), linkError: signature("tasks.log", { args: ["err"], immutable: true }) });
    const env = decodeTask((await receiveOne(transport)).message);
    expect(env.embed.callbacks?.[0]?.task).toBe("tasks.add");
    expect(env.embed.callbacks?.[0]?.args).toEqual([10]);
    expect(env.embed.errbacks?.[0]?.immutable).toBe(true);
  });

  it("rejects unknown options and bad priorities", async () => {
    const transport = createMemoryTransport();
    const client = createClient({ transport });
    // @ts-expect-error countdown is spelt countdownMs
    await expect(client.send(add, [1, 2], { countdown: 5 })).rejects.toThrow(/unknown option "countdown"/);
    await expect(client.send(add, [1, 2], { priority: 12 })).rejects.toThrow(CeleriacError);
    // @ts-expect-error not a client option
    expect(() => createClient({ transport, brokr: "x" })).toThrow(/unknown option "brokr"/);
  });

  it("AsyncResult.get returns SUCCESS and throws FAILURE with exc_type/exc_message", async () => {
    const transport = createMemoryTransport();
    const backend = createMemoryResultBackend();
    const client = createClient({ transport, resultBackend: backend });
    const ok = await client.send(add, [2, 3]);
    const bad = await client.send(add, [2, 3]);
    expect(await ok.state()).toBe("PENDING");
    expect(await ok.ready()).toBe(false);
    setTimeout(() => {
      void backend.store({ status: "SUCCESS", result: 5, traceback: null, children: [], date_done: null, task_id: ok.id });
      void backend.store({
        status: "FAILURE",
        result: { exc_type: "ValueError", exc_message: ["bad input"], exc_module: "builtins" },
        traceback: "Traceback ...",
        children: [],
        date_done: null,
        task_id: bad.id,
      });
    }, 20);
    const value: number = await ok.get({ timeoutMs: 2000 });
    expect(value).toBe(5);
    expect(await ok.state()).toBe("SUCCESS");
    const err = await bad.get({ timeoutMs: 2000 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TaskFailedError);
    expect((err as TaskFailedError).excType).toBe("ValueError");
    expect((err as TaskFailedError).excMessage).toEqual(["bad input"]);
    await expect(client.asyncResult("never").get({ timeoutMs: 50 })).rejects.toMatchObject({ code: "timeout" });
  });

  it("type-checks args against the task definition", async () => {
    const client = createClient({ transport: createMemoryTransport() });
    // @ts-expect-error a string is not a number
    await client.send(add, [1, "2"]).catch(() => undefined);
    // @ts-expect-error too few args
    await client.send(add, [1]).catch(() => undefined);
    const r = await client.send(add, [1, 2]);
    expectTypeOf(r.get).returns.resolves.toEqualTypeOf<number>();
  });
});
