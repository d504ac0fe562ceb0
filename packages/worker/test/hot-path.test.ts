import { defineTask } from "@celeriac/core";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { delay, harness, result, type Harness } from "./helpers.js";

// The per-task path allocates only what a task uses: its AbortController is made when the
// handler reads `ctx.signal` (lazy), not for every run. Counted by wrapping the global
// constructor the worker uses, so the test sees exactly what a run creates.

let h: Harness;
let made = 0;
const Original = globalThis.AbortController;
class CountingAbortController extends Original {
  constructor() {
    super();
    made++;
  }
}
beforeEach(() => {
  globalThis.AbortController = CountingAbortController;
});
afterEach(async () => {
  globalThis.AbortController = Original;
  await h?.cleanup();
});

describe("the per-task path", () => {
  it("a task with no time limit whose handler never reads ctx.signal makes no AbortController", async () => {
    h = harness();
    const w = h.worker().register(defineTask<[number], number>("tasks.double"), (_ctx, n) => n * 2);
    await w.start();
    made = 0;
    const ids = await Promise.all(Array.from({ length: 20 }, (_, i) => h.send("tasks.double", { args: [i] })));
    for (const [i, id] of ids.entries()) expect((await result(h, id)).result).toBe(i * 2);
    expect(made).toBe(0);
  });

  it("a handler that reads ctx.signal gets one controller per run, and a live signal", async () => {
    h = harness();
    const states: boolean[] = [];
    const w = h.worker().register(defineTask<[], void>("tasks.reads"), async (ctx) => {
      const signal = ctx.signal;
      await delay(1);
      states.push(signal.aborted, ctx.signal === signal);
    });
    await w.start();
    made = 0;
    const ids = await Promise.all(Array.from({ length: 5 }, () => h.send("tasks.reads")));
    for (const id of ids) expect((await result(h, id)).status).toBe("SUCCESS");
    expect(made).toBe(5);
    expect(states).toEqual(Array.from({ length: 5 }, () => [false, true]).flat());
  });

  it("a signal first read after the hard time limit abandoned the run is already aborted with TimeLimitExceeded", async () => {
    h = harness();
    let seen: { aborted: boolean; reason: string } | null = null;
    const slow = defineTask<[], void>("tasks.slow", { timeLimitMs: 50 });
    const w = h.worker().register(slow, async (ctx) => {
      await delay(300);
      seen = { aborted: ctx.signal.aborted, reason: (ctx.signal.reason as Error).name };
    });
    await w.start();
    const id = await h.send("tasks.slow");
    expect((await result(h, id)).status).toBe("FAILURE");
    await delay(400);
    expect(seen).toEqual({ aborted: true, reason: "TimeLimitExceeded" });
  });

  it("a handler that throws synchronously fails its task like one that rejects", async () => {
    h = harness();
    const w = h
      .worker()
      .register(defineTask<[], void>("tasks.throws"), () => {
        throw new TypeError("sync boom");
      })
      .register(defineTask<[], void>("tasks.rejects"), async () => {
        throw new TypeError("async boom");
      });
    await w.start();
    const a = await result(h, await h.send("tasks.throws"));
    const b = await result(h, await h.send("tasks.rejects"));
    expect(a).toMatchObject({ status: "FAILURE", result: { exc_type: "TypeError", exc_message: ["sync boom"] } });
    expect(b).toMatchObject({ status: "FAILURE", result: { exc_type: "TypeError", exc_message: ["async boom"] } });
  });
});
