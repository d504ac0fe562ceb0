import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { FleetState } from "@celeriac/dashboard";
import { openTaskStore } from "../src/store.js";

const ev = (type: string, uuid: string, ts: number, extra: Record<string, unknown> = {}) => ({
  type,
  uuid,
  timestamp: ts,
  hostname: "w1@h",
  clock: 1,
  ...extra,
});

describe("FleetState: Celery's merge rules", () => {
  it("a late task-received after task-succeeded fills in name and args but keeps SUCCESS (celery/events/state.py)", () => {
    const s = new FleetState();
    s.ingest(ev("task-started", "a", 10));
    s.ingest(ev("task-succeeded", "a", 11, { result: "5", runtime: 0.5 }));
    s.ingest(ev("task-received", "a", 9, { name: "t.add", args: "(2, 3)", kwargs: "{}", retries: 0 }));
    expect(s.task("a")).toMatchObject({
      state: "SUCCESS",
      name: "t.add",
      args: "(2, 3)",
      result: "5",
      runtime: 0.5,
      received: 9,
      started: 10,
      succeeded: 11,
      worker: "w1@h",
    });
    expect(s.task("a")!.timeline.map((e) => e.type)).toEqual(["task-started", "task-succeeded", "task-received"]);
  });

  it("a retried task goes back to RETRY and then on to SUCCESS", () => {
    const s = new FleetState();
    s.ingest(ev("task-received", "r", 1, { name: "t.r", retries: 0 }));
    s.ingest(ev("task-started", "r", 2));
    s.ingest(ev("task-retried", "r", 3, { exception: "Retry('x')", traceback: "tb" }));
    expect(s.task("r")!.state).toBe("RETRY");
    s.ingest(ev("task-received", "r", 4, { retries: 1 }));
    expect(s.task("r")!.state).toBe("RECEIVED");
    s.ingest(ev("task-started", "r", 5));
    s.ingest(ev("task-succeeded", "r", 6, { result: "'ok'" }));
    expect(s.task("r")).toMatchObject({ state: "SUCCESS", retries: 1, result: "'ok'" });
  });

  it("failed tasks keep exception and traceback; counts and throughput per second follow", () => {
    let now = 100_500;
    const s = new FleetState({ now: () => now });
    s.ingest(ev("task-failed", "f", 100.2, { exception: "ValueError('x')", traceback: "Traceback ...\nValueError: x" }));
    s.ingest(ev("task-succeeded", "g", 100.7));
    s.ingest(ev("task-succeeded", "h", 99.1));
    expect(s.task("f")).toMatchObject({ state: "FAILURE", exception: "ValueError('x')" });
    expect(s.workerRecord("w1@h")).toMatchObject({ succeeded: 2, failed: 1 });
    const tp = s.throughput(3);
    expect(tp.t).toEqual([98, 99, 100]);
    expect(tp.succeeded).toEqual([0, 1, 1]);
    expect(tp.failed).toEqual([0, 0, 1]);
    now = 100_500 + 700_000; // long after: the ring slots are stale and read as zero
    expect(s.throughput(3).succeeded).toEqual([0, 0, 0]);
  });

  it("workers: language from sw_ident, alive until 2 x freq without a heartbeat, offline at worker-offline", () => {
    let now = 1_000_000;
    const s = new FleetState({ now: () => now });
    s.ingest({
      type: "worker-online",
      hostname: "py@h",
      timestamp: 1000,
      freq: 2,
      sw_ident: "py-celery",
      pid: 7,
      active: 0,
      processed: 0,
      loadavg: [0.1, 0.2, 0.3],
    });
    s.ingest({ type: "worker-heartbeat", hostname: "ts@h", timestamp: 1000, freq: 2, sw_ident: "celeriac", active: 1, processed: 4 });
    const [py, ts] = s.listWorkers();
    expect(py).toMatchObject({ hostname: "py@h", language: "python", pid: 7, loadavg: [0.1, 0.2, 0.3] });
    expect(ts).toMatchObject({ hostname: "ts@h", language: "typescript", active: 1, processed: 4 });
    expect(s.isAlive(py!)).toBe(true);
    now += 4_001;
    expect(s.isAlive(py!)).toBe(false);
    s.ingest({ type: "worker-heartbeat", hostname: "py@h", timestamp: 1005, freq: 2 });
    expect(s.isAlive(py!)).toBe(true);
    s.ingest({ type: "worker-offline", hostname: "py@h", timestamp: 1006, freq: 2 });
    expect(s.isAlive(py!)).toBe(false);
  });

  it("a worker without events (no -E) is online while it answers remote control", () => {
    let now = 1_000_000;
    const s = new FleetState({ now: () => now, inspectAliveMs: 15_000 });
    s.updateFromInspect("quiet@h", { stats: { pid: 9, pool: { "max-concurrency": 4 } }, registered: ["t.a"], queues: ["celery"] });
    const w = s.workerRecord("quiet@h")!;
    expect(w).toMatchObject({ pid: 9, concurrency: 4, registered: ["t.a"], queues: ["celery"], lastHeartbeat: null });
    expect(s.isAlive(w)).toBe(true);
    now += 15_001;
    expect(s.isAlive(w)).toBe(false);
    s.ingest({ type: "worker-offline", hostname: "quiet@h", timestamp: now / 1000, freq: 2 });
    now += 5_000;
    s.updateFromInspect("quiet@h", {});
    expect(s.isAlive(w)).toBe(true);
  });

  it("ignores events without a type or uuid, and counts every event by type", () => {
    const s = new FleetState();
    s.ingest({ nothing: 1 });
    s.ingest({ type: "task-received" });
    s.ingest({ type: "celeriac-probe", hostname: "x" });
    expect(s.taskCount).toBe(0);
    expect(s.eventCounts.get("task-received")).toBe(1);
  });
});

describe("FleetState: bounded", () => {
  it("evicts the oldest finished tasks first and never holds more than maxTasks", () => {
    const s = new FleetState({ maxTasks: 100 });
    // Ten old tasks still running, then finished ones.
    for (let i = 0; i < 10; i++) s.ingest(ev("task-started", `run-${i}`, i));
    for (let i = 0; i < 500; i++) {
      s.ingest(ev("task-received", `t-${i}`, 100 + i));
      s.ingest(ev("task-succeeded", `t-${i}`, 100 + i));
      expect(s.taskCount).toBeLessThanOrEqual(100);
    }
    for (let i = 0; i < 10; i++) expect(s.task(`run-${i}`)?.state).toBe("STARTED");
    expect(s.task("t-499")).toBeDefined();
    expect(s.task("t-0")).toBeUndefined();
    expect(s.evicted).toBe(510 - s.taskCount);
    // Pages stay consistent after evictions: newest first, no evicted task.
    const page = s.listTasks({}, 0, 5);
    expect(page.total).toBe(s.taskCount);
    expect(page.tasks.map((t) => t.uuid)).toEqual(["t-499", "t-498", "t-497", "t-496", "t-495"]);
  });

  it("when nothing is finished, evicts the oldest of any state so the bound holds", () => {
    const s = new FleetState({ maxTasks: 50 });
    for (let i = 0; i < 200; i++) s.ingest(ev("task-received", `q-${i}`, i));
    expect(s.taskCount).toBeLessThanOrEqual(50);
    expect(s.task("q-199")).toBeDefined();
    expect(s.task("q-0")).toBeUndefined();
  });
});

describe("FleetState: listing", () => {
  const s = new FleetState();
  for (let i = 0; i < 1000; i++) {
    s.ingest(ev("task-received", `id-${i}`, 1000 + i, { name: i % 2 ? "t.odd" : "t.even", args: `(${i},)`, hostname: i % 3 ? "a@h" : "b@h" }));
    if (i % 5 === 0) s.ingest(ev("task-failed", `id-${i}`, 1000 + i, { hostname: i % 3 ? "a@h" : "b@h" }));
  }
  it("filters by state, name, worker, time range and search, with offset and total", () => {
    expect(s.listTasks({ state: "FAILURE" }, 0, 10).total).toBe(200);
    expect(s.listTasks({ name: "t.odd" }, 0, 10).total).toBe(500);
    expect(s.listTasks({ worker: "b@h" }, 0, 10).total).toBe(334);
    expect(s.listTasks({ receivedFrom: 1100, receivedTo: 1199 }, 0, 500).total).toBe(100);
    expect(s.listTasks({ search: "(777,)" }, 0, 10).tasks.map((t) => t.uuid)).toEqual(["id-777"]);
    expect(s.listTasks({ search: "id-12" }, 0, 100).total).toBe(11); // id-12, id-120..129
    const p2 = s.listTasks({ name: "t.even", state: "FAILURE" }, 10, 10);
    expect(p2.total).toBe(100);
    expect(p2.tasks[0]!.uuid).toBe("id-890");
    expect(s.listTasks({}, 0, 3, "received").tasks.map((t) => t.uuid)).toEqual(["id-0", "id-1", "id-2"]);
    expect(s.listTasks({}, 0, 1, "-received").tasks[0]!.uuid).toBe("id-999");
  });
  it("finds children by parent id", () => {
    const c = new FleetState();
    c.ingest(ev("task-received", "p", 1));
    c.ingest(ev("task-received", "c1", 2, { parent_id: "p", root_id: "p" }));
    c.ingest(ev("task-received", "c2", 3, { parent_id: "p", root_id: "p" }));
    expect(c.children("p").map((t) => t.uuid)).toEqual(["c1", "c2"]);
  });
});

describe("SQLite persistence", () => {
  it("a new state restores the saved tasks, up to the cap, newest kept", async () => {
    const dir = mkdtempSync(join(tmpdir(), "dash-store-"));
    const file = join(dir, "history.db");
    const log = () => undefined;
    try {
      const a = new FleetState({ maxTasks: 20 });
      const storeA = await openTaskStore(file, a, { intervalMs: 60_000, log });
      for (let i = 0; i < 30; i++) {
        a.ingest(ev("task-received", `p-${i}`, i, { name: "t.x", args: `(${i},)` }));
        a.ingest(ev("task-succeeded", `p-${i}`, i + 0.5, { result: String(i * 2) }));
      }
      await storeA.close();
      const b = new FleetState({ maxTasks: 20 });
      const storeB = await openTaskStore(file, b, { intervalMs: 60_000, log });
      expect(b.taskCount).toBe(20);
      expect(b.task("p-29")).toMatchObject({ state: "SUCCESS", result: "58", args: "(29,)" });
      expect(b.task("p-9")).toBeUndefined();
      expect(b.listTasks({}, 0, 1).tasks[0]!.uuid).toBe("p-29");
      await storeB.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
