import { CeleriacError } from "@celeriac/core";
import { ConnectionLifecycle } from "@celeriac/core/transport";
import { afterEach, describe, expect, it } from "vitest";
import { delay, harness, result, type Harness } from "./helpers.js";

let h: Harness;
afterEach(async () => h?.cleanup());

/** The memory transport, with a lifecycle the test drives as a broker outage would. */
function withLifecycle(h: Harness) {
  const lifecycle = new ConnectionLifecycle("memory");
  lifecycle.report({ type: "connected" });
  const transport = new Proxy(h.transport, {
    get(target, prop) {
      if (prop === "lifecycle") return lifecycle;
      const value: unknown = Reflect.get(target, prop, target);
      return typeof value === "function" ? (value as (...a: unknown[]) => unknown).bind(target) : value;
    },
  });
  return { lifecycle, transport };
}

describe("broker outage limit", () => {
  it("fails the worker once the broker has been unreachable for brokerOutageLimitMs", async () => {
    h = harness();
    const { lifecycle, transport } = withLifecycle(h);
    const w = h.worker({ transport, brokerOutageLimitMs: 200 }).register("tasks.x", () => 1);
    await w.start();
    const t0 = Date.now();
    lifecycle.lost(new Error("ECONNREFUSED"));
    await expect(w.closed).rejects.toThrow(/unreachable for 0.2 s \(brokerOutageLimitMs\)/);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(190);
    expect(w.state).toBe("failed");
    expect(h.logs.some((l) => l.level === "error" && /unreachable/.test(String(l["error"])))).toBe(true);
  });

  it("an outage that ends before the limit leaves the worker running", async () => {
    h = harness();
    const { lifecycle, transport } = withLifecycle(h);
    const w = h.worker({ transport, brokerOutageLimitMs: 200 }).register("tasks.x", () => 1);
    await w.start();
    lifecycle.lost(new Error("ECONNRESET"));
    await delay(100);
    lifecycle.report({ type: "connected" });
    await delay(250);
    expect(w.state).toBe("running");
    expect((await result(h, await h.send("tasks.x"))).status).toBe("SUCCESS");
  });

  it("a transport that gives up (failed) fails the worker at once", async () => {
    h = harness();
    const { lifecycle, transport } = withLifecycle(h);
    const w = h.worker({ transport }).register("tasks.x", () => 1);
    await w.start();
    lifecycle.report({ type: "failed", error: new CeleriacError("connection", "memory: access refused") });
    await expect(w.closed).rejects.toThrow(/access refused/);
    expect(w.state).toBe("failed");
  });

  it("refuses a brokerOutageLimitMs that is not a positive integer or Infinity", () => {
    h = harness();
    expect(() => h.worker({ brokerOutageLimitMs: -1 })).toThrow(/brokerOutageLimitMs/);
    expect(() => h.worker({ brokerOutageLimitMs: 1.5 })).toThrow(/brokerOutageLimitMs/);
    expect(() => h.worker({ brokerOutageLimitMs: Infinity })).not.toThrow();
  });
});
