#!/usr/bin/env node
// RabbitMQ benchmark, in one run on one private RabbitMQ node:
//  - drain N no-op tasks by the Celeriac worker (`celeriac worker`, separate process), by a
//    Python Celery 5.2.6 worker (prefork, concurrency 2) and by a raw amqplib consume-and-ack loop;
//  - publish rate of the Celeriac client, Python apply_async and raw amqplib;
//  - end-to-end latency (send -> result over rpc://) p50/p99 at a low rate.
//   npx turbo run build && node bench/amqp-bench.mjs [--tasks 20000] [--concurrency 10] [--url amqp://...]
// Without --url it starts its own rabbitmq-server (test-support/rabbitmq.ts) and stops it at the end.
// `node bench/run.mjs --brokers amqp` runs these and more contenders, interleaved, with medians.
// "Drained" is measured from outside by polling the queue depth (passive queue.declare): the clock
// starts when the first message leaves the queue and stops when none is ready.

import { execFile } from "node:child_process";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { connect } from "amqplib";
import { root } from "./lib/common.mjs";
import { startCeleriacWorker, startPythonWorker } from "./lib/procs.mjs";
import { startRabbit } from "./lib/support.mjs";

const { createEnvelope, celeryJsonCodec, createClient } = await import(join(root, "packages/core/dist/index.js"));
const { createAmqpTransport, createRpcResultBackend } = await import(join(root, "packages/amqp/dist/index.js"));

const argv = process.argv;
const arg = (name, dflt) => {
  const i = argv.indexOf(`--${name}`);
  return i >= 0 ? argv[i + 1] : dflt;
};
const N = Number(arg("tasks", 20_000));
const CONCURRENCY = Number(arg("concurrency", 10));
const PY_PUBLISH = Math.min(N, 5000);
const LATENCY_SAMPLES = 300;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

const broker = arg("url", null) ? { url: arg("url"), shutdown: async () => {} } : await startRabbit();
const rawUrl = broker.url.replace(/\/\/?$/, "/%2F");
const raw = await connect(rawUrl, { noDelay: true });
const rawCh = await raw.createChannel();
const depth = async (q) => (await rawCh.checkQueue(q)).messageCount;

function noopMessage(i) {
  const env = createEnvelope({ task: "bench.noop", id: crypto.randomUUID(), args: [i], headers: { ignoreResult: true } });
  return celeryJsonCodec.encode(env);
}

/** Celeriac client publish: `window` publishes in flight, each resolved on its confirm. */
async function fillCeleriac(queue, n, window) {
  const t = createAmqpTransport({ url: broker.url });
  await t.connect();
  await t.publish(queue, noopMessage(-1)); // declare outside the clock
  await rawCh.purgeQueue(queue);
  const started = performance.now();
  let next = 0;
  await Promise.all(
    Array.from({ length: window }, async () => {
      while (next < n) await t.publish(queue, noopMessage(next++));
    }),
  );
  const secs = (performance.now() - started) / 1000;
  await t.close();
  return n / secs;
}

/** Raw amqplib: confirm channel, same body, amqplib's own header typing, `window` in flight. */
async function fillRaw(queue, n, window) {
  const ch = await raw.createConfirmChannel();
  await ch.assertQueue(queue, { durable: true });
  const m = noopMessage(0);
  const started = performance.now();
  let next = 0;
  await Promise.all(
    Array.from({ length: window }, async () => {
      while (next < n) {
        next++;
        await new Promise((res, rej) =>
          ch.publish(
            "",
            queue,
            Buffer.from(m.body),
            { contentType: m.contentType, contentEncoding: m.contentEncoding, headers: m.headers, deliveryMode: 2 },
            (e) => (e ? rej(e) : res()),
          ),
        );
      }
    }),
  );
  const secs = (performance.now() - started) / 1000;
  await ch.close();
  return n / secs;
}

async function measureDrain(queue, isDone = async () => (await depth(queue)) === 0) {
  let start = null;
  const deadline = Date.now() + 30 * 60_000;
  for (;;) {
    const now = performance.now();
    if (start === null && (await depth(queue)) < N) start = now;
    if (start !== null && (await isDone())) return (now - start) / 1000;
    if (Date.now() > deadline) throw new Error("drain took over 30 minutes");
    await sleep(10);
  }
}

async function drainCeleriac() {
  const queue = "bench-ts";
  const publishSequential = await fillCeleriac(queue, Math.min(N, 2000), 1);
  await rawCh.purgeQueue(queue);
  const publishRate = await fillCeleriac(queue, N, 200);
  const child = startCeleriacWorker({ broker: broker.url, queue, concurrency: CONCURRENCY });
  const secs = await measureDrain(queue);
  await child.stop();
  return { name: `Celeriac worker (concurrency ${CONCURRENCY})`, secs, publishRate, publishSequential };
}

async function drainPython() {
  const queue = "bench-py";
  await fillCeleriac(queue, N, 200);
  const child = startPythonWorker({ broker: broker.url, queue });
  const secs = await measureDrain(queue);
  await child.stop();
  return { name: "Python Celery 5.2.6 worker (prefork, concurrency 2)", secs };
}

async function drainRaw() {
  const queue = "bench-raw";
  const publishRate = await fillRaw(queue, N, 200);
  const conn = await connect(rawUrl, { noDelay: true });
  const ch = await conn.createChannel();
  await ch.prefetch(CONCURRENCY * 4);
  let count = 0;
  let start = null;
  const done = new Promise((resolve) => {
    void ch.consume(queue, (m) => {
      start ??= performance.now();
      ch.ack(m);
      if (++count === N) resolve(performance.now());
    });
  });
  const end = await done;
  await conn.close();
  return { name: `raw amqplib consume + ack loop (prefetch ${CONCURRENCY * 4})`, secs: (end - start) / 1000, publishRate };
}

async function pythonPublish() {
  const queue = "bench-py-publish";
  const out = await new Promise((resolve, reject) =>
    execFile(
      "/usr/bin/python3",
      ["amqp_bench_publish.py", queue, String(PY_PUBLISH)],
      {
        cwd: join(root, "test-support/python"),
        env: { ...process.env, CELERIAC_BROKER_URL: broker.url, CELERIAC_RESULT_URL: "", PYTHONDONTWRITEBYTECODE: "1" },
      },
      (e, stdout, stderr) => (e ? reject(new Error(stderr)) : resolve(stdout)),
    ),
  );
  await rawCh.purgeQueue(queue);
  const { n, secs } = JSON.parse(out.trim().split("\n").pop());
  return n / secs;
}

async function latency() {
  const queue = "bench-latency";
  const child = startCeleriacWorker({
    broker: broker.url,
    queue,
    concurrency: CONCURRENCY,
    tasks: "bench/amqp-latency-tasks.mjs",
    resultBackend: broker.url.replace(/^amqp:/, "rpc:"),
  });
  const transport = createAmqpTransport({ url: broker.url });
  const resultBackend = createRpcResultBackend({ url: broker.url });
  const client = createClient({ transport, resultBackend, defaultQueue: queue });
  await sleep(2000);
  // Warm up (the worker may still be starting).
  await (await client.sendTask("bench.echo", { args: [0] })).get({ timeoutMs: 30_000 });
  const samples = [];
  for (let i = 0; i < LATENCY_SAMPLES; i++) {
    const t0 = performance.now();
    const r = await client.sendTask("bench.echo", { args: [i] });
    await r.get({ timeoutMs: 10_000 });
    samples.push(performance.now() - t0);
    await sleep(20); // about 40 tasks/s: a low rate
  }
  await child.stop();
  await transport.close();
  await resultBackend.close();
  samples.sort((a, b) => a - b);
  const q = (p) => samples[Math.min(samples.length - 1, Math.floor(p * samples.length))];
  return { p50: q(0.5), p99: q(0.99) };
}

console.log(`RabbitMQ benchmark, ${N} no-op tasks, node ${process.version}, ${new Date().toISOString()}`);
try {
  const ts = await drainCeleriac();
  const rawRun = await drainRaw();
  const py = await drainPython();
  const pyPublish = await pythonPublish();
  const lat = await latency();
  const rate = (r) => N / r.secs;
  console.log("");
  console.log("| drain | time | tasks/s | vs Python worker | vs raw loop |");
  console.log("| --- | ---: | ---: | ---: | ---: |");
  for (const r of [ts, py, rawRun]) {
    console.log(
      `| ${r.name} | ${r.secs.toFixed(2)} s | ${Math.round(rate(r))} | ${(rate(r) / rate(py)).toFixed(1)}x | ${(rate(r) / rate(rawRun)).toFixed(2)}x |`,
    );
  }
  console.log("");
  console.log("| publish | tasks/s |");
  console.log("| --- | ---: |");
  console.log(`| Celeriac client, confirms, 200 in flight | ${Math.round(ts.publishRate)} |`);
  console.log(`| Celeriac client, confirms, one at a time | ${Math.round(ts.publishSequential)} |`);
  console.log(`| Python apply_async (loop, ${PY_PUBLISH} tasks) | ${Math.round(pyPublish)} |`);
  console.log(`| raw amqplib, confirms, 200 in flight | ${Math.round(rawRun.publishRate)} |`);
  console.log("");
  console.log(
    `End-to-end latency (Celeriac client -> celeriac worker -> rpc:// result), ${LATENCY_SAMPLES} tasks at ~40/s: p50 ${lat.p50.toFixed(2)} ms, p99 ${lat.p99.toFixed(2)} ms`,
  );
  console.log("");
  console.log(
    `Targets: Celeriac worker >= 10x Python worker: ${(rate(ts) / rate(py)).toFixed(1)}x; >= 0.7x raw loop: ${(rate(ts) / rate(rawRun)).toFixed(2)}x`,
  );

  const plot = arg("plot", null);
  if (plot) {
    const bars = [
      ["Celeriac worker", rate(ts)],
      ["raw amqplib loop", rate(rawRun)],
      ["Python Celery worker", rate(py)],
      ["Celeriac publish", ts.publishRate],
      ["raw amqplib publish", rawRun.publishRate],
      ["Python apply_async", pyPublish],
    ];
    const max = Math.max(...bars.map(([, v]) => v));
    const rows = bars
      .map(([label, v], i) => {
        const y = 40 + i * 34;
        const w = Math.max(1, (v / max) * 430);
        const fill = i < 3 ? "#3b7dd8" : "#e08a2c";
        return (
          `<text x="190" y="${y + 17}" text-anchor="end">${label}</text>` +
          `<rect x="200" y="${y}" width="${w.toFixed(1)}" height="24" fill="${fill}"/>` +
          `<text x="${(205 + w).toFixed(1)}" y="${y + 17}">${Math.round(v)}/s</text>`
        );
      })
      .join("\n");
    const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="760" height="${60 + bars.length * 34}" font-family="sans-serif" font-size="13">
<rect width="100%" height="100%" fill="white"/>
<text x="10" y="22" font-size="15" font-weight="bold">RabbitMQ: drain (blue) and publish (orange) of ${N} no-op tasks, tasks/s</text>
${rows}
</svg>\n`;
    writeFileSync(plot, svg);
    console.log(`\nplot written to ${plot}`);
  }
} finally {
  await raw.close().catch(() => {});
  await broker.shutdown();
}
