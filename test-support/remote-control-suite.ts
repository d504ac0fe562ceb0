import { randomUUID } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createClient, createControl, type Client, type ResultBackend, type TaskInfo, type Transport, type WorkerStats } from "@celeriac/core";
import { createWorker, type Worker } from "@celeriac/worker";
import { celeriac } from "../apps/cli/test/cli-helpers.js";
import { runCelery, startPythonWorker, type PythonRun, type PythonWorker } from "./python.js";

/**
 * Celery's remote control between real Python Celery 5.2.6 and a TypeScript worker on one broker:
 * Python's own `celery inspect` / `celery control` against the TS worker, and `celeriac inspect`
 * against both. Run by each transport package that has exchanges, against its real server.
 */
export interface RemoteControlSuiteOptions {
  /** The broker URL, once the server runs (the suite's beforeAll calls it). */
  brokerUrl(): string;
  transport(): Transport;
  resultBackend(): ResultBackend;
  /** Result backend URL for the Python worker, or undefined for none. */
  pythonResultUrl?(): string | undefined;
}

type Run = PythonRun;

/** `python -m celery -A interop_app <args>`, with the broker in CELERIAC_BROKER_URL. */
function celery(brokerUrl: string, args: string[], timeoutMs = 30_000): Promise<Run> {
  return runCelery({ brokerUrl }, args, timeoutMs);
}

const show = (r: Run) => `exit ${String(r.code)}\n--- stdout\n${r.stdout}\n--- stderr\n${r.stderr}`;

/** The JSON line `celery inspect --json` prints. */
function jsonOf(r: Run): Record<string, unknown> {
  const line = r.stdout.trim().split("\n").pop() ?? "";
  try {
    return JSON.parse(line) as Record<string, unknown>;
  } catch {
    throw new Error(`not JSON:\n${show(r)}`);
  }
}

async function until(what: string, check: () => boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for: ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

export function remoteControlSuite(name: string, o: RemoteControlSuiteOptions): void {
  describe(`remote control on ${name}: Celery's CLI and celeriac's against a TypeScript worker`, () => {
    const tag = randomUUID().slice(0, 8);
    const host = `ts-rc-${tag}@localhost`;
    const queue = `rc-ts-${tag}`;
    let worker: Worker;
    let workerTransport: Transport;
    let workerBackend: ResultBackend;
    let clientTransport: Transport;
    let clientBackend: ResultBackend;
    let client: Client;
    let release: () => void = () => {};
    const ran: string[] = [];

    beforeAll(async () => {
      workerTransport = o.transport();
      workerBackend = o.resultBackend();
      await workerTransport.connect();
      worker = createWorker({
        transport: workerTransport,
        resultBackend: workerBackend,
        queues: [queue],
        hostname: host,
        concurrency: 1,
        prefetchMultiplier: 4,
        silent: true,
      });
      // Runs until the test releases it (or a revoke with terminate aborts it).
      worker.register("ts.block", async (ctx) => {
        ran.push(ctx.id);
        await new Promise<void>((resolve, reject) => {
          release = resolve;
          ctx.signal.addEventListener("abort", () => reject(ctx.signal.reason as Error));
        });
        return "released";
      });
      worker.register("ts.record", (ctx) => {
        ran.push(ctx.id);
        return "ran";
      });
      await worker.start();
      clientTransport = o.transport();
      clientBackend = o.resultBackend();
      await clientTransport.connect();
      client = createClient({ transport: clientTransport, resultBackend: clientBackend, defaultQueue: queue });
    }, 60_000);

    afterAll(async () => {
      release();
      await worker?.stop({ graceMs: 0 });
      await workerTransport?.close();
      await workerBackend?.close();
      await clientTransport?.close();
      await clientBackend?.close();
    }, 30_000);

    it("`celery inspect ping` (Python's CLI) gets a pong from the TS worker; -d names it", async () => {
      const all = await celery(o.brokerUrl(), ["inspect", "ping", "-t", "2"]);
      expect(all.code, show(all)).toBe(0);
      expect(all.stdout).toContain(`->  ${host}: OK\n        pong`);
      const one = await celery(o.brokerUrl(), ["inspect", "ping", "-d", host, "-t", "5"]);
      expect(one.code, show(one)).toBe(0);
      expect(one.stdout).toContain(`->  ${host}: OK`);
      expect(one.stdout).toContain("1 node online.");
      const other = await celery(o.brokerUrl(), ["inspect", "ping", "-d", `nobody-${tag}@localhost`]);
      expect(other.code, show(other)).toBe(69);
      expect(other.stdout).not.toContain(host);
    }, 30_000);

    it("`celery inspect active / stats / registered / reserved` show the TS worker's running and waiting tasks", async () => {
      const running = await client.sendTask("ts.block", { args: [1, "two"], kwargs: { k: true } });
      await until("ts.block running", () => worker.heldTasks().some((t) => t.id === running.id && t.phase === "running"));
      const waiting = await client.sendTask("ts.record", { args: [3] });
      await until("ts.record reserved", () => worker.heldTasks().some((t) => t.id === waiting.id && t.phase === "reserved"));

      const active = await celery(o.brokerUrl(), ["inspect", "active", "--json", "-d", host, "-t", "5"]);
      expect(active.code, show(active)).toBe(0);
      const tasks = jsonOf(active)[host] as TaskInfo[];
      expect(tasks).toHaveLength(1);
      expect(tasks[0]).toMatchObject({
        id: running.id,
        name: "ts.block",
        type: "ts.block",
        args: [1, "two"],
        kwargs: { k: true },
        hostname: host,
        acknowledged: true,
      });
      expect(tasks[0]!.delivery_info.routing_key).toBe(queue);
      expect(typeof tasks[0]!.time_start).toBe("number");
      expect(Math.abs(tasks[0]!.time_start! * 1000 - Date.now())).toBeLessThan(60_000);

      const reserved = await celery(o.brokerUrl(), ["inspect", "reserved", "--json", "-d", host, "-t", "5"]);
      expect(
        (jsonOf(reserved)[host] as TaskInfo[]).map((t) => t.id),
        show(reserved),
      ).toEqual([waiting.id]);

      const stats = await celery(o.brokerUrl(), ["inspect", "stats", "--json", "-d", host, "-t", "5"]);
      expect(stats.code, show(stats)).toBe(0);
      const s = jsonOf(stats)[host] as WorkerStats;
      expect(s.pool["max-concurrency"]).toBe(1);
      expect(s.prefetch_count).toBe(4);
      expect(s.total).toMatchObject({ "ts.block": 1 });
      expect(s.pid).toBe(process.pid);
      expect(s.broker.transport).toBe(workerTransport.name);
      expect(s.uptime).toBeGreaterThanOrEqual(0);

      const text = await celery(o.brokerUrl(), ["inspect", "stats", "-d", host, "-t", "5"]);
      expect(text.stdout, show(text)).toContain('"max-concurrency": 1');

      const registered = await celery(o.brokerUrl(), ["inspect", "registered", "-d", host, "-t", "5"]);
      expect(registered.stdout, show(registered)).toContain(`->  ${host}: OK\n    * ts.block\n    * ts.record`);

      release();
      expect(await running.get({ timeoutMs: 10_000 })).toBe("released");
      expect(await waiting.get({ timeoutMs: 10_000 })).toBe("ran");
    }, 60_000);

    it("`celery control revoke <id>` keeps a task queued behind a busy TS worker from running: REVOKED", async () => {
      const busy = await client.sendTask("ts.block");
      await until("ts.block running", () => worker.heldTasks().some((t) => t.id === busy.id && t.phase === "running"));
      const victim = await client.sendTask("ts.record");
      await until("victim reserved", () => worker.heldTasks().some((t) => t.id === victim.id));
      const r = await celery(o.brokerUrl(), ["control", "revoke", victim.id, "-t", "2"]);
      expect(r.code, show(r)).toBe(0);
      expect(r.stdout).toContain(`->  ${host}: OK\n        tasks ${victim.id} flagged as revoked`);
      expect(worker.isRevoked(victim.id)).toBe(true);
      release();
      expect(await busy.get({ timeoutMs: 10_000 })).toBe("released");
      const err = await victim.get({ timeoutMs: 10_000 }).catch((e: unknown) => e);
      expect((err as { code?: string }).code, String(err)).toBe("task_revoked");
      expect(ran).not.toContain(victim.id);
    }, 30_000);

    it("`celery inspect scheduled` lists a countdown task on the TS worker; revoked, it does not run at its ETA", async () => {
      // 10 s: Python's `celery inspect` alone can take several seconds to start on a loaded machine,
      // and the task must still be waiting for its ETA when it asks.
      const later = await client.sendTask("ts.record", { countdownMs: 10_000 });
      await until("held for its ETA", () => worker.heldTasks().some((t) => t.id === later.id && t.phase === "scheduled"));
      const scheduled = await celery(o.brokerUrl(), ["inspect", "scheduled", "--json", "-d", host, "-t", "5"]);
      const entries = jsonOf(scheduled)[host] as { eta: string; priority: number; request: TaskInfo }[];
      expect(
        entries.map((e) => e.request.id),
        show(scheduled),
      ).toEqual([later.id]);
      expect(Math.abs(Date.parse(entries[0]!.eta) - (Date.now() + 10_000))).toBeLessThan(10_000);
      const r = await celery(o.brokerUrl(), ["control", "revoke", later.id, "-d", host, "-t", "5"]);
      expect(r.stdout, show(r)).toContain(`tasks ${later.id} flagged as revoked`);
      const err = await later.get({ timeoutMs: 25_000 }).catch((e: unknown) => e);
      expect((err as { code?: string }).code, String(err)).toBe("task_revoked");
      expect(ran).not.toContain(later.id);
    }, 45_000);

    it("`celery control revoke --terminate`-style: celeriac control revoke --terminate aborts the running task", async () => {
      const busy = await client.sendTask("ts.block");
      await until("ts.block running", () => worker.heldTasks().some((t) => t.id === busy.id && t.phase === "running"));
      const r = await celeriac(["control", "revoke", busy.id, "--terminate", "-b", o.brokerUrl(), "-d", host, "-t", "5"]);
      expect(r.code, `${r.stdout}\n${r.stderr}`).toBe(0);
      expect(r.stdout).toContain(`->  ${host}: OK\n        terminate: ${busy.id}`);
      const err = await busy.get({ timeoutMs: 10_000 }).catch((e: unknown) => e);
      expect((err as { code?: string }).code, String(err)).toBe("task_revoked");
    }, 30_000);

    it("`celeriac inspect ping` and the control client get replies from a Python worker and the TS worker", async () => {
      let py: PythonWorker | null = null;
      try {
        const resultUrl = o.pythonResultUrl?.();
        py = await startPythonWorker({ brokerUrl: o.brokerUrl(), ...(resultUrl ? { resultUrl } : {}), queues: [`rc-py-${tag}`] });
        const pyHost = py.child.spawnargs[py.child.spawnargs.indexOf("-n") + 1] ?? "";
        expect(pyHost).toMatch(/^py-\d+-\d+@localhost$/);

        const r = await celeriac(["inspect", "ping", "-t", "2", "-b", o.brokerUrl()]);
        expect(r.code, `${r.stdout}\n${r.stderr}\n${py.output()}`).toBe(0);
        expect(r.stdout).toContain(`->  ${host}: OK\n        pong`);
        expect(r.stdout).toContain(`->  ${pyHost}: OK\n        pong`);
        expect(r.stdout).toContain("2 nodes online.");

        const j = await celeriac(["inspect", "stats", "--json", "-t", "2", "-b", o.brokerUrl()]);
        const byHost = JSON.parse(j.stdout.trim()) as Record<string, WorkerStats>;
        expect(Object.keys(byHost).sort()).toEqual([host, pyHost].sort());
        expect(byHost[pyHost]!.pool["max-concurrency"]).toBe(1);
        expect(byHost[host]!.pool["max-concurrency"]).toBe(1);

        const active = await celeriac(["inspect", "active", "-t", "2", "-b", o.brokerUrl()]);
        expect(active.stdout, active.stderr).toContain(`->  ${host}: OK\n    - empty -`);
        expect(active.stdout).toContain(`->  ${pyHost}: OK\n    - empty -`);

        const control = createControl(clientTransport, { timeoutMs: 2000 });
        try {
          const pongs = await control.inspect.ping();
          expect(pongs).toEqual({ [host]: { ok: "pong" }, [pyHost]: { ok: "pong" } });
          const onlyPy = await control.inspect.registered({ destination: [pyHost] });
          expect(Object.keys(onlyPy)).toEqual([pyHost]);
          expect(onlyPy[pyHost]).toContain("pytasks.add");
        } finally {
          await control.close();
        }
      } finally {
        await py?.stop();
      }
    }, 60_000);

    it("`celery control shutdown -d <ts host>` stops that TS worker and no other; a worker with remote control off does not answer", async () => {
      const otherHost = `ts-rc-other-${tag}@localhost`;
      const otherTransport = o.transport();
      await otherTransport.connect();
      const other = createWorker({ transport: otherTransport, queues: [`${queue}-other`], hostname: otherHost, silent: true });
      await other.start();
      // Remote control off (Celery's worker_enable_remote_control = False): it must stay silent below.
      const mute = createWorker({
        transport: otherTransport,
        queues: [`${queue}-mute`],
        hostname: `ts-rc-mute-${tag}@localhost`,
        silent: true,
        remoteControl: false,
      });
      await mute.start();
      try {
        const r = await celery(o.brokerUrl(), ["control", "shutdown", "-d", host]);
        // Celery's workers do not answer shutdown, so its CLI reports no replies (exit 69).
        expect(r.stderr, show(r)).toContain("No nodes replied");
        await until("TS worker stopped", () => worker.state === "stopped", 15_000);
        expect(other.state).toBe("running");
        const control = createControl(clientTransport);
        try {
          expect(await control.inspect.ping()).toEqual({ [otherHost]: { ok: "pong" } });
        } finally {
          await control.close();
        }
      } finally {
        await mute.stop({ graceMs: 0 });
        await other.stop({ graceMs: 0 });
        await otherTransport.close();
      }
    }, 40_000);
  });
}
