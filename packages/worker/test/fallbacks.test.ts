import { afterEach, describe, expect, it } from "vitest";
import { harness, result, until, withCapabilities, type Harness } from "./helpers.js";

let h: Harness;
afterEach(async () => h?.cleanup());

const iso = (msFromNow: number) => new Date(Date.now() + msFromNow).toISOString();

describe("transports without delayed delivery or visibility extension", () => {
  it("a retry is published visible at once and held by the worker until its ETA", async () => {
    h = harness();
    const transport = withCapabilities(h.transport, { delayedDelivery: false });
    const runs: number[] = [];
    const w = h.worker({ transport }).register("tasks.r", (ctx) => {
      runs.push(Date.now());
      if (ctx.retries === 0) throw ctx.retry({ countdownMs: 200 });
      return "ok";
    });
    await w.start();
    const id = await h.send("tasks.r");
    await until("retry held", () => w.counters.heldEta === 1);
    expect((await result(h, id)).result).toBe("ok");
    expect(runs[1]! - runs[0]!).toBeGreaterThanOrEqual(195);
  });

  it("past maxHeldEta, ETA messages take regular slots instead of going back to the broker", async () => {
    h = harness();
    const transport = withCapabilities(h.transport, { delayedDelivery: false });
    const ran: string[] = [];
    const w = h.worker({ transport, concurrency: 1, prefetchMultiplier: 2, maxHeldEta: 1 }).register("tasks.e", (ctx) => void ran.push(ctx.id));
    await w.start();
    const etas = [await h.send("tasks.e", { headers: { eta: iso(300) } }), await h.send("tasks.e", { headers: { eta: iso(300) } })];
    const now = await h.send("tasks.e");
    await result(h, now);
    await until("only the ETA messages left", () => w.counters.prefetched === 2);
    // One held in the ETA reserve, the other waiting in the regular window.
    expect(w.counters.heldEta).toBe(1);
    expect(h.logs.some((l) => /handed back/.test(l.msg))).toBe(false);
    for (const id of etas) await result(h, id);
    expect(ran.slice(1).sort()).toEqual([...etas].sort());
  });

  it("does not call extend when the transport cannot", async () => {
    h = harness();
    let extends_ = 0;
    const transport = withCapabilities(h.transport, { visibilityExtension: false });
    const w = h.worker({ transport, etaHeartbeatMs: 10 }).register("tasks.x", () => 1);
    const orig = h.transport.consume.bind(h.transport);
    h.transport.consume = (queues, options) => {
      const consumer = orig(queues, options);
      return {
        stop: () => consumer.stop(),
        async *[Symbol.asyncIterator]() {
          for await (const d of consumer) {
            yield new Proxy(d, {
              get(target, prop) {
                if (prop === "extend") return async (ms: number) => void (extends_++, await target.extend(ms));
                const value: unknown = Reflect.get(target, prop, target);
                return typeof value === "function" ? (value as (...a: unknown[]) => unknown).bind(target) : value;
              },
            });
          }
        },
      };
    };
    await w.start();
    await result(h, await h.send("tasks.x", { headers: { eta: iso(100) } }));
    expect(extends_).toBe(0);
  });
});
