import { defineTask, Retry } from "@celeriac/core";
import { afterEach, describe, expect, it } from "vitest";
import { retryDelayMs } from "../src/index.js";
import { harness, result, until, type Harness } from "./helpers.js";

let h: Harness;
afterEach(async () => h?.cleanup());

describe("retries", () => {
  it("re-sends with retries+1 and growing backoff, then fails with MaxRetriesExceededError", async () => {
    h = harness();
    const flaky = defineTask<[string], string>("tasks.flaky", { maxRetries: 3, retryBackoffMs: 80, retryJitter: false });
    const runs: { retries: number; header: unknown; at: number; id: string }[] = [];
    const w = h.worker().register(flaky, (ctx) => {
      runs.push({ retries: ctx.retries, header: ctx.headers["retries"], at: Date.now(), id: ctx.id });
      throw ctx.retry();
    });
    await w.start();
    const id = await h.send("tasks.flaky", { args: ["x"] });
    const meta = await result(h, id, 10_000);

    expect(runs.map((r) => r.retries)).toEqual([0, 1, 2, 3]);
    expect(runs.map((r) => r.header)).toEqual([0, 1, 2, 3]);
    expect(new Set(runs.map((r) => r.id))).toEqual(new Set([id]));
    const gaps = runs.slice(1).map((r, i) => r.at - runs[i]!.at);
    // 80 * 2^retries: 80, 160, 320 ms. Lower bounds only; timers may be late, never early.
    expect(gaps[0]).toBeGreaterThanOrEqual(75);
    expect(gaps[1]).toBeGreaterThanOrEqual(155);
    expect(gaps[2]).toBeGreaterThanOrEqual(315);
    expect(gaps[2]!).toBeGreaterThan(gaps[0]!);

    expect(meta.status).toBe("FAILURE");
    expect(meta.result).toMatchObject({ exc_type: "MaxRetriesExceededError", exc_module: "celery.exceptions" });
    expect(String((meta.result as { exc_message: unknown[] }).exc_message[0])).toContain(`Can't retry tasks.flaky[${id}]`);
    const retryMetas = h.history.filter((m) => m.task_id === id && m.status === "RETRY");
    expect(retryMetas).toHaveLength(3);
    expect(retryMetas[0]!.date_done).toBeNull();
    expect(retryMetas[0]!.result).toMatchObject({ exc_type: "Retry", exc_module: "celery.exceptions" });
    expect(w.counters.retried).toBe(3);
    expect(w.counters.failed).toBe(1);
    // Nothing left behind: every attempt's message was settled.
    expect(h.transport.size("celery") + h.transport.inflightCount("celery")).toBe(0);
  });

  it("uses an explicit countdown and succeeds on a later attempt", async () => {
    h = harness();
    let attempts = 0;
    const w = h.worker().register("tasks.second_time", (ctx) => {
      attempts++;
      if (ctx.retries === 0) throw ctx.retry({ countdownMs: 100 });
      return `ok after ${ctx.retries}`;
    });
    await w.start();
    const start = Date.now();
    const id = await h.send("tasks.second_time");
    const meta = await result(h, id);
    expect(Date.now() - start).toBeGreaterThanOrEqual(95);
    expect(meta).toMatchObject({ status: "SUCCESS", result: "ok after 1" });
    expect(attempts).toBe(2);
  });

  it("re-raises the retry's cause when retries run out, and honours a per-call maxRetries", async () => {
    h = harness();
    const w = h.worker().register("tasks.cause", (ctx) => {
      throw ctx.retry({ countdownMs: 10, maxRetries: 1, cause: new TypeError("upstream down") });
    });
    await w.start();
    const id = await h.send("tasks.cause");
    const meta = await result(h, id);
    expect(meta.status).toBe("FAILURE");
    expect(meta.result).toEqual({ exc_type: "TypeError", exc_message: ["upstream down"], exc_module: null });
    expect(h.history.filter((m) => m.task_id === id && m.status === "RETRY")).toHaveLength(1);
  });

  it("treats a thrown core Retry like ctx.retry()", async () => {
    h = harness();
    let n = 0;
    const w = h.worker().register("tasks.raw_retry", () => {
      if (n++ === 0) throw new Retry({ countdownMs: 5 });
      return n;
    });
    await w.start();
    const meta = await result(h, await h.send("tasks.raw_retry"));
    expect(meta).toMatchObject({ status: "SUCCESS", result: 2 });
  });

  it("computes delays like Celery: countdown, else capped backoff with full jitter, else default", () => {
    expect(retryDelayMs({}, 250, 5)).toBe(250);
    expect(retryDelayMs({}, undefined, 0)).toBe(180_000);
    expect(retryDelayMs({ defaultRetryDelayMs: 42 }, undefined, 3)).toBe(42);
    expect(retryDelayMs({ retryBackoffMs: 1000, retryJitter: false }, undefined, 0)).toBe(1000);
    expect(retryDelayMs({ retryBackoffMs: 1000, retryJitter: false }, undefined, 3)).toBe(8000);
    expect(retryDelayMs({ retryBackoffMs: 1000, retryJitter: false }, undefined, 20)).toBe(600_000);
    expect(retryDelayMs({ retryBackoffMs: 1000, retryBackoffMaxMs: 5000, retryJitter: false }, undefined, 10)).toBe(5000);
    for (let i = 0; i < 50; i++) {
      const d = retryDelayMs({ retryBackoffMs: 1000 }, undefined, 2);
      expect(d).toBeGreaterThanOrEqual(0);
      expect(d).toBeLessThanOrEqual(4000);
    }
  });

  it("acks a late-ack task's original message once the retry is sent", async () => {
    h = harness();
    let n = 0;
    const t = defineTask("tasks.late_retry", { acksLate: true });
    const w = h.worker().register(t, (ctx) => {
      if (n++ === 0) throw ctx.retry({ countdownMs: 20 });
      return "done";
    });
    await w.start();
    const meta = await result(h, await h.send("tasks.late_retry"));
    expect(meta.result).toBe("done");
    await until("settled", () => h.transport.inflightCount("celery") === 0);
    expect(h.transport.size("celery")).toBe(0);
  });
});
