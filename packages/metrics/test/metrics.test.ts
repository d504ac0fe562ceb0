import { createClient, createMemoryResultBackend, createMemoryTransport, type MemoryResultBackend, type MemoryTransport } from "@celeriac/core";
import { instrumentWorker, serveMetrics, type MetricsServer } from "@celeriac/metrics";
import { createWorker, type Worker } from "@celeriac/worker";
import { Registry } from "prom-client";
import { afterEach, describe, expect, it } from "vitest";
import { parsePromText, valueOf, type Sample } from "./prom-text.js";

let transport: MemoryTransport;
let backend: MemoryResultBackend;
const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

function setup(options: { concurrency?: number } = {}): Worker {
  transport = createMemoryTransport();
  backend = createMemoryResultBackend();
  const worker = createWorker({
    transport,
    resultBackend: backend,
    silent: true,
    concurrency: options.concurrency ?? 4,
    prefetchMultiplier: 2,
    hostname: "metrics-test@host",
  });
  cleanups.push(async () => {
    await worker.stop({ graceMs: 0 });
    await transport.close();
  });
  return worker;
}

async function serve(source: Parameters<typeof serveMetrics>[0]): Promise<MetricsServer> {
  const server = await serveMetrics(source, { port: 0 });
  cleanups.push(() => server.close());
  return server;
}

async function scrape(url: string): Promise<Sample[]> {
  const res = await fetch(url);
  expect(res.status).toBe(200);
  expect(res.headers.get("content-type")).toMatch(/^text\/plain; version=0\.0\.4/);
  return parsePromText(await res.text()).samples;
}

async function until(what: string, check: () => Promise<boolean> | boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

const sum = (samples: Sample[], name: string) => samples.filter((s) => s.name === name).reduce((a, s) => a + s.value, 0);

describe("worker metrics over HTTP", () => {
  it("counts a known workload exactly: received, finished by state, run time and wait histograms", async () => {
    const worker = setup();
    let flakyRuns = 0;
    worker
      .register("t.ok", () => "ok")
      .register("t.fail", () => {
        throw new Error("boom");
      })
      .register("t.flaky", (ctx) => {
        flakyRuns++;
        if (ctx.retries < 2) throw ctx.retry({ countdownMs: 0 });
        return "third time";
      })
      .register("t.expiring", () => "never runs");
    const server = await serve(worker);
    expect(server.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/metrics$/);
    await worker.start();
    const client = createClient({ transport, resultBackend: backend });

    const ids: string[] = [];
    for (let i = 0; i < 7; i++) ids.push((await client.sendTask("t.ok")).id);
    for (let i = 0; i < 3; i++) ids.push((await client.sendTask("t.fail")).id);
    ids.push((await client.sendTask("t.flaky")).id);
    ids.push((await client.sendTask("t.unknown")).id);
    ids.push((await client.sendTask("t.expiring", { expires: new Date(Date.now() - 60_000) })).id);
    const states = await Promise.all(ids.map(async (id) => (await backend.waitFor(id, { timeoutMs: 10_000 })).status));
    expect(states.filter((s) => s === "SUCCESS")).toHaveLength(8);
    expect(states.filter((s) => s === "FAILURE")).toHaveLength(4);
    expect(states.filter((s) => s === "REVOKED")).toHaveLength(1);
    expect(flakyRuns).toBe(3);

    // Results are stored just before the event is emitted; wait for the last events to land.
    let samples: Sample[] = [];
    await until("15 finished tasks", async () => {
      samples = await scrape(server.url);
      return sum(samples, "celeriac_tasks_finished_total") >= 15;
    });

    const received = (task: string) => valueOf(samples, "celeriac_tasks_received_total", { task });
    expect([received("t.ok"), received("t.fail"), received("t.flaky"), received("t.unknown"), received("t.expiring")]).toEqual([7, 3, 3, 1, 1]);
    expect(sum(samples, "celeriac_tasks_received_total")).toBe(15);

    const finished = (task: string, state: string) => valueOf(samples, "celeriac_tasks_finished_total", { task, state });
    expect(finished("t.ok", "succeeded")).toBe(7);
    expect(finished("t.fail", "failed")).toBe(3);
    expect(finished("t.flaky", "retried")).toBe(2);
    expect(finished("t.flaky", "succeeded")).toBe(1);
    expect(finished("t.unknown", "rejected")).toBe(1);
    expect(finished("t.expiring", "revoked")).toBe(1);
    expect(sum(samples, "celeriac_tasks_finished_total")).toBe(15);

    // Every run that started is timed, retried runs included; unknown and expired never started.
    const runtimeCount = (task: string) => valueOf(samples, "celeriac_task_runtime_seconds_count", { task });
    expect([runtimeCount("t.ok"), runtimeCount("t.fail"), runtimeCount("t.flaky")]).toEqual([7, 3, 3]);
    expect(runtimeCount("t.unknown")).toBeUndefined();
    expect(runtimeCount("t.expiring")).toBeUndefined();
    expect(valueOf(samples, "celeriac_task_runtime_seconds_bucket", { task: "t.ok", le: "+Inf" })).toBe(7);
    const waitCount = (task: string) => valueOf(samples, "celeriac_task_queue_wait_seconds_count", { task });
    expect([waitCount("t.ok"), waitCount("t.fail"), waitCount("t.flaky")]).toEqual([7, 3, 3]);
    expect(valueOf(samples, "celeriac_task_queue_wait_seconds_sum", { task: "t.ok" })).toBeGreaterThanOrEqual(0);

    expect(valueOf(samples, "celeriac_tasks_in_flight")).toBe(0);
    expect(valueOf(samples, "celeriac_tasks_prefetched")).toBe(0);
    expect(valueOf(samples, "celeriac_tasks_held_eta")).toBe(0);
    expect(valueOf(samples, "celeriac_worker_concurrency")).toBe(4);
    expect(valueOf(samples, "celeriac_worker_up", { hostname: "metrics-test@host" })).toBe(1);
    expect(valueOf(samples, "celeriac_worker_info", { hostname: "metrics-test@host", queues: "celery" })).toBe(1);
    // Process metrics are off by default.
    expect(samples.some((s) => s.name.startsWith("celeriac_process_"))).toBe(false);

    await worker.stop();
    const after = await scrape(server.url);
    expect(valueOf(after, "celeriac_worker_up", { hostname: "metrics-test@host" })).toBe(0);
    // The last values stay for a final scrape.
    expect(valueOf(after, "celeriac_tasks_finished_total", { task: "t.ok", state: "succeeded" })).toBe(7);
  });

  it("reads in-flight, prefetched and held-for-ETA from the worker at scrape time", async () => {
    const worker = setup({ concurrency: 3 });
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    let running = 0;
    worker.register("t.block", async () => {
      running++;
      await gate;
      return "released";
    });
    const metrics = instrumentWorker(worker);
    const server = await serve(metrics);
    await worker.start();
    const client = createClient({ transport, resultBackend: backend });
    const blocked = await Promise.all(Array.from({ length: 5 }, () => client.sendTask("t.block")));
    const later = await client.sendTask("t.block", { countdownMs: 3_600_000 });
    await until("3 handlers running", () => running === 3 && worker.counters.prefetched === 6);

    const samples = await scrape(server.url);
    expect(valueOf(samples, "celeriac_tasks_in_flight")).toBe(3);
    // 3 running, 2 waiting for a slot, 1 held for its ETA.
    expect(valueOf(samples, "celeriac_tasks_prefetched")).toBe(6);
    expect(valueOf(samples, "celeriac_tasks_held_eta")).toBe(1);
    expect(valueOf(samples, "celeriac_tasks_received_total", { task: "t.block" })).toBe(6);
    expect(valueOf(samples, "celeriac_tasks_finished_total", { task: "t.block", state: "succeeded" })).toBeUndefined();

    release();
    for (const r of blocked) expect((await backend.waitFor(r.id, { timeoutMs: 10_000 })).status).toBe("SUCCESS");
    let after: Sample[] = [];
    await until("5 successes", async () => {
      after = await scrape(server.url);
      return valueOf(after, "celeriac_tasks_finished_total", { task: "t.block", state: "succeeded" }) === 5;
    });
    expect(valueOf(after, "celeriac_tasks_in_flight")).toBe(0);
    expect(valueOf(after, "celeriac_tasks_prefetched")).toBe(1);
    expect(valueOf(after, "celeriac_tasks_held_eta")).toBe(1);
    // 3 started at once; the other 2 waited for a slot, so their wait is at least 0 and counted.
    expect(valueOf(after, "celeriac_task_queue_wait_seconds_count", { task: "t.block" })).toBe(5);
    expect(later.id).toBeTruthy();
  });

  it("writes HELP and TYPE for every metric, and uses the prefix and buckets given", async () => {
    const worker = setup();
    const registry = new Registry();
    const metrics = instrumentWorker(worker, { registry, prefix: "jobs_", runtimeBuckets: [0.1, 1], processMetrics: true });
    const { types, help, samples } = parsePromText(await metrics.metrics());
    expect(types.get("jobs_tasks_received_total")).toBe("counter");
    expect(types.get("jobs_tasks_finished_total")).toBe("counter");
    expect(types.get("jobs_task_runtime_seconds")).toBe("histogram");
    expect(types.get("jobs_task_queue_wait_seconds")).toBe("histogram");
    for (const g of ["jobs_tasks_in_flight", "jobs_tasks_prefetched", "jobs_tasks_held_eta", "jobs_worker_up", "jobs_worker_info", "jobs_worker_concurrency"]) {
      expect(types.get(g), g).toBe("gauge");
    }
    for (const name of types.keys()) expect(help.get(name), name).toBeTruthy();
    expect(help.get("jobs_task_queue_wait_seconds")).toMatch(/not included/);
    // Process metrics, when asked for, share the prefix.
    expect(samples.some((s) => s.name === "jobs_process_cpu_user_seconds_total")).toBe(true);

    worker.register("t.ok", () => "ok");
    await worker.start();
    const client = createClient({ transport, resultBackend: backend });
    await backend.waitFor((await client.sendTask("t.ok")).id, { timeoutMs: 10_000 });
    await until(
      "the success is counted",
      async () => valueOf(parsePromText(await metrics.metrics()).samples, "jobs_tasks_finished_total", { task: "t.ok", state: "succeeded" }) === 1,
    );
    const buckets = parsePromText(await metrics.metrics())
      .samples.filter((s) => s.name === "jobs_task_runtime_seconds_bucket")
      .map((s) => s.labels["le"]);
    expect(buckets).toEqual(["0.1", "1", "+Inf"]);

    metrics.close();
    expect(await registry.metrics()).not.toContain("jobs_tasks_received_total");
  });

  it("rejects unknown options, bad buckets, and a second worker in the same registry", async () => {
    const worker = setup();
    expect(() => instrumentWorker(worker, { prefx: "x_" } as never)).toThrow(/unknown option "prefx"/);
    expect(() => instrumentWorker(worker, { runtimeBuckets: [1, 0.5] })).toThrow(/increasing/);
    expect(() => instrumentWorker(worker, { prefix: "bad-prefix" })).toThrow(/prefix/);
    const registry = new Registry();
    instrumentWorker(worker, { registry });
    expect(() => instrumentWorker(worker, { registry })).toThrow(/already has a metric named celeriac_tasks_received_total/);
    // A different prefix in the same registry is fine.
    expect(() => instrumentWorker(worker, { registry, prefix: "other_" })).not.toThrow();
    await expect(serveMetrics(worker, { port: 0, hots: "::1" } as never)).rejects.toThrow(/unknown option "hots"/);
  });

  it("answers 404 elsewhere, 405 to other methods, and HEAD without a body", async () => {
    const worker = setup();
    const server = await serve(instrumentWorker(worker));
    const base = server.url.replace(/\/metrics$/, "");
    expect((await fetch(`${base}/other`)).status).toBe(404);
    const post = await fetch(server.url, { method: "POST" });
    expect(post.status).toBe(405);
    expect(post.headers.get("allow")).toBe("GET, HEAD");
    const head = await fetch(server.url, { method: "HEAD" });
    expect(head.status).toBe(200);
    expect(await head.text()).toBe("");
    // Query strings are fine: some scrapers add them.
    expect((await fetch(`${server.url}?x=1`)).status).toBe(200);
  });

  it("reports a port in use as a connection error", async () => {
    const worker = setup();
    const first = await serve(new Registry());
    const port = Number(new URL(first.url).port);
    await expect(serveMetrics(worker, { port })).rejects.toThrow(/cannot listen on 127\.0\.0\.1:\d+/);
  });
});
