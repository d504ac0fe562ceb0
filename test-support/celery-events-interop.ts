import { randomUUID } from "node:crypto";
import { expect } from "vitest";
import { createClient, Reject, type Transport } from "@celeriac/core";
import { createWorker, type Worker, type WorkerEvent } from "@celeriac/worker";
import { buildCeleryEvent, celeryEventExchange, celeryEventMessage } from "../packages/worker/src/celery-events.js";
import { spawnPython, type PythonProcess } from "./python.js";

/**
 * The events interop check, shared by the AMQP and Redis test files: Celery's own
 * `celery events --dump` and Celery's own `app.events.State()` (test-support/python/events_state.py)
 * listen while a Celeriac worker with `events: true` runs a known workload; then their output is
 * checked field by field against what Celery's worker would have sent.
 */

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export type Child = PythonProcess;

/** `celery -A interop_app events --dump` on `brokerUrl`; stop it when done. */
export function startEventDump(brokerUrl: string): Child {
  return spawnPython({ brokerUrl }, ["-m", "celery", "-A", "interop_app", "events", "--dump"]);
}

export async function waitFor(what: string, cond: () => boolean, timeoutMs: number, detail: () => string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}:\n${detail()}`);
    await sleep(50);
  }
}

/**
 * One event as `celery events --dump` prints it (celery/events/dumper.py): `host [utc time] kind: rest`,
 * where kind is `started`/`heartbeat`/`shutdown` for worker events and e.g. `task received`.
 */
export interface DumpedEvent {
  hostname: string;
  time: Date;
  kind: string;
  rest: string;
}

const DUMP_HEAD = /^(\S+) \[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(?:\.\d+)?)\] ([a-z][a-z ]*?)(?::|$)(.*)$/;

/** Splits dumper output into events; a traceback's lines belong to the event before them. */
export function parseDump(output: string): DumpedEvent[] {
  const events: DumpedEvent[] = [];
  for (const line of output.split("\n")) {
    const m = DUMP_HEAD.exec(line);
    if (m) {
      events.push({ hostname: m[1]!, time: new Date(`${m[2]!.replace(" ", "T")}Z`), kind: m[3]!, rest: m[4]! });
    } else if (events.length > 0 && line !== "" && !line.startsWith("-> ")) {
      events[events.length - 1]!.rest += `\n${line}`;
    }
  }
  return events;
}

interface StateTask {
  state: string;
  name: string | null;
  args: string | null;
  kwargs: string | null;
  result: string | null;
  exception: string | null;
  traceback: string | null;
  runtime: number | null;
  retries: number | null;
  eta: string | null;
  expires: string | null;
  root_id: string | null;
  parent_id: string | null;
  worker: string | null;
  rejected: number | null;
}

interface StateSnapshot {
  worker: {
    hostname: string;
    alive: boolean;
    active: number;
    processed: number;
    freq: number;
    heartbeats: number;
    pid: number;
    sw_ident: string;
    sw_ver: string;
    sw_sys: string;
    loadavg: number[];
  } | null;
  tasks: Record<string, StateTask>;
  event_count: number;
}

/** Publishes the test's own marker events (`celeriac-probe`, `celeriac-snapshot`) on celeryev. */
export function markerSender(transport: Transport): (type: string) => Promise<void> {
  const exchange = celeryEventExchange(transport.name);
  const probeHost = { hostname: "probe@celeriac-test", pid: process.pid };
  let clock = 0;
  return async (type) => {
    const { routingKey, message } = celeryEventMessage(buildCeleryEvent(type, {}, probeHost, ++clock, Date.now()));
    await transport.exchanges!.publishToExchange(exchange, routingKey, message);
  };
}

/** Python receivers bind their queues some time after starting: probe until `heard()`. */
export async function probeUntil(marker: (type: string) => Promise<void>, heard: () => boolean, debug: () => string): Promise<void> {
  const deadline = Date.now() + 30_000;
  while (!heard()) {
    if (Date.now() > deadline) throw new Error(`Python event receivers did not come up:\n${debug()}`);
    await marker("celeriac-probe");
    await sleep(250);
  }
}

export interface EventsInteropSetup {
  /** A fresh transport on the private broker (the worker, the client and the probe each get one). */
  makeTransport(): Transport;
  /** The same broker as a URL for Python (kombu). */
  brokerUrl: string;
}

/** Runs the whole scenario; call inside an `it` with a generous timeout (about 60 s). */
export async function runCeleryEventsInterop(setup: EventsInteropSetup): Promise<void> {
  const hostname = `celeriac-events-${randomUUID().slice(0, 8)}@localhost`;
  const queue = `events-${randomUUID().slice(0, 8)}`;
  const dumper = startEventDump(setup.brokerUrl);
  const stateCapture = spawnPython({ brokerUrl: setup.brokerUrl }, ["events_state.py", hostname, "50"]);
  const probeTransport = setup.makeTransport();
  const workerTransport = setup.makeTransport();
  const clientTransport = setup.makeTransport();
  let worker: Worker | null = null;
  const debug = () => `--- dump ---\n${dumper.output()}\n--- state ---\n${stateCapture.output()}`;
  try {
    await probeTransport.connect();
    const marker = markerSender(probeTransport);
    await probeUntil(marker, () => dumper.output().includes("celeriac probe") && stateCapture.output().includes("READY"), debug);

    // The workload: one task per outcome Celery's events distinguish.
    await workerTransport.connect();
    await clientTransport.connect();
    let retryAttempts = 0;
    const settled = new Map<string, WorkerEvent["type"]>();
    worker = createWorker({ transport: workerTransport, queues: [queue], concurrency: 4, events: true, hostname, silent: true })
      .register("evt.add", (_ctx, a, b) => (a as number) + (b as number))
      .register("evt.fail", () => {
        throw new TypeError("boom");
      })
      .register("evt.retry", (ctx) => {
        if (retryAttempts++ === 0) throw ctx.retry({ countdownMs: 100 });
        return "second time";
      })
      .register("evt.reject", () => {
        throw new Reject("no thanks");
      });
    worker.subscribe((e) => {
      if (e.taskId !== null && e.type !== "task-received" && e.type !== "task-started" && e.type !== "task-retried") settled.set(e.taskId, e.type);
    });
    const startedAt = Date.now();
    await worker.start();
    const client = createClient({ transport: clientTransport, defaultQueue: queue });
    const add = (await client.sendTask("evt.add", { args: [2, 3] })).id;
    const fail = (await client.sendTask("evt.fail", { args: [], kwargs: { why: "test" } })).id;
    const retry = (await client.sendTask("evt.retry", { args: ["x"] })).id;
    const reject = (await client.sendTask("evt.reject", { args: [] })).id;
    const unknown = (await client.sendTask("evt.nobody", { args: [1] })).id;
    // Held for its ETA, and expired by then: Celery's Request.revoked path.
    const expired = (await client.sendTask("evt.add", { args: [0, 0], countdownMs: 1200, expires: 400 })).id;
    const all = [add, fail, retry, reject, unknown, expired];
    await waitFor(
      "every task to settle",
      () => all.every((id) => settled.has(id)),
      20_000,
      () => JSON.stringify([...settled]) + debug(),
    );
    // At least one heartbeat (every 2 s) before the snapshot.
    await waitFor("a heartbeat in the dump", () => parseDump(dumper.output()).some((e) => e.hostname === hostname && e.kind === "heartbeat"), 10_000, debug);
    await marker("celeriac-snapshot");
    await waitFor("State's snapshot", () => stateCapture.output().includes("SNAPSHOT "), 10_000, debug);
    await worker.stop();
    await waitFor("worker-offline in the dump", () => parseDump(dumper.output()).some((e) => e.hostname === hostname && e.kind === "shutdown"), 10_000, debug);
    await Promise.race([stateCapture.exited, sleep(10_000)]);
    const finishedAt = Date.now();

    // ---- celery events --dump -----------------------------------------------------------
    const dumped = parseDump(dumper.output()).filter((e) => e.hostname === hostname);
    const one = (kind: string, id: string | null, text?: string): DumpedEvent => {
      const found = dumped.filter((e) => e.kind === kind && (id === null || e.rest.includes(`(${id})`)) && (text === undefined || e.rest.includes(text)));
      if (found.length === 0) throw new Error(`no "${kind}" event for ${id ?? "the worker"} in the dump:\n${debug()}`);
      return found[0]!;
    };
    const expectFields = (e: DumpedEvent, fields: string[]) => {
      for (const f of fields) expect(e.rest, `${e.kind}: ${e.rest}`).toContain(f);
    };
    // Every event carries Celery's common fields, and its timestamp (float seconds, adjusted by
    // utcoffset) reads back as the right UTC time.
    for (const e of dumped) {
      expectFields(e, ["clock=", `pid=${process.pid}`, "utcoffset=", "local_received="]);
      expect(e.time.getTime()).toBeGreaterThanOrEqual(startedAt - 2000);
      expect(e.time.getTime()).toBeLessThanOrEqual(finishedAt + 2000);
    }
    const clocks = dumped.map((e) => Number(/clock=(\d+)/.exec(e.rest)?.[1]));
    expect(new Set(clocks).size).toBe(clocks.length);

    const online = one("started", null, "sw_ident=");
    expectFields(online, ["active=0", "freq=2", "processed=0", "loadavg=[", "sw_ident=celeriac", "sw_sys=", "sw_ver="]);
    expectFields(one("heartbeat", null), ["active=", "freq=2", "processed=", "loadavg=[", "sw_ident=celeriac"]);
    // Accepted tasks: add, fail, retry twice, reject (unknown and expired never start).
    expectFields(one("shutdown", null), ["active=0", "processed=5", "sw_ident=celeriac"]);
    expect(dumped.findIndex((e) => e.kind === "shutdown")).toBe(dumped.length - 1);

    expectFields(one("task received", add), [
      `evt.add(${add}) args=(2, 3) kwargs={}`,
      "retries=0",
      `root_id=${add}`,
      "parent_id=None",
      "eta=None",
      "expires=None",
    ]);
    expectFields(one("task started", add), [`evt.add(${add})`]);
    const succeeded = one("task succeeded", add);
    expectFields(succeeded, ["result=5", "runtime="]);
    expect(Number(/runtime=([0-9.e-]+)/.exec(succeeded.rest)?.[1])).toBeLessThan(5);

    expectFields(one("task received", fail), [`evt.fail(${fail}) args=() kwargs={'why': 'test'}`]);
    expectFields(one("task failed", fail), ["exception=TypeError('boom')", "traceback="]);
    expect(one("task failed", fail).rest).toContain("boom");

    expectFields(one("task received", retry, "retries=0"), [`evt.retry(${retry}) args=('x',)`]);
    expectFields(one("task retried", retry), ["exception=Retry(", "traceback="]);
    expectFields(one("task received", retry, "retries=1"), [`evt.retry(${retry})`]);
    expectFields(one("task succeeded", retry), ["result='second time'"]);

    expectFields(one("task rejected", reject), ["requeue=False"]);
    expectFields(one("task failed", unknown), ["exception=NotRegistered('evt.nobody')"]);

    const expiredReceived = one("task received", expired);
    expect(expiredReceived.rest).toMatch(/eta=\d{4}-\d\d-\d\dT/);
    expect(expiredReceived.rest).toMatch(/expires=\d{4}-\d\d-\d\dT/);
    expectFields(one("task revoked", expired), ["expired=True", "terminated=False", "signum=None"]);
    expect(dumped.some((e) => e.kind === "task started" && e.rest.includes(`(${expired})`))).toBe(false);

    // ---- Celery's State -----------------------------------------------------------------
    const snapLine = stateCapture
      .output()
      .split("\n")
      .find((l) => l.startsWith("SNAPSHOT "));
    const finalLine = stateCapture
      .output()
      .split("\n")
      .find((l) => l.startsWith("FINAL "));
    expect(snapLine, debug()).toBeDefined();
    expect(finalLine, debug()).toBeDefined();
    const snap = JSON.parse(snapLine!.slice("SNAPSHOT ".length)) as StateSnapshot;
    const final = JSON.parse(finalLine!.slice("FINAL ".length)) as StateSnapshot;
    expect(snap.worker).toMatchObject({ hostname, alive: true, active: 0, processed: 5, freq: 2, pid: process.pid, sw_ident: "celeriac" });
    expect(snap.worker!.heartbeats).toBeGreaterThanOrEqual(1);
    expect(final.worker).toMatchObject({ hostname, alive: false });
    const task = (id: string) => {
      const t = final.tasks[id];
      if (!t) throw new Error(`State has no task ${id}: ${JSON.stringify(final.tasks)}`);
      return t;
    };
    expect(task(add)).toMatchObject({
      state: "SUCCESS",
      name: "evt.add",
      args: "(2, 3)",
      kwargs: "{}",
      result: "5",
      retries: 0,
      root_id: add,
      worker: hostname,
    });
    expect(task(add).runtime).toBeGreaterThanOrEqual(0);
    expect(task(fail)).toMatchObject({ state: "FAILURE", name: "evt.fail", exception: "TypeError('boom')", worker: hostname });
    expect(task(fail).traceback).toContain("boom");
    expect(task(retry)).toMatchObject({ state: "SUCCESS", name: "evt.retry", retries: 1, result: "'second time'" });
    // Celery's own precedence (celery/states.py) ranks REJECTED below STARTED, so State keeps
    // STARTED and records the rejection's time, exactly as for a task Celery's worker rejects.
    expect(task(reject)).toMatchObject({ state: "STARTED", name: "evt.reject" });
    expect(task(reject).rejected).toBeGreaterThan(0);
    expect(task(unknown)).toMatchObject({ state: "FAILURE", name: "evt.nobody", exception: "NotRegistered('evt.nobody')" });
    expect(task(expired)).toMatchObject({ state: "REVOKED", name: "evt.add" });
  } finally {
    await worker?.stop().catch(() => undefined);
    await dumper.stop();
    await stateCapture.stop();
    for (const t of [probeTransport, workerTransport, clientTransport]) await t.close().catch(() => undefined);
  }
}
