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
import { spawn } from "node:child_process";
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
  const rssEvery = Number(arg("rss-every-ms", 0));
  if (rssEvery > 0) setInterval(() => process.stdout.write(`rss ${Date.now()} ${process.memoryUsage().rss}\n`), rssEvery).unref();
  if (role === "ts-worker") {
    const { createSqsTransport } = await dist("sqs");
    const { createWorker } = await dist("worker");
    const transport = createSqsTransport({ endpoint, region, credentials, pollers, waitTimeSeconds: 10 });
    await transport.connect();
    const worker = createWorker({ transport, queues: [queue], concurrency: Number(arg("concurrency", 10 * pollers)), silent: true });
    worker.register("bench.noop", async () => null, { ignoreResult: true });
    await worker.start();
    process.on(
      "SIGTERM",
      () =>
        void worker
          .stop()
          .then(() => transport.close())
          .then(() => process.exit(0)),
    );
  } else if (role === "ts-transport") {
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
  } else if (role === "raw-sdk") {
    const { SQSClient, ReceiveMessageCommand, DeleteMessageBatchCommand, GetQueueUrlCommand } = await import("@aws-sdk/client-sqs");
    const http = await import("node:http");
    const client = new SQSClient({ endpoint, region, credentials, requestHandler: { httpAgent: new http.Agent({ keepAlive: true, maxSockets: 64 }) } });
    const url = (await client.send(new GetQueueUrlCommand({ QueueName: queue }))).QueueUrl;
    let stop = false;
    process.on("SIGTERM", () => {
      stop = true;
      setTimeout(() => process.exit(0), 100);
    });
    for (let i = 0; i < pollers; i++) {
      void (async () => {
        while (!stop) {
          const r = await client.send(new ReceiveMessageCommand({ QueueUrl: url, MaxNumberOfMessages: 10, WaitTimeSeconds: 10 }));
          const ms = r.Messages ?? [];
          if (ms.length > 0)
            await client.send(new DeleteMessageBatchCommand({ QueueUrl: url, Entries: ms.map((m, j) => ({ Id: String(j), ReceiptHandle: m.ReceiptHandle })) }));
        }
      })();
    }
  } else if (role === "sqs-consumer") {
    const { Consumer } = await import("sqs-consumer");
    const { SQSClient, GetQueueUrlCommand } = await import("@aws-sdk/client-sqs");
    const http = await import("node:http");
    const sqs = new SQSClient({ endpoint, region, credentials, requestHandler: { httpAgent: new http.Agent({ keepAlive: true, maxSockets: 64 }) } });
    const url = (await sqs.send(new GetQueueUrlCommand({ QueueName: queue }))).QueueUrl;
    const consumers = [];
    for (let i = 0; i < pollers; i++) {
      const c = Consumer.create({ queueUrl: url, sqs, batchSize: 10, waitTimeSeconds: 10, handleMessageBatch: async (ms) => ms });
      c.on("error", (e) => process.stderr.write(`${e.message}\n`));
      c.start();
      consumers.push(c);
    }
    process.on("SIGTERM", () => {
      for (const c of consumers) c.stop();
      setTimeout(() => process.exit(0), 100);
    });
  }
  process.stdout.write("ready\n");
} else {
  await main();
}

// ---- parent ---------------------------------------------------------------------------------
async function main() {
  const { startSqsEmulator } = await import(pathToFileURL(join(root, "test-support", "sqs-emulator.mjs")).href);
  const { createSqsTransport } = await dist("sqs");
  const { createEnvelope, celeryJsonCodec } = await dist("core");
  const { GetQueueAttributesCommand, SendMessageBatchCommand } = await import("@aws-sdk/client-sqs");
  const N = Number(arg("tasks", 20_000));
  const PY_N = Number(arg("python-tasks", 5_000));
  const POLLERS = Number(arg("pollers", 8));
  const SOAK_MIN = Number(arg("soak-minutes", 0));
  const BACKLOG = Number(arg("backlog", 0));
  const only = arg("only", null)?.split(",") ?? null;

  const emulator = await startSqsEmulator();
  const producer = createSqsTransport({ endpoint: emulator.endpoint, region, credentials });
  const sqs = producer.client;
  const body = (i) => {
    // What our transport (and kombu) sends: base64 of kombu's JSON envelope.
    const msg = celeryJsonCodec.encode(createEnvelope({ task: "bench.noop", id: randomUUID(), args: [i], headers: { ignoreResult: true } }));
    return producer["encodeBody"](msg, "bench");
  };

  async function fill(queue, n) {
    const url = await producer.queueUrl(queue);
    let next = 0;
    const lane = async () => {
      while (next < n) {
        const start = next;
        next = Math.min(n, next + 10);
        const Entries = [];
        for (let i = start; i < next; i++) Entries.push({ Id: String(i - start), MessageBody: body(i) });
        await sqs.send(new SendMessageBatchCommand({ QueueUrl: url, Entries }));
      }
    };
    await Promise.all(Array.from({ length: 8 }, lane));
    return url;
  }

  async function attrs(url) {
    const r = await sqs.send(
      new GetQueueAttributesCommand({ QueueUrl: url, AttributeNames: ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"] }),
    );
    // The emulator's ApproximateNumberOfMessages counts hidden ones too: it is the total.
    return { total: Number(r.Attributes.ApproximateNumberOfMessages), hidden: Number(r.Attributes.ApproximateNumberOfMessagesNotVisible) };
  }

  function startChild(name, queue, extra = []) {
    let cmd;
    let args;
    let env = process.env;
    if (name === "python") {
      cmd = "/usr/bin/python3";
      args = [
        "-m",
        "celery",
        "-A",
        "sqs_app",
        "worker",
        "--pool",
        "prefork",
        "-c",
        "2",
        "-l",
        "WARNING",
        "-Q",
        queue,
        "--without-gossip",
        "--without-mingle",
        "--without-heartbeat",
      ];
      env = {
        ...process.env,
        CELERIAC_BROKER_URL: `sqs://bench:bench@127.0.0.1:${emulator.port}`,
        // kombu's defaults, bar the region (and no result backend: ignore_result tasks).
        CELERIAC_SQS_OPTIONS: JSON.stringify({ region, wait_time_seconds: 10, polling_interval: 1 }),
        PYTHONPATH: join(root, "test-support", "python"),
      };
    } else {
      cmd = process.execPath;
      args = [fileURLToPath(import.meta.url), "--role", name, "--endpoint", emulator.endpoint, "--queue", queue, "--pollers", String(POLLERS), ...extra];
    }
    const child = spawn(cmd, args, { cwd: name === "python" ? join(root, "test-support", "python") : root, env, stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    child.stdout.on("data", (d) => (out += d.toString()));
    child.stderr.on("data", (d) => (out += d.toString()));
    const exited = new Promise((r) => child.once("exit", r));
    return {
      child,
      output: () => out,
      async stop() {
        child.kill("SIGTERM");
        const t = setTimeout(() => child.kill("SIGKILL"), 10_000);
        await exited;
        clearTimeout(t);
      },
    };
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
    const c = startChild("ts-worker", queue, ["--rss-every-ms", "10000"]);
    const started = Date.now();
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
    await c.stop();
    const rss = c
      .output()
      .split("\n")
      .filter((l) => l.startsWith("rss "))
      .map((l) => l.split(" "))
      .map(([, t, v]) => `${Math.round((Number(t) - started) / 1000)}s:${(Number(v) / 2 ** 20).toFixed(0)}MiB`);
    console.log(`worker RSS over time: ${rss.join(" ")}`);
    if (perMinute.length >= 2) console.log(`last minute / first minute: ${(perMinute.at(-1) / perMinute[0]).toFixed(2)}`);
    await producer.close();
    await emulator.close();
  }
}
