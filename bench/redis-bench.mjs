#!/usr/bin/env node
// Redis drain rate, in one run on one private redis-server: N no-op tasks drained by
//   - the Celeriac worker (`celeriac worker`, a separate process, kombu's format),
//   - a Python Celery worker on kombu's Redis transport (prefork, concurrency 2),
//   - BullMQ (a Worker of concurrency 50 in this process, its own queue of N no-op jobs),
//   - a raw ioredis BRPOP loop over the same kombu envelopes (the floor for "pop a message").
//   npx turbo run build && node bench/redis-bench.mjs [--tasks 20000] [--concurrency 50] [--runs 3]
// Each contender runs --runs times, interleaved, and the median drain time is reported: the
// machine this was written on is shared, and single runs vary by 2x. `node bench/run.mjs --brokers redis`
// runs these and more contenders (celery-node, Python-produced messages), with memory and SIGKILL checks.
//
// Celeriac and Python are measured from outside by polling Redis: the clock starts when the
// queue first shrinks and stops when the lists are empty and `unacked` is empty (every message
// acked). BullMQ stops when its worker has completed N jobs (removeOnComplete, so no bookkeeping
// is kept), the raw loop when it has popped N.

import { Queue, Worker } from "bullmq";
import { Redis } from "ioredis";
import { startCeleriacWorker, startPythonWorker } from "./lib/procs.mjs";
import { fill as fillQueue, flush, measureDrain, median, numberArg, startRedis, STEPS } from "./redis-common.mjs";

const N = numberArg("tasks", 20_000);
const CONCURRENCY = numberArg("concurrency", 50);
const RUNS = numberArg("runs", 3);

const redis = await startRedis();
const { port, url } = redis;
const fill = (db) => fillQueue(url(db), N);
const measure = (db, child) => measureDrain(url(db), N, child);

async function celeriacWorker() {
  const publishRate = await fill(1);
  const proc = startCeleriacWorker({ broker: url(1), concurrency: CONCURRENCY });
  const child = proc.child;
  const secs = await measure(1, child);
  await proc.stop();
  return { name: `Celeriac worker (concurrency ${CONCURRENCY})`, secs, publishRate };
}

async function pythonWorker() {
  await fill(2);
  const proc = startPythonWorker({ broker: url(2) });
  const child = proc.child;
  const secs = await measure(2, child);
  await proc.stop();
  return { name: "Python Celery 5.2.6 worker (prefork, concurrency 2)", secs };
}

async function bullmq() {
  await flush(url(3));
  const connection = { host: "127.0.0.1", port, db: 3, maxRetriesPerRequest: null };
  const queue = new Queue("bench", { connection });
  for (let i = 0; i < N; i += 1000) {
    const jobs = [];
    for (let j = i; j < Math.min(N, i + 1000); j++) jobs.push({ name: "noop", data: { j }, opts: { removeOnComplete: true, removeOnFail: true } });
    await queue.addBulk(jobs);
  }
  let done = 0;
  let resolveDone;
  const finished = new Promise((r) => (resolveDone = r));
  const started = performance.now();
  const worker = new Worker("bench", async () => null, { connection, concurrency: 50 });
  worker.on("completed", () => {
    if (++done === N) resolveDone();
  });
  await finished;
  const secs = (performance.now() - started) / 1000;
  await worker.close();
  await queue.close();
  return { name: "BullMQ 5 worker (concurrency 50, same Redis)", secs };
}

async function rawBrpop() {
  await fill(4);
  const r = new Redis(url(4));
  const started = performance.now();
  for (let i = 0; i < N; i++) {
    const got = await r.brpop("celery", ...STEPS.slice(1).map((s) => "celery" + s), 1);
    if (!got) throw new Error(`raw loop: queue empty after ${i}`);
  }
  const secs = (performance.now() - started) / 1000;
  r.disconnect();
  return { name: "raw ioredis BRPOP loop (pop only: no decode, no ack)", secs };
}

try {
  console.log(`Redis drain of ${N} no-op tasks, median of ${RUNS} runs, node ${process.version}, redis-server on loopback, ${new Date().toISOString()}`);
  const all = { ts: [], py: [], bull: [], raw: [] };
  for (let i = 0; i < RUNS; i++) {
    all.ts.push(await celeriacWorker());
    all.py.push(await pythonWorker());
    all.bull.push(await bullmq());
    all.raw.push(await rawBrpop());
    console.log(`run ${i + 1}: ${["ts", "py", "bull", "raw"].map((k) => `${k} ${all[k][i].secs.toFixed(2)} s`).join(", ")}`);
  }
  const ts = median(all.ts);
  const py = median(all.py);
  const bull = median(all.bull);
  const raw = median(all.raw);
  const rate = (r) => N / r.secs;
  console.log("");
  console.log("| consumer | drain time | tasks/s | Celeriac is |");
  console.log("| --- | ---: | ---: | ---: |");
  for (const r of [ts, py, bull, raw]) {
    console.log(`| ${r.name} | ${r.secs.toFixed(2)} s | ${Math.round(rate(r))} | ${r === ts ? "" : `${(rate(ts) / rate(r)).toFixed(2)}x`} |`);
  }
  console.log(`\nCeleriac publish rate into Redis (publishes in bursts of 1,000, auto-pipelined): ${Math.round(ts.publishRate)} tasks/s`);
} finally {
  await redis.stop();
}
