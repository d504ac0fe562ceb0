import { defineTask } from "@celeriac/core";
import { afterEach, describe, expect, it } from "vitest";
import { delay, harness, result, until, type Harness } from "./helpers.js";

let h: Harness;
afterEach(async () => h?.cleanup());

const iso = (msFromNow: number) => new Date(Date.now() + msFromNow).toISOString();

describe("ETA and countdown", () => {
  it("does not run before its ETA, and other work runs meanwhile without a slot held", async () => {
    h = harness();
    const started: Record<string, number> = {};
    // One slot: if the held ETA task took it, the quick task could not run until the ETA.
    const w = h.worker({ concurrency: 1 }).register("tasks.stamp", (ctx) => void (started[ctx.id] = Date.now()));
    await w.start();
    const eta = Date.now() + 500;
    const later = await h.send("tasks.stamp", { headers: { eta: new Date(eta).toISOString() } });
    await until("held", () => w.counters.heldEta === 1);
    const now = await h.send("tasks.stamp");
    await result(h, now);
    expect(started[later]).toBeUndefined();
    expect(w.counters.heldEta).toBe(1);
    await result(h, later);
    expect(started[later]!).toBeGreaterThanOrEqual(eta);
    expect(started[now]!).toBeLessThan(eta);
    expect(w.counters.heldEta).toBe(0);
  });

  it("reads a naive ETA (no zone) as UTC, like Celery", async () => {
    h = harness();
    const w = h.worker().register("tasks.naive", () => Date.now());
    await w.start();
    const eta = Date.now() + 300;
    const naive = new Date(eta).toISOString().replace("Z", "");
    const meta = await result(h, await h.send("tasks.naive", { headers: { eta: naive } }));
    expect(meta.result as number).toBeGreaterThanOrEqual(eta);
    expect(meta.result as number).toBeLessThan(eta + 3000);
  });

  it("keeps a held message invisible with visibility extensions, so it runs exactly once", async () => {
    // Without extension the memory broker would hand the message out again after 150 ms.
    h = harness({ visibilityTimeoutMs: 150 });
    let runs = 0;
    const counts: (number | null)[] = [];
    const w = h.worker({ etaHeartbeatMs: 40, visibilityExtensionMs: 150 }).register("tasks.once", (ctx) => {
      counts.push(ctx.delivery.deliveryCount);
      return ++runs;
    });
    await w.start();
    const id = await h.send("tasks.once", { headers: { eta: iso(700) } });
    await result(h, id);
    await delay(200);
    expect(runs).toBe(1);
    // Delivered once: the broker never took it back while it was held.
    expect(counts).toEqual([1]);
    expect(h.transport.size("celery") + h.transport.inflightCount("celery")).toBe(0);
  });

  it("hands ETA messages beyond maxHeldEta back to the broker with a delay instead of starving", async () => {
    h = harness();
    const ran: string[] = [];
    const w = h.worker({ concurrency: 1, prefetchMultiplier: 1, maxHeldEta: 1 }).register("tasks.e", (ctx) => void ran.push(ctx.id));
    await w.start();
    const a = await h.send("tasks.e", { headers: { eta: iso(400) } });
    const b = await h.send("tasks.e", { headers: { eta: iso(400) } });
    const c = await h.send("tasks.e");
    await result(h, c);
    expect(ran).toEqual([c]);
    expect(h.logs.some((l) => l.taskId === b && /handed back/.test(l.msg))).toBe(true);
    await Promise.all([result(h, a), result(h, b)]);
    expect(ran.sort()).toEqual([a, b, c].sort());
  });

  it("does not count held ETA messages against the prefetch window", async () => {
    h = harness();
    const ran: string[] = [];
    const t = defineTask("tasks.p");
    const w = h.worker({ concurrency: 1, prefetchMultiplier: 2 }).register(t, (ctx) => void ran.push(ctx.id));
    await w.start();
    const held = [await h.send("tasks.p", { headers: { eta: iso(600) } }), await h.send("tasks.p", { headers: { eta: iso(600) } })];
    const quick = [await h.send("tasks.p"), await h.send("tasks.p"), await h.send("tasks.p")];
    for (const id of quick) await result(h, id);
    expect(ran).toEqual(quick);
    for (const id of held) await result(h, id);
  });
});
