import { defineTask } from "@celeriac/core";
import { afterEach, describe, expect, it } from "vitest";
import { installSignalHandlers, type StopOptions, type WorkerState } from "../src/index.js";
import { delay, harness, result, until, type Harness } from "./helpers.js";

let h: Harness;
afterEach(async () => h?.cleanup());

describe("graceful shutdown", () => {
  it("finishes running tasks, hands back the rest, and a second worker drains them: none lost, none run twice", async () => {
    h = harness();
    const started = new Map<string, number>();
    const finished = new Map<string, number>();
    const job = defineTask<[number], number>("tasks.job", { acksLate: true });
    const handler = async (ctx: { id: string }, ms: number) => {
      started.set(ctx.id, (started.get(ctx.id) ?? 0) + 1);
      await delay(ms);
      finished.set(ctx.id, (finished.get(ctx.id) ?? 0) + 1);
      return ms;
    };
    const first = h.worker({ concurrency: 3, prefetchMultiplier: 2 }).register(job, handler);
    await first.start();
    const ids: string[] = [];
    for (let i = 0; i < 30; i++) ids.push(await h.send("tasks.job", { args: [40 + (i % 4) * 20] }));
    // Some held for later ETA, which must go back on stop too.
    for (let i = 0; i < 3; i++) ids.push(await h.send("tasks.job", { args: [10], headers: { eta: new Date(Date.now() + 300).toISOString() } }));
    await until("some done", () => finished.size >= 4);

    const states: WorkerState[] = [];
    const stopping = first.stop();
    states.push(first.state);
    const poll = setInterval(() => states.push(first.state), 2);
    await stopping;
    clearInterval(poll);
    states.push(first.state);
    expect(states[0]).toBe("stopping");
    expect(states).toContain("draining");
    expect(states.at(-1)).toBe("stopped");
    await expect(first.closed).resolves.toBeUndefined();
    // Whatever the first worker started, it finished before stopping.
    for (const id of started.keys()) expect(finished.get(id)).toBe(1);
    expect(finished.size).toBeLessThan(ids.length);
    expect(h.transport.inflightCount("celery")).toBe(0);
    expect(h.transport.size("celery")).toBe(ids.length - finished.size);

    const second = h.worker({ concurrency: 5 }).register(job, handler);
    await second.start();
    for (const id of ids) expect((await result(h, id)).status).toBe("SUCCESS");
    for (const id of ids) {
      expect(started.get(id)).toBe(1);
      expect(finished.get(id)).toBe(1);
    }
  });

  it("forces after the grace time: aborts signals, requeues late-ack tasks, marks early-acked ones WorkerLostError", async () => {
    h = harness();
    const late = defineTask("tasks.late_stuck", { acksLate: true });
    const early = defineTask("tasks.early_stuck");
    const aborted: string[] = [];
    const stuck = (ctx: { id: string; signal: AbortSignal }) => {
      ctx.signal.addEventListener("abort", () => aborted.push(ctx.id));
      return new Promise(() => {});
    };
    const w = h.worker({ shutdownGraceMs: 100 }).register(late, stuck).register(early, stuck);
    await w.start();
    const lateId = await h.send("tasks.late_stuck");
    const earlyId = await h.send("tasks.early_stuck");
    await until("both running", () => w.counters.inFlight === 2);
    const t0 = Date.now();
    await w.stop();
    expect(Date.now() - t0).toBeGreaterThanOrEqual(95);
    expect(aborted.sort()).toEqual([lateId, earlyId].sort());
    expect(h.transport.size("celery")).toBe(1);
    const lost = await h.backend.get(earlyId);
    expect(lost?.status).toBe("FAILURE");
    expect(lost?.result).toMatchObject({ exc_type: "WorkerLostError", exc_module: "billiard.exceptions" });
    expect(await h.backend.get(lateId)).toBeNull();

    const second = h
      .worker()
      .register(late, () => "finally")
      .register(early, () => "never");
    await second.start();
    expect(await result(h, lateId)).toMatchObject({ status: "SUCCESS", result: "finally" });
  });

  it("a second stop with graceMs 0 forces a stop in progress", async () => {
    h = harness();
    const t = defineTask("tasks.forever", { acksLate: true });
    const w = h.worker({ shutdownGraceMs: 60_000 }).register(t, () => new Promise(() => {}));
    await w.start();
    await h.send("tasks.forever");
    await until("running", () => w.counters.inFlight === 1);
    const graceful = w.stop();
    await delay(50);
    expect(w.state).toBe("draining");
    const t0 = Date.now();
    await w.stop({ graceMs: 0 });
    await graceful;
    expect(Date.now() - t0).toBeLessThan(1000);
    expect(w.state).toBe("stopped");
    expect(h.transport.size("celery")).toBe(1);
  });

  it("a force requested while the consumer is still stopping is not lost", async () => {
    h = harness();
    const t = defineTask("tasks.forever2", { acksLate: true });
    const w = h.worker({ shutdownGraceMs: 60_000 }).register(t, () => new Promise(() => {}));
    await w.start();
    await h.send("tasks.forever2");
    await until("running", () => w.counters.inFlight === 1);
    const graceful = w.stop();
    expect(w.state).toBe("stopping");
    const forced = w.stop({ graceMs: 0 });
    const t0 = Date.now();
    await Promise.all([graceful, forced]);
    expect(Date.now() - t0).toBeLessThan(1000);
    expect(h.transport.size("celery")).toBe(1);
  });

  it("stop before start just stops", async () => {
    h = harness();
    const w = h.worker();
    await w.stop();
    expect(w.state).toBe("stopped");
    await expect(w.start()).rejects.toThrow(/not idle/);
  });

  it("SIGTERM stops gracefully when installSignalHandlers is set", async () => {
    h = harness();
    const before = process.listenerCount("SIGTERM");
    const w = h.worker({ installSignalHandlers: true }).register("tasks.x", () => 1);
    await w.start();
    expect(process.listenerCount("SIGTERM")).toBe(before + 1);
    process.emit("SIGTERM", "SIGTERM");
    await w.closed;
    expect(w.state).toBe("stopped");
    await delay(0);
    expect(process.listenerCount("SIGTERM")).toBe(before);
  });
});

describe("installSignalHandlers", () => {
  it("stops gracefully on the first signal and forces on the second", () => {
    const calls: StopOptions[] = [];
    const uninstall = installSignalHandlers({ stop: async (o = {}) => void calls.push(o) }, ["SIGUSR2"]);
    process.emit("SIGUSR2", "SIGUSR2");
    process.emit("SIGUSR2", "SIGUSR2");
    uninstall();
    expect(calls).toEqual([{}, { graceMs: 0 }]);
    expect(process.listenerCount("SIGUSR2")).toBe(0);
  });
});

describe("failure", () => {
  it("goes to `failed` and rejects `closed` when the consumer ends under it", async () => {
    h = harness();
    const w = h.worker().register("tasks.x", () => 1);
    await w.start();
    await h.transport.close();
    await expect(w.closed).rejects.toThrow(/consumer .* ended/);
    expect(w.state).toBe("failed");
    await w.stop();
  });
});

/** Timers and intervals alive in this process right now. */
const timers = () => process.getActiveResourcesInfo().filter((r) => r === "Timeout").length;

describe("shutdown ends when the work does", () => {
  it("stop resolves as soon as the last task finished, cancels the grace timer and leaves no timer of the worker's behind", async () => {
    h = harness({ visibilityTimeoutMs: 60_000 });
    const before = timers();
    const t = defineTask<[number], number>("tasks.short", { acksLate: true });
    const w = h.worker({ shutdownGraceMs: 30_000 }).register(t, async (_ctx, ms) => (await delay(ms), ms));
    await w.start();
    const id = await h.send("tasks.short", { args: [300] });
    await until("running", () => w.counters.inFlight === 1);
    const t0 = Date.now();
    await w.stop();
    expect(Date.now() - t0).toBeLessThan(1000);
    expect(w.forced).toBe(false);
    expect(await h.backend.get(id)).toMatchObject({ status: "SUCCESS" });
    await h.transport.close();
    await delay(0);
    // A grace timer left armed would still be here (30 s), and would hold a process up that long.
    expect(timers()).toBeLessThanOrEqual(before);
  });

  it("a forced stop hands the message back; the handler that ignored its signal finishes later and nothing of it is stored or acked", async () => {
    h = harness();
    const t = defineTask<[number], number>("tasks.deaf", { acksLate: true });
    let finished = 0;
    const w = h.worker({ shutdownGraceMs: 50 }).register(t, async (_ctx, ms) => {
      await delay(ms);
      finished++;
      return ms;
    });
    await w.start();
    const id = await h.send("tasks.deaf", { args: [300] });
    await until("running", () => w.counters.inFlight === 1);
    await w.stop();
    expect(w.forced).toBe(true);
    expect(h.transport.size("celery")).toBe(1);
    await until("the abandoned handler returned", () => finished === 1);
    await until("its outcome logged as discarded", () => h.logs.some((l) => l.taskId === id && /returned after its message was handed back/.test(l.msg)));
    expect(await h.backend.get(id)).toBeNull();
    expect(h.transport.size("celery")).toBe(1);
    expect(h.transport.inflightCount("celery")).toBe(0);
  });

  it("stop({ graceMs: 0 }) is a forced stop even with nothing running", async () => {
    h = harness();
    const w = h.worker();
    await w.start();
    await w.stop({ graceMs: 0 });
    expect(w.forced).toBe(true);
  });
});
