// Redis: drains (Celeriac, raw ioredis, celery-node, BullMQ, Python), publish, memory, SIGKILL at late ack.
import { Queue } from "bullmq";
import { Redis } from "ioredis";
import { fill as fillCeleriac, STEPS } from "../redis-common.mjs";
import { celeriacContender, measureMemory, startCeleriacWorker, startConsumer, startPythonWorker, timeDrain } from "../lib/procs.mjs";
import { runPython, startRedisServer } from "../lib/support.mjs";
import { sigkillCheck } from "./amqp.mjs";
import { dist, publishNoops } from "../lib/common.mjs";

const { createEnvelope, celeryJsonCodec } = await dist("core");
const { createRedisTransport } = await dist("redis");

export async function createRedisSuite(cfg, log) {
  const server = await startRedisServer();
  const url = (db) => server.url(db);
  const admin = new Redis(url(0));
  const on = (db) => {
    const r = new Redis(url(db));
    return r;
  };

  /** kombu's lists of `queue` (every priority step) plus `unacked`: what is not yet acked. */
  async function kombuLeft(r, queue = "celery") {
    const p = r.multi();
    for (const s of STEPS) p.llen(queue + s);
    p.hlen("unacked");
    const res = await p.exec();
    return res.reduce((a, [, v]) => a + v, 0);
  }

  /** Pushes kombu-format strings as they are, in pipelined bursts of 1,000; resolves with the rate. */
  async function pushRaw(db, strings, queue = "celery") {
    const r = on(db);
    const started = performance.now();
    for (let i = 0; i < strings.length; i += 1000) await r.lpush(queue, ...strings.slice(i, i + 1000));
    const rate = strings.length / ((performance.now() - started) / 1000);
    r.disconnect();
    return rate;
  }

  // Python-produced messages: apply_async by Python Celery, captured once, pushed back before each drain.
  log(`redis: Python apply_async of ${cfg.pythonProduce} tasks (captured once, replayed before each drain)...`);
  const pyOut = JSON.parse(
    (await runPython({ brokerUrl: url(15) }, "amqp_bench_publish.py", ["celery", String(cfg.pythonProduce)], 10 * 60_000)).trim().split("\n").pop(),
  );
  const pythonApplyAsyncRate = pyOut.n / pyOut.secs;
  const src = on(15);
  // LPUSH puts the newest first: reverse so that re-pushing keeps the publish order.
  const pyMessages = (await src.lrange("celery", 0, -1)).reverse().slice(0, cfg.pythonProduce);
  src.disconnect();

  // One database per contender, flushed before each fill.
  let nextDb = 1;
  const db = () => nextDb++;
  const c = cfg.concurrency;
  const bullConcurrency = Math.max(...c);
  const contenders = [
    ...c.map((k) => celeriacContender(k, (d) => startCeleriacWorker({ broker: url(d), concurrency: k }), { db: db() })),
    ...c.map((k) => ({
      id: `raw-p${4 * k}`,
      kind: "raw",
      db: db(),
      prefetch: 4 * k,
      label: `raw ioredis RPOP ${4 * k} + unacked bookkeeping + ack`,
      start: (d) => startConsumer("redis-raw", { broker: url(d), prefetch: 4 * k }),
    })),
    {
      id: "celery-node",
      kind: "celery-node",
      db: db(),
      label: "celery-node 0.5.9 (one BRPOP at a time, no ack)",
      start: (d) => startConsumer("celery-node", { broker: url(d) }),
    },
    {
      id: `bullmq-c${bullConcurrency}`,
      kind: "bullmq",
      db: db(),
      bull: true,
      label: `BullMQ 5 Worker, concurrency ${bullConcurrency} (its own job format)`,
      start: (d) => startConsumer("bullmq", { broker: url(d), queue: "bench", concurrency: bullConcurrency }),
    },
    {
      id: "python",
      kind: "python",
      db: db(),
      python: true,
      label: "Python Celery 5.2.6 (prefork `-c 2`)",
      start: (d) => startPythonWorker({ broker: url(d) }),
    },
  ];

  async function fillBull(d, n) {
    const queue = new Queue("bench", { connection: { host: "127.0.0.1", port: server.port, db: d, maxRetriesPerRequest: null } });
    for (let i = 0; i < n; i += 1000) {
      const jobs = [];
      for (let j = i; j < Math.min(n, i + 1000); j++) jobs.push({ name: "noop", data: { j }, opts: { removeOnComplete: true, removeOnFail: true } });
      await queue.addBulk(jobs);
    }
    await queue.close();
  }

  return {
    broker: "redis",
    title: "Redis",
    producers: ["celeriac", "python"],
    contenders,
    pythonApplyAsyncRate,
    async drain(contender, producer) {
      if (contender.bull && producer === "python") return null; // BullMQ reads only its own format
      const d = contender.db;
      const n = contender.python ? cfg.pythonTasks : producer === "python" && !contender.bull ? Math.min(cfg.tasks, cfg.pythonProduce) : cfg.tasks;
      const r = on(d);
      try {
        await r.flushdb();
        if (contender.bull) await fillBull(d, n);
        else if (producer === "python") await pushRaw(d, pyMessages.slice(0, n));
        else await fillCeleriac(url(d), n);
        const state = contender.bull
          ? async () => {
              const [[, w], [, a], [, p]] = await r.multi().llen("bull:bench:wait").llen("bull:bench:active").zcard("bull:bench:prioritized").exec();
              return { left: w + a + p, taken: a > 0 };
            }
          : async () => ({ left: await kombuLeft(r), taken: false });
        return await timeDrain(`redis ${contender.id}`, n, contender.start(d), state);
      } finally {
        r.disconnect();
      }
    },
    async publish() {
      // Celeriac's transport (bursts of 1,000 publishes, auto-pipelined) vs ioredis LPUSH of the same
      // kombu strings, one command per message, pipelined in bursts of 1,000.
      const d = 14;
      const n = cfg.tasks;
      const celeriac = await fillCeleriac(url(d), n);
      const r = on(d);
      const strings = await r.lrange("celery", 0, -1);
      await r.flushdb();
      // One LPUSH per message, as a publisher does, pipelined in bursts of 1,000.
      const started = performance.now();
      for (let i = 0; i < strings.length; i += 1000) {
        const p = r.pipeline();
        for (const m of strings.slice(i, i + 1000)) p.lpush("celery", m);
        await p.exec();
      }
      const raw = strings.length / ((performance.now() - started) / 1000);
      await r.flushdb();
      r.disconnect();
      return { celeriac, raw };
    },
    async memory() {
      const out = [];
      const workers = [
        { label: "Celeriac worker `-c 10`", kind: "celeriac", n: cfg.memoryTasks, start: (d) => startCeleriacWorker({ broker: url(d), concurrency: 10 }) },
        { label: "celery-node 0.5.9", kind: "celery-node", n: cfg.memoryTasks, start: (d) => startConsumer("celery-node", { broker: url(d) }) },
        {
          label: "Python Celery 5.2.6 (prefork `-c 2`, all processes)",
          kind: "python",
          n: cfg.pythonMemoryTasks,
          start: (d) => startPythonWorker({ broker: url(d) }),
        },
      ];
      const d = 13;
      for (const w of workers) {
        const r = on(d);
        await r.flushdb();
        const transport = createRedisTransport({ url: url(d) });
        await transport.connect();
        const publish = (n) => publishNoops(transport, "celery", n);
        let probed = false;
        try {
          const res = await measureMemory(`redis memory ${w.kind}`, w.start(d), {
            ready: async () => {
              if (!probed) await publish(1);
              probed = true;
              return (await kombuLeft(r)) === 0;
            },
            fill: () => publish(w.n),
            isEmpty: async () => (await kombuLeft(r)) === 0,
          });
          out.push({ label: w.label, kind: w.kind, n: w.n, ...res });
          log(`redis memory ${w.label}: idle ${res.idleMb.toFixed(0)} MB, after ${w.n} tasks ${res.afterMb.toFixed(0)} MB`);
        } finally {
          await transport.close();
          r.disconnect();
        }
      }
      return out;
    },
    async sigkill() {
      const d = 12;
      // kombu's visibility timeout puts a dead worker's unacked messages back: 2 s here, so the check is quick.
      const broker = `${url(d)}?visibility_timeout=2`;
      const r = on(d);
      try {
        return await sigkillCheck({
          n: cfg.sigkillTasks,
          log,
          start: (env) => startCeleriacWorker({ broker, concurrency: 10, tasks: "bench/record-tasks.mjs", env }),
          fill: async (ids) => {
            await r.flushdb();
            const transport = createRedisTransport({ url: url(d) });
            await transport.connect();
            for (let i = 0; i < ids.length; i += 1000)
              await Promise.all(
                ids
                  .slice(i, i + 1000)
                  .map((id, j) =>
                    transport.publish(
                      "celery",
                      celeryJsonCodec.encode(createEnvelope({ task: "bench.record", id, args: [i + j], headers: { ignoreResult: true } })),
                    ),
                  ),
              );
            await transport.close();
          },
          isEmpty: async () => (await kombuLeft(r)) === 0,
        });
      } finally {
        r.disconnect();
      }
    },
    async close() {
      admin.disconnect();
      await server.dispose();
    },
  };
}
