// RabbitMQ: drains, publish with confirms, rpc:// latency, memory, SIGKILL at late ack.
import { randomUUID } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { connect } from "amqplib";
import { dist, noopEncoder, percentile, sleep, waitFor } from "../lib/common.mjs";
import { celeriacContender, measureMemory, startCeleriacWorker, startConsumer, startPythonWorker, timeDrain } from "../lib/procs.mjs";
import { runPython, startRabbit } from "../lib/support.mjs";

const { createClient } = await dist("core");
const { createAmqpTransport, createRpcResultBackend } = await dist("amqp");

const noop = await noopEncoder();

export async function createAmqpSuite(cfg, log) {
  const node = await startRabbit();
  const url = node.url;
  const rawUrl = url.replace(/\/\/?$/, "/%2F");
  const conn = await connect(rawUrl, { noDelay: true });
  const ch = await conn.createChannel();
  const publisher = createAmqpTransport({ url });
  await publisher.connect();
  const depth = async (q) => (await ch.checkQueue(q)).messageCount;
  const declare = (q) => ch.assertQueue(q, { durable: true });

  let publishRep = 0;

  /** Celeriac client, publisher confirms, `window` publishes in flight. Resolves with the rate. */
  async function publishCeleriac(queue, n, window = 200, make = noop) {
    await publisher.publish(queue, make(-1)); // declares the queue, outside the clock
    await ch.purgeQueue(queue);
    const started = performance.now();
    let next = 0;
    await Promise.all(
      Array.from({ length: Math.min(window, n) }, async () => {
        while (next < n) await publisher.publish(queue, make(next++));
      }),
    );
    return n / ((performance.now() - started) / 1000);
  }

  /** amqplib on a confirm channel, `window` in flight, each message as given ({ content, options }). */
  async function publishRaw(queue, messages, window = 200) {
    const cch = await conn.createConfirmChannel();
    await cch.assertQueue(queue, { durable: true });
    const started = performance.now();
    let next = 0;
    await Promise.all(
      Array.from({ length: Math.min(window, messages.length) }, async () => {
        while (next < messages.length) {
          const m = messages[next++];
          await new Promise((res, rej) => cch.publish("", queue, m.content, m.options, (e) => (e ? rej(e) : res())));
        }
      }),
    );
    const rate = messages.length / ((performance.now() - started) / 1000);
    await cch.close();
    return rate;
  }

  const celeriacMessages = (n) =>
    Array.from({ length: n }, (_, i) => {
      const m = noop(i);
      return { content: Buffer.from(m.body), options: { contentType: m.contentType, contentEncoding: m.contentEncoding, headers: m.headers, deliveryMode: 2 } };
    });

  // Messages produced by Python Celery itself: apply_async of bench.noop, captured once with every
  // property and replayed by amqplib before each drain (so the fill costs the same for everyone).
  log(`amqp: Python apply_async of ${cfg.pythonProduce} tasks (captured once, replayed before each drain)...`);
  await declare("bench-py-src");
  const pyOut = JSON.parse(
    (await runPython({ brokerUrl: url }, "amqp_bench_publish.py", ["bench-py-src", String(cfg.pythonProduce)], 10 * 60_000)).trim().split("\n").pop(),
  );
  const pythonApplyAsyncRate = pyOut.n / pyOut.secs;
  const pyMessages = [];
  await new Promise((resolve, reject) => {
    const target = cfg.pythonProduce + 1; // the script sends one more, outside its clock
    void ch
      .consume("bench-py-src", (m) => {
        const options = Object.fromEntries(Object.entries(m.properties).filter(([, v]) => v !== undefined));
        pyMessages.push({ content: m.content, options });
        ch.ack(m);
        if (pyMessages.length === target) resolve();
      })
      .catch(reject);
  });
  pyMessages.length = cfg.pythonProduce;

  const fill = async (queue, producer, n) => {
    await declare(queue);
    await ch.purgeQueue(queue);
    if (producer === "python") await publishRaw(queue, pyMessages.slice(0, n));
    else await publishCeleriac(queue, n);
  };

  const c = cfg.concurrency;
  const contenders = [
    ...c.map((k) => celeriacContender(k, (q) => startCeleriacWorker({ broker: url, queue: q, concurrency: k }))),
    ...c.map((k) => ({
      id: `raw-p${4 * k}`,
      kind: "raw",
      prefetch: 4 * k,
      label: `raw amqplib consume + ack, prefetch ${4 * k}`,
      start: (q) => startConsumer("amqp-raw", { broker: url, queue: q, prefetch: 4 * k }),
    })),
    {
      id: "celery-node",
      kind: "celery-node",
      label: "celery-node 0.5.9 (no prefetch limit, acks before running)",
      start: (q) => startConsumer("celery-node", { broker: url, queue: q }),
    },
    { id: "python", kind: "python", label: "Python Celery 5.2.6 (prefork `-c 2`)", python: true, start: (q) => startPythonWorker({ broker: url, queue: q }) },
  ];

  /**
   * The same round trip with nothing but amqplib: a persistent request published with a confirm
   * (as the Celeriac client and Celery send tasks), an echo process (`amqp-echo`) that acks it and
   * publishes the reply to `reply_to`, paced at 40/s; each sample waits for both the confirm and
   * the reply, as `await sendTask(...)` then `get()` does.
   */
  async function rawEchoLatency(n) {
    const queue = "bench-latency-raw";
    const echo = startConsumer("amqp-echo", { broker: url, queue, prefetch: 40 });
    const conn = await connect(url.replace(/\/\/?$/, "/%2F"), { noDelay: true });
    try {
      const cch = await conn.createConfirmChannel();
      const replyQueue = (await cch.assertQueue("", { exclusive: true, durable: false, autoDelete: true })).queue;
      const waiting = new Map();
      await cch.consume(replyQueue, (m) => waiting.get(m.properties.correlationId)?.(), { noAck: true });
      const once = async (i) => {
        const id = randomUUID();
        const reply = new Promise((r) => waiting.set(id, r));
        const body = Buffer.from(JSON.stringify([[i], {}, { callbacks: null, errbacks: null, chain: null, chord: null }]));
        const confirmed = new Promise((res, rej) =>
          cch.publish("", queue, body, { correlationId: id, replyTo: replyQueue, deliveryMode: 2 }, (e) => (e ? rej(e) : res())),
        );
        await Promise.all([confirmed, reply]);
        waiting.delete(id);
      };
      // Warm-up: waits for the echo process to consume.
      await waitFor("amqp-echo consuming", () => Promise.race([once(-1).then(() => true), sleep(1000).then(() => false)]), {
        everyMs: 10,
        proc: echo,
        timeoutMs: 60_000,
      });
      const samples = [];
      const started = performance.now();
      for (let i = 0; i < n; i++) {
        const due = started + i * 25;
        if (performance.now() < due) await sleep(due - performance.now());
        const t0 = performance.now();
        await once(i);
        samples.push(performance.now() - t0);
      }
      return { n: samples.length, p50: percentile(samples, 0.5), p95: percentile(samples, 0.95), p99: percentile(samples, 0.99) };
    } finally {
      await conn.close();
      await echo.stop();
    }
  }

  return {
    broker: "amqp",
    title: "RabbitMQ",
    producers: ["celeriac", "python"],
    contenders,
    pythonApplyAsyncRate,
    async drain(contender, producer) {
      const queue = `bench-${contender.id}-${producer}`;
      const n = contender.python ? cfg.pythonTasks : producer === "python" ? Math.min(cfg.tasks, cfg.pythonProduce) : cfg.tasks;
      await fill(queue, producer, n);
      const proc = contender.start(queue);
      return timeDrain(`amqp ${contender.id}`, n, proc, async () => ({ left: await depth(queue), taken: false }));
    },
    async publish() {
      const n = cfg.tasks;
      // The same work as the raw loop: messages built before the clock starts, then published.
      const built = Array.from({ length: n }, (_, i) => noop(i));
      const runs = {
        celeriacBuilt: () => publishCeleriac("bench-publish", n, 200, (k) => (k < 0 ? noop(k) : built[k])),
        // What an application sees: each task's envelope encoded as it is sent.
        celeriac: () => publishCeleriac("bench-publish", n, 200),
        raw: () => publishRaw("bench-publish", celeriacMessages(n), 200),
      };
      // The first publish after the drains runs slower (the broker is still cleaning up after
      // them), so each rep starts with a different one.
      const order = Object.keys(runs);
      for (let i = 0; i < publishRep % order.length; i++) order.push(order.shift());
      publishRep++;
      const out = {};
      for (const k of order) {
        out[k] = await runs[k]();
        await ch.purgeQueue("bench-publish");
      }
      return out;
    },
    async latency() {
      const queue = "bench-latency";
      const proc = startCeleriacWorker({
        broker: url,
        queue,
        concurrency: 10,
        tasks: "bench/amqp-latency-tasks.mjs",
        resultBackend: url.replace(/^amqp:/, "rpc:"),
      });
      const transport = createAmqpTransport({ url });
      const resultBackend = createRpcResultBackend({ url });
      const client = createClient({ transport, resultBackend, defaultQueue: queue });
      try {
        // Warm-up: waits for the worker, and the first reply queue.
        for (let i = 0; i < 20; i++) await (await client.sendTask("bench.echo", { args: [i] })).get({ timeoutMs: 60_000 });
        const samples = [];
        const started = performance.now();
        for (let i = 0; i < cfg.latencySamples; i++) {
          // Paced at 40 tasks/s: task i is sent at i * 25 ms (or at once when behind).
          const due = started + i * 25;
          if (performance.now() < due) await sleep(due - performance.now());
          const t0 = performance.now();
          await (await client.sendTask("bench.echo", { args: [i] })).get({ timeoutMs: 10_000 });
          samples.push(performance.now() - t0);
        }
        const floor = await rawEchoLatency(cfg.latencySamples);
        return { n: samples.length, p50: percentile(samples, 0.5), p95: percentile(samples, 0.95), p99: percentile(samples, 0.99), floor };
      } finally {
        await transport.close();
        await resultBackend.close();
        await proc.stop();
      }
    },
    async memory() {
      const out = [];
      const workers = [
        {
          label: "Celeriac worker `-c 10`",
          kind: "celeriac",
          n: cfg.memoryTasks,
          start: (q) => startCeleriacWorker({ broker: url, queue: q, concurrency: 10 }),
        },
        { label: "celery-node 0.5.9", kind: "celery-node", n: cfg.memoryTasks, start: (q) => startConsumer("celery-node", { broker: url, queue: q }) },
        {
          label: "Python Celery 5.2.6 (prefork `-c 2`, all processes)",
          kind: "python",
          n: cfg.pythonMemoryTasks,
          start: (q) => startPythonWorker({ broker: url, queue: q }),
        },
      ];
      for (const w of workers) {
        const queue = `bench-mem-${w.kind}`;
        await declare(queue);
        await ch.purgeQueue(queue);
        let probed = false;
        const proc = w.start(queue);
        const r = await measureMemory(`amqp memory ${w.kind}`, proc, {
          ready: async () => {
            if (!probed) await publishCeleriac(queue, 1);
            probed = true;
            return (await depth(queue)) === 0;
          },
          fill: () => publishCeleriac(queue, w.n),
          isEmpty: async () => (await depth(queue)) === 0,
        });
        out.push({ label: w.label, kind: w.kind, n: w.n, ...r });
        log(`amqp memory ${w.label}: idle ${r.idleMb.toFixed(0)} MB, after ${w.n} tasks ${r.afterMb.toFixed(0)} MB`);
      }
      return out;
    },
    async sigkill() {
      return sigkillCheck({
        n: cfg.sigkillTasks,
        log,
        start: (env) => startCeleriacWorker({ broker: url, queue: "bench-sigkill", concurrency: 10, tasks: "bench/record-tasks.mjs", env }),
        fill: async (ids) => {
          await declare("bench-sigkill");
          await ch.purgeQueue("bench-sigkill");
          let i = 0;
          await publishCeleriac("bench-sigkill", ids.length, 200, (k) => (k < 0 ? noop(k, "bench.record") : noop(k, "bench.record", ids[i++])));
          // publishCeleriac's queue-declaring message was purged; only the ids remain.
        },
        isEmpty: async () => (await depth("bench-sigkill")) === 0,
      });
    },
    async close() {
      await publisher.close().catch(() => {});
      await conn.close().catch(() => {});
      await node.shutdown();
    },
  };
}

/**
 * No loss under SIGKILL at late ack: `n` tasks that append their id to a file, a worker killed
 * with SIGKILL (its whole process group) once a third ran, a new worker started, and every id
 * counted once the queue is empty. Shared by the RabbitMQ and Redis suites.
 */
export async function sigkillCheck({ n, log, start, fill, isEmpty }) {
  const dir = mkdtempSync(join(tmpdir(), "bench-sigkill-"));
  const file = join(dir, "ran.txt");
  writeFileSync(file, "");
  const ids = Array.from({ length: n }, () => randomUUID());
  const ran = () => readFileSync(file, "utf8").split("\n").filter(Boolean);
  try {
    await fill(ids);
    const first = start({ BENCH_RECORD_FILE: file });
    await waitFor("sigkill check: a third ran", () => ran().length >= n / 3, { everyMs: 2, proc: first, timeoutMs: 120_000 });
    await first.kill();
    const atKill = ran().length;
    const second = start({ BENCH_RECORD_FILE: file });
    try {
      const want = new Set(ids);
      await waitFor("sigkill check: every task ran after the restart", async () => (await isEmpty()) && new Set(ran()).size >= want.size, {
        everyMs: 100,
        proc: second,
        timeoutMs: 120_000,
      }).catch((e) => log(`${e.message.split("\n")[0]}`));
    } finally {
      await second.stop();
    }
    const counts = new Map();
    for (const id of ran()) counts.set(id, (counts.get(id) ?? 0) + 1);
    const lost = ids.filter((id) => !counts.has(id)).length;
    const again = ids.filter((id) => (counts.get(id) ?? 0) > 1).length;
    return { n, ranBeforeKill: atKill, lost, ranTwice: again };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
