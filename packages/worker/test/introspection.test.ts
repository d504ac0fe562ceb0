import { afterEach, describe, expect, it } from "vitest";
import { createWorker, TaskRevokedError, type WorkerEvent } from "../src/index.js";
import { harness, result, until, type Harness } from "./helpers.js";

let h: Harness;
afterEach(async () => h?.cleanup());

/** A promise the test resolves by hand, to keep handlers running while it looks at the worker. */
function gate(): { wait: Promise<void>; open(): void } {
  let open!: () => void;
  const wait = new Promise<void>((resolve) => (open = resolve));
  return { wait, open };
}

describe("revoke", () => {
  it("does not run a revoked task that arrives later: REVOKED is stored, the message acked", async () => {
    h = harness();
    let runs = 0;
    const w = h.worker().register("tasks.x", () => ++runs);
    await w.start();
    w.revoke(["revoked-id"]);
    expect(w.isRevoked("revoked-id")).toBe(true);
    expect(w.isRevoked("other-id")).toBe(false);
    await h.send("tasks.x", { id: "revoked-id" });
    const other = await h.send("tasks.x");
    expect((await result(h, "revoked-id")).result).toEqual({ exc_type: "TaskRevokedError", exc_message: ["revoked"], exc_module: "celery.exceptions" });
    expect((await result(h, other)).status).toBe("SUCCESS");
    expect(runs).toBe(1);
    expect(w.counters.revoked).toBe(1);
    await until("acked", () => h.transport.inflightCount("celery") === 0);
    expect(h.transport.size("celery")).toBe(0);
  });

  it("revokes a task waiting for a slot before it starts", async () => {
    h = harness();
    const g = gate();
    const ran: string[] = [];
    const w = h.worker({ concurrency: 1 }).register("tasks.block", async (ctx) => {
      ran.push(ctx.id);
      await g.wait;
    });
    await w.start();
    const first = await h.send("tasks.block");
    const second = await h.send("tasks.block");
    await until("second reserved", () => w.heldTasks().some((t) => t.id === second && t.phase === "reserved"));
    w.revoke([second]);
    g.open();
    expect((await result(h, first)).status).toBe("SUCCESS");
    expect((await result(h, second)).status).toBe("REVOKED");
    expect(ran).toEqual([first]);
  });

  it("with terminate, aborts a running task's signal and reports it REVOKED (terminated)", async () => {
    h = harness();
    const events: WorkerEvent[] = [];
    let reason: unknown = null;
    const w = h.worker().register("tasks.forever", (ctx) => {
      return new Promise((_, reject) =>
        ctx.signal.addEventListener("abort", () => {
          reason = ctx.signal.reason;
          reject(ctx.signal.reason as Error);
        }),
      );
    });
    w.subscribe((e) => events.push(e));
    await w.start();
    const id = await h.send("tasks.forever");
    await until("running", () => w.heldTasks().some((t) => t.id === id && t.phase === "running"));
    expect(w.revoke([id, "not-running"], { terminate: true })).toEqual([id]);
    const meta = await result(h, id);
    expect(meta.status).toBe("REVOKED");
    expect(meta.result).toMatchObject({ exc_type: "TaskRevokedError", exc_message: ["terminated"] });
    expect(reason).toBeInstanceOf(TaskRevokedError);
    await until("task-revoked event", () => events.some((e) => e.type === "task-revoked"));
    expect(events.find((e) => e.type === "task-revoked")).toMatchObject({ taskId: id, expired: false, terminated: true });
    expect(events.some((e) => e.type === "task-failed")).toBe(false);
    expect(w.counters.inFlight).toBe(0);
  });
});

describe("heldTasks and registeredTasks", () => {
  it("reports running, reserved and scheduled messages with their arguments", async () => {
    h = harness();
    const g = gate();
    const w = h.worker({ concurrency: 1 }).register("tasks.b", async () => g.wait);
    w.register("tasks.a", () => null);
    await w.start();
    expect(w.registeredTasks()).toEqual(["tasks.a", "tasks.b"]);
    const running = await h.send("tasks.b", { args: [1, "x"], kwargs: { k: true } });
    const reserved = await h.send("tasks.b");
    const scheduled = await h.send("tasks.a", { headers: { eta: new Date(Date.now() + 60_000).toISOString() } });
    await until("all three held", () => w.heldTasks().length === 3);
    const byId = new Map(w.heldTasks().map((t) => [t.id, t]));
    expect(byId.get(running)).toMatchObject({ name: "tasks.b", phase: "running", args: [1, "x"], kwargs: { k: true }, queue: "celery", acknowledged: true });
    expect(byId.get(running)?.startedAt).toEqual(expect.any(Number));
    expect(byId.get(reserved)).toMatchObject({ phase: "reserved", startedAt: null, acknowledged: false });
    expect(byId.get(scheduled)).toMatchObject({ name: "tasks.a", phase: "scheduled" });
    expect(byId.get(scheduled)?.eta).not.toBeNull();
    g.open();
  });
});

describe("subscribe", () => {
  it("delivers every task event to each listener until it unsubscribes; a throwing listener is logged", async () => {
    h = harness();
    const w = h.worker().register("tasks.ok", (_ctx, x: unknown) => x);
    w.register("tasks.bad", () => {
      throw new TypeError("nope");
    });
    const seen: WorkerEvent[] = [];
    const unsubscribe = w.subscribe((e) => seen.push(e));
    w.subscribe(() => {
      throw new Error("listener bug");
    });
    await w.start();
    const ok = await h.send("tasks.ok", { args: [42] });
    const bad = await h.send("tasks.bad");
    await result(h, ok);
    await result(h, bad);
    await until("events", () => seen.filter((e) => e.type === "task-succeeded" || e.type === "task-failed").length === 2);
    const succeeded = seen.find((e) => e.type === "task-succeeded" && e.taskId === ok);
    expect(succeeded).toMatchObject({ task: "tasks.ok", queue: "celery", result: 42, runtimeMs: expect.any(Number), timestamp: expect.any(Number) });
    expect(seen.find((e) => e.type === "task-received" && e.taskId === ok)).toMatchObject({ args: [42], kwargs: {}, retries: 0 });
    expect(seen.find((e) => e.type === "task-started" && e.taskId === ok)).toMatchObject({ waitMs: expect.any(Number) });
    expect(seen.find((e) => e.type === "task-failed")).toMatchObject({ taskId: bad, excType: "TypeError", exception: "TypeError('nope')" });
    expect(h.logs.some((r) => r.msg === "event listener threw")).toBe(true);
    unsubscribe();
    const count = seen.length;
    await result(h, await h.send("tasks.ok", { args: [1] }));
    expect(seen.length).toBe(count);
  });
});

describe("subscribe to some event types", () => {
  it("delivers only the named types, and refuses a type that does not exist", async () => {
    h = harness();
    const w = h.worker().register("tasks.ok", (_ctx, x: unknown) => x);
    const started: WorkerEvent[] = [];
    const all: WorkerEvent[] = [];
    w.subscribe((e) => started.push(e), ["task-started"]);
    w.subscribe((e) => all.push(e));
    expect(() => w.subscribe(() => undefined, ["task-begun" as never])).toThrow(/unknown event type "task-begun"/);
    expect(() => w.subscribe(() => undefined, "task-started" as never)).toThrow(/must be an array/);
    await w.start();
    const id = await h.send("tasks.ok", { args: [7] });
    await result(h, id);
    await until("task-succeeded seen", () => all.some((e) => e.type === "task-succeeded"));
    expect(started.map((e) => e.type)).toEqual(["task-started"]);
    expect(started[0]).toMatchObject({ taskId: id, task: "tasks.ok" });
    expect(all.map((e) => e.type)).toEqual(["task-received", "task-started", "task-succeeded"]);
  });
});

describe("events and remote control options", () => {
  it("refuses events or remote control on a transport without exchanges, and leaves remote control off there by default", () => {
    h = harness();
    expect(() => createWorker({ transport: h.transport, events: true })).toThrow(/events need a transport with exchanges/);
    expect(() => createWorker({ transport: h.transport, remoteControl: true })).toThrow(/remote control needs a transport with exchanges/);
    expect(() => createWorker({ transport: h.transport, events: { heartbeatMs: 100, color: "red" } as never })).toThrow(/color/);
    expect(() => createWorker({ transport: h.transport })).not.toThrow();
  });
});
