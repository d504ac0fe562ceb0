// SQS on the local emulator: drains (Celeriac worker, raw SDK loop, sqs-consumer, Python) and memory.
import { randomUUID } from "node:crypto";
import { GetQueueAttributesCommand, SendMessageBatchCommand } from "@aws-sdk/client-sqs";
import { dist, noopEncoder } from "../lib/common.mjs";
import { measureMemory, startConsumer, startPythonWorker, timeDrain } from "../lib/procs.mjs";
import { startSqsEmulator } from "../lib/support.mjs";

const { createSqsTransport } = await dist("sqs");
const region = "us-east-1";
const credentials = { accessKeyId: "bench", secretAccessKey: "bench" };
const POLLERS = 8;

/**
 * Fills `queue` with `n` no-op tasks as the transport (and kombu) sends them, base64 of kombu's
 * JSON envelope: SendMessageBatch of 10, 8 in flight. Returns the queue URL.
 */
export async function fillQueue(producer, queue, n) {
  const url = await producer.queueUrl(queue);
  const noop = await noopEncoder();
  const body = (i) => producer["encodeBody"](noop(i), "bench");
  let next = 0;
  const lane = async () => {
    while (next < n) {
      const start = next;
      next = Math.min(n, next + 10);
      const Entries = [];
      for (let i = start; i < next; i++) Entries.push({ Id: String(i - start), MessageBody: body(i) });
      await producer.client.send(new SendMessageBatchCommand({ QueueUrl: url, Entries }));
    }
  };
  await Promise.all(Array.from({ length: 8 }, lane));
  return url;
}

export async function createSqsSuite(cfg, log) {
  const emulator = await startSqsEmulator();
  const producer = createSqsTransport({ endpoint: emulator.endpoint, region, credentials });
  const sqs = producer.client;
  const fill = (queue, n) => fillQueue(producer, queue, n);

  async function state(url) {
    const r = await sqs.send(
      new GetQueueAttributesCommand({ QueueUrl: url, AttributeNames: ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"] }),
    );
    // The emulator's ApproximateNumberOfMessages counts hidden ones too: it is the total.
    return { left: Number(r.Attributes.ApproximateNumberOfMessages), taken: Number(r.Attributes.ApproximateNumberOfMessagesNotVisible) > 0 };
  }

  const pyBroker = `sqs://bench:bench@127.0.0.1:${emulator.port}`;
  const c = 10 * POLLERS;
  const contenders = [
    {
      id: `celeriac-c${c}`,
      kind: "celeriac",
      label: `Celeriac worker (createWorker, ${POLLERS} pollers, concurrency ${c})`,
      start: (q) => startConsumer("sqs-celeriac", { broker: emulator.endpoint, queue: q, pollers: POLLERS, concurrency: c }),
    },
    {
      id: "raw",
      kind: "raw",
      label: `raw SDK Receive(10) + DeleteMessageBatch, ${POLLERS} pollers`,
      start: (q) => startConsumer("sqs-raw", { broker: emulator.endpoint, queue: q, pollers: POLLERS }),
    },
    {
      id: "sqs-consumer",
      kind: "sqs-consumer",
      label: `sqs-consumer 11, ${POLLERS} consumers, batch 10`,
      start: (q) => startConsumer("sqs-consumer", { broker: emulator.endpoint, queue: q, pollers: POLLERS }),
    },
    {
      id: "python",
      kind: "python",
      python: true,
      label: "Python Celery 5.2.6 (prefork `-c 2`)",
      start: (q) => startPythonWorker({ broker: pyBroker, queue: q, app: "sqs_app" }),
    },
  ];

  return {
    broker: "sqs",
    title: "SQS (local emulator)",
    producers: ["celeriac"],
    baseline: { date: "2026-12-01", what: "`node bench/sqs-bench.mjs`, 20,000 tasks", rate: 3541, rawRatio: 1.0 },
    contenders,
    async drain(contender) {
      // In kombu's query protocol the emulator's receive breaks once a queue holds 10,000 visible
      // messages: Python gets at most 5,000.
      const n = contender.python ? Math.min(cfg.pythonTasks, 5000) : cfg.tasks;
      const queue = `bench-${contender.id}-${randomUUID().slice(0, 8)}`;
      const url = await fill(queue, n);
      // Every 25 ms, as bench/sqs-bench.mjs: each poll is an HTTP request to the emulator, which
      // runs in this process, so polling every 5 ms took CPU from the drain being timed.
      return timeDrain(`sqs ${contender.id}`, n, contender.start(queue), () => state(url), { everyMs: 25 });
    },
    async memory() {
      const queue = `bench-mem-${randomUUID().slice(0, 8)}`;
      const url = await producer.queueUrl(queue);
      let probed = false;
      const r = await measureMemory(
        "sqs memory celeriac",
        startConsumer("sqs-celeriac", { broker: emulator.endpoint, queue, pollers: POLLERS, concurrency: c }),
        {
          ready: async () => {
            if (!probed) await fill(queue, 1);
            probed = true;
            return (await state(url)).left === 0;
          },
          fill: () => fill(queue, cfg.memoryTasks),
          isEmpty: async () => (await state(url)).left === 0,
        },
      );
      log(`sqs memory Celeriac: idle ${r.idleMb.toFixed(0)} MB, after ${cfg.memoryTasks} tasks ${r.afterMb.toFixed(0)} MB`);
      return [{ label: `Celeriac worker (concurrency ${c})`, kind: "celeriac", n: cfg.memoryTasks, ...r }];
    },
    async close() {
      await producer.close();
      await emulator.close();
    },
  };
}
