import { defineTask } from "@celeriac/core";
import { afterEach, describe, expect, it } from "vitest";
import { SoftTimeLimitExceeded } from "../src/index.js";
import { delay, harness, result, until, type Harness } from "./helpers.js";

let h: Harness;
afterEach(async () => h?.cleanup());

describe("time limits", () => {
  it("soft limit (task option): the signal fires with SoftTimeLimitExceeded and the task cleans up", async () => {
    h = harness();
    const reasons: unknown[] = [];
    const t = defineTask<[], string>("tasks.soft", { softTimeLimitMs: 100 });
    const w = h.worker().register(t, async (ctx) => {
      await new Promise<void>((resolve) => ctx.signal.addEventListener("abort", () => resolve()));
      reasons.push(ctx.signal.reason);
      return "cleaned up";
    });
    await w.start();
    const start = Date.now();
    const meta = await result(h, await h.send("tasks.soft"));
    expect(Date.now() - start).toBeGreaterThanOrEqual(95);
    expect(meta).toMatchObject({ status: "SUCCESS", result: "cleaned up" });
    expect(reasons[0]).toBeInstanceOf(SoftTimeLimitExceeded);
  });

  it("soft limit (timelimit header [hard, soft]) not caught: FAILURE SoftTimeLimitExceeded", async () => {
    h = harness();
    const w = h.worker().register("tasks.soft_uncaught", async (ctx) => {
      await new Promise((_, reject) => ctx.signal.addEventListener("abort", () => reject(ctx.signal.reason)));
    });
    await w.start();
    const meta = await result(h, await h.send("tasks.soft_uncaught", { headers: { timelimit: [null, 0.08] } }));
    expect(meta.status).toBe("FAILURE");
    expect(meta.result).toEqual({ exc_type: "SoftTimeLimitExceeded", exc_message: [0.08], exc_module: "billiard.exceptions" });
  });

  it("hard limit: stores TimeLimitExceeded, aborts the signal and frees the slot", async () => {
    h = harness();
    const reasons: unknown[] = [];
    const hang = defineTask("tasks.hang", { timeLimitMs: 150 });
    const w = h
      .worker({ concurrency: 1 })
      .register(hang, (ctx) => {
        ctx.signal.addEventListener("abort", () => reasons.push(ctx.signal.reason));
        return new Promise(() => {});
      })
      .register("tasks.next", () => "ran");
    await w.start();
    const hung = await h.send("tasks.hang");
    const next = await h.send("tasks.next");
    const meta = await result(h, hung);
    expect(meta.status).toBe("FAILURE");
    expect(meta.result).toEqual({ exc_type: "TimeLimitExceeded", exc_message: [0.15], exc_module: "billiard.exceptions" });
    // The only slot was freed, so the next task runs although the first never returned.
    expect(await result(h, next)).toMatchObject({ status: "SUCCESS", result: "ran" });
    expect((reasons[0] as Error).name).toBe("TimeLimitExceeded");
    expect(w.counters.inFlight).toBe(0);
  });

  it("hard limit from the timelimit header wins over the task option", async () => {
    h = harness();
    const t = defineTask("tasks.hdr", { timeLimitMs: 60_000 });
    const w = h.worker().register(t, () => delay(2000));
    await w.start();
    const start = Date.now();
    const meta = await result(h, await h.send("tasks.hdr", { headers: { timelimit: [0.1, null] } }));
    expect(meta.status).toBe("FAILURE");
    expect(Date.now() - start).toBeLessThan(1500);
  });
});

describe("rate limits", () => {
  it('"10/s" spaces one task type out while another type is not slowed', async () => {
    h = harness();
    const limited = defineTask("tasks.limited", { rateLimit: "10/s" });
    const starts: number[] = [];
    const w = h
      .worker()
      .register(limited, () => void starts.push(Date.now()))
      .register("tasks.free", () => Date.now());
    await w.start();
    const t0 = Date.now();
    const ids: string[] = [];
    for (let i = 0; i < 20; i++) ids.push(await h.send("tasks.limited"));
    await until("a few limited ran", () => starts.length >= 3);
    const freeSentAt = Date.now();
    const free = await result(h, await h.send("tasks.free"));
    expect((free.result as number) - freeSentAt).toBeLessThan(600);
    expect(starts.length).toBeLessThan(20);
    for (const id of ids) await result(h, id, 10_000);
    const span = Date.now() - t0;
    expect(span).toBeGreaterThanOrEqual(1800);
    expect(span).toBeLessThan(6000);
    // No burst: the k-th start is never earlier than k * 100 ms after the first was sent
    // (a late timer may shorten the gap after it, so gaps themselves are not compared).
    starts.forEach((s, k) => expect(s - t0).toBeGreaterThanOrEqual(k * 100 - 5));
  });
});
