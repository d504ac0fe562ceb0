import { defineTask, createMemoryTransport, CeleriacError } from "@celeriac/core";
import { afterEach, describe, expect, it } from "vitest";
import { createWorker, type LogRecord, type Worker } from "../src/index.js";
import { harness, ISO_NAIVE_MICROS, result, until, type Harness } from "./helpers.js";

let h: Harness;
afterEach(async () => h?.cleanup());

const add = defineTask<[number, number], number>("tasks.add");

describe("worker basics", () => {
  it("runs a task and stores Celery's SUCCESS meta", async () => {
    h = harness();
    const w = h.worker().register(add, (_ctx, a, b) => a + b);
    expect(w.state).toBe("idle");
    await w.start();
    expect(w.state).toBe("running");
    const id = await h.send("tasks.add", { args: [2, 3], headers: { parentId: "p-1", group: "g-1" } });
    const meta = await result(h, id);
    expect(meta).toMatchObject({ status: "SUCCESS", result: 5, traceback: null, children: [], task_id: id, parent_id: "p-1", group_id: "g-1" });
    expect(meta.date_done).toMatch(ISO_NAIVE_MICROS);
    // date_done is UTC: within a few seconds of now when read as UTC.
    expect(Math.abs(Date.parse(meta.date_done + "Z") - Date.now())).toBeLessThan(5000);
    expect(w.counters).toMatchObject({ processed: 1, succeeded: 1, failed: 0, inFlight: 0 });
  });

  it("gives the handler its context", async () => {
    h = harness();
    const seen: unknown[] = [];
    const t = defineTask<[string], void, { flag: boolean }>("tasks.ctx");
    const w = h.worker({ hostname: "w1@test" }).register(t, (ctx, s) => {
      seen.push({
        s,
        id: ctx.id,
        name: ctx.name,
        kw: ctx.kwargs.flag,
        host: ctx.hostname,
        root: ctx.rootId,
        q: ctx.delivery.queue,
        hdr: ctx.headers["task"],
        aborted: ctx.signal.aborted,
      });
    });
    await w.start();
    const id = await h.send("tasks.ctx", { args: ["x"], kwargs: { flag: true }, headers: { rootId: "root-1" } });
    await result(h, id);
    expect(seen).toEqual([{ s: "x", id, name: "tasks.ctx", kw: true, host: "w1@test", root: "root-1", q: "celery", hdr: "tasks.ctx", aborted: false }]);
  });

  it("stores a thrown error as FAILURE with exc_type, exc_message list and the JS stack", async () => {
    h = harness();
    class PaymentError extends Error {
      override name = "PaymentError";
    }
    const w = h.worker().register("tasks.boom", () => {
      throw new PaymentError("card declined");
    });
    await w.start();
    const id = await h.send("tasks.boom");
    const meta = await result(h, id);
    expect(meta.status).toBe("FAILURE");
    expect(meta.result).toEqual({ exc_type: "PaymentError", exc_message: ["card declined"], exc_module: null });
    expect(meta.traceback).toContain("card declined");
    expect(meta.date_done).toMatch(ISO_NAIVE_MICROS);
    expect(w.counters.failed).toBe(1);
  });

  it("fails with EncodeError when the result cannot be stored as JSON", async () => {
    h = harness();
    const w = h.worker().register("tasks.map", () => new Map([["a", 1]]));
    await w.start();
    const meta = await result(h, await h.send("tasks.map"));
    expect(meta.status).toBe("FAILURE");
    expect(meta.result).toMatchObject({ exc_type: "EncodeError", exc_module: "kombu.exceptions" });
    expect(String((meta.result as { exc_message: unknown[] }).exc_message[0])).toMatch(/Map/);
  });

  it("stores a bigint result (a Python int written as digits)", async () => {
    h = harness();
    const w = h.worker().register("tasks.bigint", () => [2n ** 64n, NaN]);
    await w.start();
    const meta = await result(h, await h.send("tasks.bigint"));
    expect(meta.status).toBe("SUCCESS");
    expect(meta.result).toEqual([2n ** 64n, NaN]);
  });

  it("stores nothing when ignore_result is set by header or by task option", async () => {
    h = harness();
    let runs = 0;
    const quiet = defineTask("tasks.quiet", { ignoreResult: true });
    const w = h
      .worker()
      .register(quiet, () => void runs++)
      .register("tasks.loud", () => void runs++);
    await w.start();
    const a = await h.send("tasks.quiet");
    const b = await h.send("tasks.loud", { headers: { ignoreResult: true } });
    await until("both ran", () => runs === 2);
    await until("counted", () => w.counters.processed === 2);
    expect(await h.backend.get(a)).toBeNull();
    expect(await h.backend.get(b)).toBeNull();
  });

  it("rejects unknown options and bad values with a clear error", () => {
    const transport = createMemoryTransport();
    expect(() => createWorker({ transport, concurency: 3 } as never)).toThrow(/unknown option "concurency"/);
    expect(() => createWorker({ transport, concurrency: 0 })).toThrow(CeleriacError);
    expect(() => createWorker({ transport, queues: [] })).toThrow(/queues/);
    expect(() => createWorker({ transport, logger: "stderr" as never })).toThrow(/logger/);
    expect(() => createWorker({ transport, logLevel: "verbose" as never })).toThrow(/logLevel/);
    expect(() => createWorker({ transport: {} as never })).toThrow(/Transport contract/);
  });

  it("refuses registering twice or after start", async () => {
    h = harness();
    const w = h.worker().register("a", () => 1);
    expect(() => w.register("a", () => 2)).toThrow(/already registered/);
    await w.start();
    expect(() => w.register("b", () => 2)).toThrow(/before start/);
  });

  it("logs structured records and can be silent", async () => {
    h = harness();
    const w = h.worker().register(add, (_c, a, b) => a + b);
    await w.start();
    const id = await h.send("tasks.add", { args: [1, 1] });
    await result(h, id);
    const succeeded = (l: LogRecord) => l.taskId === id && l.level === "info" && /^Task tasks\.add\[.+\] succeeded in/.test(l.msg);
    await until("log line", () => h.logs.some(succeeded));
    const line = h.logs.find(succeeded) as LogRecord;
    expect(line.runtimeMs).toBeTypeOf("number");
    expect(h.logs.some((l) => l.taskId === id && l.msg === `Task tasks.add[${id}] received`)).toBe(true);
    expect(line.worker).toBeTypeOf("string");

    const records: LogRecord[] = [];
    const silent = createWorker({ transport: h.transport, silent: true, logger: (r) => records.push(r), queues: ["other"] });
    await silent.start();
    await silent.stop();
    expect(records).toEqual([]);
  });

  it("types handlers from the task definition (checked by tsc)", () => {
    // Never called: the @ts-expect-error lines are the assertions, enforced by the typecheck.
    const compileOnly = (w: Worker) => {
      w.register(add, (_ctx, a, b) => a + b);
      w.register(add, async (_ctx, a) => a);
      // @ts-expect-error wrong argument type
      w.register(add, (_ctx, a: string) => Number(a));
      // @ts-expect-error wrong result type
      w.register(add, () => "three");
      const kw = defineTask<[], void, { n: number }>("tasks.kw");
      // @ts-expect-error kwargs are typed
      w.register(kw, (ctx) => void ctx.kwargs.missing.toFixed());
      w.register("by.name", (_ctx, ...args) => args.length);
    };
    expect(compileOnly).toBeTypeOf("function");
  });
});
