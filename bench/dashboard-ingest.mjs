#!/usr/bin/env node
// How many Celery events the dashboard keeps up with, and what it holds in memory.
//   npx turbo run build && node --expose-gc bench/dashboard-ingest.mjs [--events 1000000] [--cap 100000] [--broker-events 200000]
// Part 1, state: --events task events (received, started, succeeded, and one worker heartbeat
//   per 100 tasks, with realistic args/result reprs) fed to the dashboard's FleetState in one
//   process, with the default task cap; prints events/s and the process RSS after a GC.
// Part 2, through Redis: a private redis-server; a dashboard (createDashboard) subscribed to
//   celeryev; a child process publishes --broker-events task events as `task.multi` groups of 24
//   (how Celery and Celeriac workers send them) as fast as Redis takes them; prints the publish
//   rate, how many the dashboard took in, and the rate it took them in at (first to last event).

import { spawn } from "node:child_process";
import { join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { numberArg, root, startRedis } from "./redis-common.mjs";

const dash = await import(pathToFileURL(join(root, "apps/dashboard/dist/index.js")).href);
const { createRedisTransport } = await import(pathToFileURL(join(root, "packages/redis/dist/index.js")).href);

// The publisher of part 2 runs as a child process (this file with --publish URL N), so that the
// dashboard's event loop is its own.
const publishIndex = process.argv.indexOf("--publish");
if (publishIndex >= 0) {
  await publish(process.argv[publishIndex + 1], Number(process.argv[publishIndex + 2]));
  process.exit(0);
}

const EVENTS = numberArg("events", 1_000_000);
const CAP = numberArg("cap", 100_000);
const BROKER_EVENTS = numberArg("broker-events", 200_000);
const mb = (n) => `${(n / 1024 / 1024).toFixed(0)} MB`;
const gc = () => globalThis.gc?.();

/** The events of task i, as a worker sends them (fields per docs/operations.md). */
function taskEvents(i, t0) {
  const uuid = `${i.toString(16).padStart(8, "0")}-6f1c-4a0e-9a57-${(i * 7919).toString(16).padStart(12, "0")}`;
  const host = `worker-${i % 8}@bench`;
  const ts = t0 + i / 1000;
  const common = { hostname: host, utcoffset: 0, pid: 4242, clock: i };
  return [
    {
      ...common,
      type: "task-received",
      uuid,
      name: `app.tasks.job_${i % 20}`,
      args: `(${i}, 'customer-${i % 977}')`,
      kwargs: "{'priority': 'normal'}",
      root_id: uuid,
      parent_id: null,
      retries: 0,
      eta: null,
      expires: null,
      timestamp: ts,
    },
    { ...common, type: "task-started", uuid, timestamp: ts + 0.001 },
    { ...common, type: "task-succeeded", uuid, result: `{'ok': True, 'rows': ${i % 1000}}`, runtime: 0.0042, timestamp: ts + 0.005 },
  ];
}

// ---- part 1: the state alone --------------------------------------------------------------
{
  gc();
  const rssBefore = process.memoryUsage().rss;
  const state = new dash.FleetState({ maxTasks: CAP });
  const t0 = Date.now() / 1000;
  let n = 0;
  let i = 0;
  let ns = 0n;
  // Events are made in chunks outside the timed part: making them costs more than taking them in.
  while (n < EVENTS) {
    const chunk = [];
    while (chunk.length < 10_000 && n + chunk.length < EVENTS) {
      chunk.push(...taskEvents(i, t0));
      if (i % 100 === 0)
        chunk.push({
          type: "worker-heartbeat",
          hostname: `worker-${i % 8}@bench`,
          timestamp: t0 + i / 1000,
          freq: 2,
          active: 1,
          processed: i,
          sw_ident: "py-celery",
          clock: i,
        });
      i++;
    }
    const started = process.hrtime.bigint();
    for (const e of chunk) state.ingest(e);
    ns += process.hrtime.bigint() - started;
    n += chunk.length;
  }
  const secs = Number(ns) / 1e9;
  // A page of the newest tasks, and a filtered count over everything kept.
  const pageStart = process.hrtime.bigint();
  const page = state.listTasks({}, 0, 50);
  const pageMs = Number(process.hrtime.bigint() - pageStart) / 1e6;
  const filterStart = process.hrtime.bigint();
  const filtered = state.listTasks({ name: "app.tasks.job_7", search: "customer-13" }, 0, 50);
  const filterMs = Number(process.hrtime.bigint() - filterStart) / 1e6;
  gc();
  const { rss, heapUsed } = process.memoryUsage();
  console.log(
    `state: ${n.toLocaleString("en")} events (${i.toLocaleString("en")} tasks) taken in within ${secs.toFixed(2)} s = ${Math.round(n / secs).toLocaleString("en")} events/s`,
  );
  console.log(
    `state: kept ${state.taskCount.toLocaleString("en")} tasks (cap ${CAP.toLocaleString("en")}, evicted ${state.evicted.toLocaleString("en")}); RSS ${mb(rss)} after (${mb(rssBefore)} before), JS heap in use ${mb(heapUsed)}${globalThis.gc ? "" : " (run with --expose-gc for a settled figure)"}`,
  );
  console.log(
    `state: newest page of 50 of ${page.total.toLocaleString("en")} in ${pageMs.toFixed(2)} ms; name+search filter over all (${filtered.total} hits) in ${filterMs.toFixed(1)} ms`,
  );
}

// ---- part 2: through Redis ----------------------------------------------------------------
if (BROKER_EVENTS > 0) {
  const redis = await startRedis();
  const url = redis.url(1);
  const d = await dash.createDashboard({ brokerUrl: url, inspectIntervalMs: 60_000, log: () => undefined });
  try {
    const startIn = d.receiverStats.events;
    // When the first and the last event arrived (sampled every 5 ms).
    let firstAt = 0;
    let lastAt = 0;
    let seen = startIn;
    const sampler = setInterval(() => {
      if (d.receiverStats.events === seen) return;
      seen = d.receiverStats.events;
      if (firstAt === 0) firstAt = Date.now();
      lastAt = Date.now();
    }, 5);
    const child = spawn(process.execPath, [fileURLToPath(import.meta.url), "--publish", url, String(BROKER_EVENTS)], { stdio: ["ignore", "pipe", "inherit"] });
    let report = "";
    child.stdout.on("data", (b) => (report += b));
    await new Promise((r) => child.once("exit", r));
    const { total, messages, publishSecs } = JSON.parse(report);
    // Wait until nothing more arrives for a second.
    let last = -1;
    while (d.receiverStats.events !== last) {
      last = d.receiverStats.events;
      await new Promise((r) => setTimeout(r, 1000));
    }
    clearInterval(sampler);
    const got = d.receiverStats.events - startIn;
    const doneSecs = (lastAt - firstAt) / 1000;
    console.log(
      `redis: published ${total.toLocaleString("en")} events in ${messages.toLocaleString("en")} task.multi messages in ${publishSecs.toFixed(2)} s (${Math.round(total / publishSecs).toLocaleString("en")} events/s)`,
    );
    console.log(
      `redis: the dashboard took in ${got.toLocaleString("en")} / ${total.toLocaleString("en")} in ${doneSecs.toFixed(2)} s from first to last = ${Math.round(got / doneSecs).toLocaleString("en")} events/s; kept ${d.state.taskCount.toLocaleString("en")} tasks`,
    );
  } finally {
    await d.close();
    redis.stop();
  }
}

/** Publishes `count` task events to celeryev on `url` as task.multi groups of 24; prints a JSON report. */
async function publish(url, count) {
  const pub = createRedisTransport({ url });
  await pub.connect();
  const exchange = { name: "celeryev", type: "fanout", durable: true, autoDelete: false };
  const t0 = Date.now() / 1000;
  const groups = [];
  let batch = [];
  for (let i = 0; groups.length * 24 + batch.length < count; i++) {
    for (const e of taskEvents(i, t0)) {
      batch.push(e);
      if (batch.length === 24) {
        groups.push(batch);
        batch = [];
      }
    }
  }
  if (batch.length) groups.push(batch);
  const total = groups.reduce((s, g) => s + g.length, 0);
  const enc = new TextEncoder();
  const started = Date.now();
  let next = 0;
  await Promise.all(
    Array.from({ length: 64 }, async () => {
      while (next < groups.length) {
        const g = groups[next++];
        await pub.exchanges.publishToExchange(exchange, "task.multi", {
          body: enc.encode(JSON.stringify(g)),
          contentType: "application/json",
          contentEncoding: "utf-8",
          headers: { hostname: "bench@x" },
          properties: { deliveryMode: 1 },
        });
      }
    }),
  );
  const publishSecs = (Date.now() - started) / 1000;
  await pub.close();
  process.stdout.write(JSON.stringify({ total, messages: groups.length, publishSecs }));
}
