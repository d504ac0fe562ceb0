#!/usr/bin/env node
// SQS drain rates on the local emulator (local-aws-sqs behind the repo's adapter), one run:
//   npm run build && node bench/sqs-bench.mjs                     # short: 20,000 tasks (Python: 5,000)
//   node bench/sqs-bench.mjs --tasks 20000 --python-tasks 5000 --pollers 8
//   node bench/sqs-bench.mjs --soak-minutes 10                     # steady load, per-minute rate + RSS
//   node bench/sqs-bench.mjs --backlog 100000                      # one big backlog, TS worker only
//
// Contenders, each a separate process on a fresh queue of no-op Celery messages (kombu's format):
//   ts-worker     @celeriac/worker + @celeriac/sqs (concurrency 10 x --pollers: the worker acks each
//                 task before running it, as Celery does, so concurrency bounds acks in flight; the
//                 raw loop likewise has pollers x 10 messages in hand)
//   ts-transport  @celeriac/sqs alone: consume + ack, no worker
//   python        Celery 5.2 worker, kombu's SQS transport (prefork -c 2, kombu's defaults)
//   raw-sdk       a bare @aws-sdk/client-sqs loop: --pollers loops of Receive(10) + DeleteMessageBatch
//   sqs-consumer  the sqs-consumer package: --pollers consumers, batchSize 10, handleMessageBatch
// The clock starts when the first message is taken and stops when the queue is empty, read from
// outside with GetQueueAttributes every 25 ms. The emulator runs in this process for all of them.
// Python gets fewer tasks: in query mode the emulator breaks at 10,000 visible messages (see
// packages/sqs/README.md), and at its rate 5,000 already take minutes.
import { randomUUID } from "node:crypto";
import { join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const root = fileURLToPath(new URL("..", import.meta.url));
const dist = (pkg) => import(pathToFileURL(join(root, "packages", pkg, "dist", "index.js")).href);
const arg = (name, dflt) => {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : dflt;
};
const credentials = { accessKeyId: "bench", secretAccessKey: "bench" };
const region = "us-east-1";

// ---- child roles ---------------------------------------------------------------------------
const role = arg("role", null);
if (role !== null) {
  const endpoint = arg("endpoint");
  const queue = arg("queue");
  const pollers = Number(arg("pollers", 8));
  if (role === "ts-transport") {
    // The transport alone, no worker: consume + ack, to tell transport cost from worker cost.
    const { createSqsTransport } = await dist("sqs");
    const transport = createSqsTransport({ endpoint, region, credentials, pollers, waitTimeSeconds: 10 });
    const consumer = transport.consume([queue], { prefetch: Number(arg("prefetch", 160)) });
    process.on(
      "SIGTERM",
      () =>
        void consumer
          .stop()
          .then(() => transport.close())
          .then(() => process.exit(0)),
    );
    void (async () => {
      for await (const d of consumer) void d.ack();
    })();
  } else {
    throw new Error(`unknown role ${role}`);
  }
  process.stdout.write("ready\n");
} else {
  await main();
}

// ---- parent ---------------------------------------------------------------------------------
async function main() {
  const { startSqsEmulator } = await import(pathToFileURL(join(root, "test-support", "sqs-emulator.mjs")).href);
  const { startProcess, treeRss } = await import("./lib/common.mjs");
  const { startConsumer, startPythonWorker } = await import("./lib/procs.mjs");
  const { createSqsTransport } = await dist("sqs");
  const { GetQueueAttributesCommand } = await import("@aws-sdk/client-sqs");
  const N = Number(arg("tasks", 20_000));
  const PY_N = Number(arg("python-tasks", 5_000));
  const POLLERS = Number(arg("pollers", 8));
  const SOAK_MIN = Number(arg("soak-minutes", 0));
  const BACKLOG = Number(arg("backlog", 0));
  const only = arg("only", null)?.split(",") ?? null;

  const emulator = await startSqsEmulator();
  const producer = createSqsTransport({ endpoint: emulator.endpoint, region, credentials });
  const sqs = producer.client;
  const { fillQueue } = await import("./suites/sqs.mjs");
  const fill = (queue, n) => fillQueue(producer, queue, n);

  async function attrs(url) {
    const r = await sqs.send(
      new GetQueueAttributesCommand({ QueueUrl: url, AttributeNames: ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"] }),
    );
    // The emulator's ApproximateNumberOfMessages counts hidden ones too: it is the total.
    return { total: Number(r.Attributes.ApproximateNumberOfMessages), hidden: Number(r.Attributes.ApproximateNumberOfMessagesNotVisible) };
  }

  // The same processes as bench/run.mjs's SQS contenders (bench/lib/consumers.mjs), plus the
  // transport alone, which is a role of this script.
  function startChild(name, queue) {
    const on = { broker: emulator.endpoint, queue, pollers: POLLERS };
    if (name === "python")
      return startPythonWorker({
        broker: `sqs://bench:bench@127.0.0.1:${emulator.port}`,
        queue,
        app: "sqs_app",
        // kombu's defaults, bar the region (and no result backend: ignore_result tasks).
        env: { CELERIAC_SQS_OPTIONS: JSON.stringify({ region, wait_time_seconds: 10, polling_interval: 1 }) },
      });
    if (name === "ts-worker") return startConsumer("sqs-celeriac", { ...on, concurrency: 10 * POLLERS });
    if (name === "raw-sdk") return startConsumer("sqs-raw", on);
    if (name === "sqs-consumer") return startConsumer("sqs-consumer", on);
    return startProcess(process.execPath, [
      fileURLToPath(import.meta.url),
      "--role",
      name,
      "--endpoint",
      emulator.endpoint,
      "--queue",
      queue,
      "--pollers",
      String(POLLERS),
    ]);
  }

  async function drain(name, n) {
    const queue = `bench-${name}-${randomUUID().slice(0, 8)}`;
    const url = await fill(queue, n);
    const c = startChild(name, queue);
    let start = null;
    const deadline = Date.now() + 30 * 60_000;
    for (;;) {
      const a = await attrs(url);
      const now = performance.now();
      if (start === null && (a.hidden > 0 || a.total < n)) start = now;
      if (start !== null && a.total === 0) {
        await c.stop();
        const secs = (now - start) / 1000;
        return { name, n, secs, rate: n / secs };
      }
      if (c.child.exitCode !== null) throw new Error(`${name} exited early:\n${c.output()}`);
      if (Date.now() > deadline) throw new Error(`${name}: drain took over 30 minutes`);
      await new Promise((r) => setTimeout(r, 25));
    }
  }

  if (SOAK_MIN > 0) return soak(SOAK_MIN);
  if (BACKLOG > 0) {
    console.log(`filling a backlog of ${BACKLOG}...`);
    const r = await drain("ts-worker", BACKLOG);
    console.log(`backlog ${BACKLOG}: ts-worker drained in ${r.secs.toFixed(1)} s, ${Math.round(r.rate)} msg/s`);
    await emulator.close();
    await producer.close();
    return;
  }

  const results = {};
  for (const [name, n] of [
    ["raw-sdk", N],
    ["sqs-consumer", N],
    ["ts-transport", N],
    ["ts-worker", N],
    ["python", PY_N],
  ]) {
    if (only && !only.includes(name)) continue;
    const r = await drain(name, n);
    results[name] = r;
    console.log(`${name.padEnd(13)} ${String(n).padStart(6)} tasks  ${r.secs.toFixed(2).padStart(7)} s  ${String(Math.round(r.rate)).padStart(6)} msg/s`);
  }
  const ts = results["ts-worker"]?.rate;
  if (ts) {
    for (const other of ["python", "raw-sdk", "sqs-consumer", "ts-transport"]) {
      if (results[other]) console.log(`ts-worker / ${other}: ${(ts / results[other].rate).toFixed(2)}x`);
    }
  }
  await producer.close();
  await emulator.close();

  async function soak(minutes) {
    // Keeps a backlog between 2,000 and 4,000 and reads, each minute, how many the worker took.
    const queue = `bench-soak-${randomUUID().slice(0, 8)}`;
    const url = await fill(queue, 4000);
    let sent = 4000;
    const c = startChild("ts-worker", queue);
    const started = Date.now();
    const rssSamples = [];
    const sampler = setInterval(() => rssSamples.push([Date.now(), treeRss(c.child.pid)]), 10_000);
    let lastMark = started;
    let lastConsumed = 0;
    const perMinute = [];
    while (perMinute.length < minutes) {
      const a = await attrs(url);
      if (a.total < 2000) {
        const more = 2000;
        const chunk = await fill(queue, more).then(() => more);
        sent += chunk;
      }
      if (Date.now() - lastMark >= 60_000) {
        const now = await attrs(url);
        const consumed = sent - now.total;
        perMinute.push(consumed - lastConsumed);
        console.log(`minute ${perMinute.length}: ${consumed - lastConsumed} messages (${Math.round((consumed - lastConsumed) / 60)} msg/s)`);
        lastConsumed = consumed;
        lastMark = Date.now();
      }
      await new Promise((r) => setTimeout(r, 200));
    }
    clearInterval(sampler);
    await c.stop();
    const rss = rssSamples.map(([t, v]) => `${Math.round((t - started) / 1000)}s:${(v / 2 ** 20).toFixed(0)}MiB`);
    console.log(`worker RSS over time: ${rss.join(" ")}`);
    if (perMinute.length >= 2) console.log(`last minute / first minute: ${(perMinute.at(-1) / perMinute[0]).toFixed(2)}`);
    await producer.close();
    await emulator.close();
  }
}
