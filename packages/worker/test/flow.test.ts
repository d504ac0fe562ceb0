import { defineTask } from "@celeriac/core";
import { afterEach, describe, expect, it } from "vitest";
import { delay, harness, result, until, type Harness } from "./helpers.js";

let h: Harness;
afterEach(async () => h?.cleanup());

describe("concurrency and prefetch", () => {
  it("never runs more than `concurrency` tasks at once, and does reach it", async () => {
    h = harness();
    let running = 0;
    let max = 0;
    const w = h.worker({ concurrency: 3 }).register("tasks.sleep", async () => {
      running++;
      max = Math.max(max, running);
      await delay(30);
      running--;
    });
    await w.start();
    const ids: string[] = [];
    for (let i = 0; i < 12; i++) ids.push(await h.send("tasks.sleep"));
    for (const id of ids) await result(h, id);
    expect(max).toBe(3);
    expect(w.counters.processed).toBe(12);
  });

  it("holds at most concurrency * prefetchMultiplier messages", async () => {
    h = harness();
    let maxHeld = 0;
    const w = h.worker({ concurrency: 2, prefetchMultiplier: 2 }).register("tasks.p", async () => {
      await delay(15);
    });
    const sample = setInterval(() => (maxHeld = Math.max(maxHeld, w.counters.prefetched)), 1);
    await w.start();
    const ids: string[] = [];
    for (let i = 0; i < 16; i++) ids.push(await h.send("tasks.p"));
    await until("some waiting", () => w.counters.prefetched === 4);
    expect(h.transport.size("celery")).toBeGreaterThan(0);
    for (const id of ids) await result(h, id);
    clearInterval(sample);
    expect(maxHeld).toBe(4);
  });
});

describe("early and late ack", () => {
  it("early ack (default): the message is acked before the task runs", async () => {
    h = harness();
    const unackedDuringRun: number[] = [];
    const w = h.worker().register("tasks.early", () => void unackedDuringRun.push(h.transport.inflightCount("celery")));
    await w.start();
    await result(h, await h.send("tasks.early"));
    expect(unackedDuringRun).toEqual([0]);
  });

  it("late ack (acksLate): the delivery stays unacked until the task is done, also on failure", async () => {
    h = harness();
    const unackedDuringRun: number[] = [];
    const late = defineTask<[boolean], string>("tasks.late", { acksLate: true });
    const w = h.worker().register(late, async (_ctx, fail) => {
      await delay(20);
      unackedDuringRun.push(h.transport.inflightCount("celery"));
      if (fail) throw new Error("no");
      return "ok";
    });
    await w.start();
    const ok = await h.send("tasks.late", { args: [false] });
    await result(h, ok);
    await until("acked", () => h.transport.inflightCount("celery") === 0);
    const bad = await h.send("tasks.late", { args: [true] });
    expect((await result(h, bad)).status).toBe("FAILURE");
    await until("acked after failure", () => h.transport.inflightCount("celery") === 0);
    expect(unackedDuringRun).toEqual([1, 1]);
    expect(h.transport.size("celery")).toBe(0);
  });

  it("stores STARTED first with trackStarted", async () => {
    h = harness();
    const w = h.worker({ trackStarted: true }).register("tasks.tracked", () => 1);
    await w.start();
    const id = await h.send("tasks.tracked");
    await result(h, id);
    const states = h.history.filter((m) => m.task_id === id).map((m) => m.status);
    expect(states).toEqual(["STARTED", "SUCCESS"]);
    expect(h.history[0]!.result).toMatchObject({ hostname: expect.any(String), pid: process.pid });
  });
});

describe("events and counters", () => {
  it("reports Celery-named events in order", async () => {
    h = harness();
    const events: string[] = [];
    const w = h.worker({ onEvent: (e) => events.push(e.type) }).register("tasks.ev", () => 1);
    await w.start();
    await result(h, await h.send("tasks.ev"));
    await until("succeeded event", () => events.includes("task-succeeded"));
    expect(events).toEqual(["task-received", "task-started", "task-succeeded"]);
  });
});
