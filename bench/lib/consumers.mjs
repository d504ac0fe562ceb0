#!/usr/bin/env node
// The benchmark's non-Celeriac contenders (and Celeriac on SQS, which the CLI does not take an
// emulator endpoint for), each run as its own process so every contender pays the same process
// start-up and none shares an event loop with the benchmark:
//   node bench/lib/consumers.mjs --role <role> --broker <url|endpoint> --queue <name> [--prefetch N] [--concurrency N] [--pollers N]
// Roles: amqp-raw, amqp-echo, redis-raw, sqs-raw, sqlite-raw (the bare client loop at a given prefetch),
// celery-node (amqp or redis), bullmq, sqs-consumer, sqs-celeriac. Each prints "ready" once it
// consumes, and stops on SIGTERM. Tasks are the no-op `bench.noop`.
import { dist } from "./common.mjs";

const argv = process.argv.slice(2);
const opt = {};
for (let i = 0; i < argv.length; i += 2) {
  if (!argv[i].startsWith("--") || argv[i + 1] === undefined) throw new Error(`consumers.mjs: bad argument ${argv[i]}`);
  opt[argv[i].slice(2)] = argv[i + 1];
}
const known = new Set(["role", "broker", "queue", "prefetch", "concurrency", "pollers"]);
for (const k of Object.keys(opt)) if (!known.has(k)) throw new Error(`consumers.mjs: unknown option --${k}`);
const { role, broker, queue } = opt;
const prefetch = Number(opt.prefetch ?? 40);
const concurrency = Number(opt.concurrency ?? 10);
const pollers = Number(opt.pollers ?? 8);
const region = "us-east-1";
const credentials = { accessKeyId: "bench", secretAccessKey: "bench" };

let stop = async () => {};
process.on("SIGTERM", () => void stop().finally(() => process.exit(0)));
const fail = (e) => {
  process.stderr.write(`${role}: ${e?.stack ?? e}\n`);
  process.exit(1);
};

async function sqsClient() {
  const { SQSClient, GetQueueUrlCommand } = await import("@aws-sdk/client-sqs");
  const http = await import("node:http");
  const client = new SQSClient({ endpoint: broker, region, credentials, requestHandler: { httpAgent: new http.Agent({ keepAlive: true, maxSockets: 64 }) } });
  const url = (await client.send(new GetQueueUrlCommand({ QueueName: queue }))).QueueUrl;
  return { client, url };
}

const roles = {
  /** amqplib: consume at `prefetch`, ack each message as it arrives (no decode). */
  async "amqp-raw"() {
    const { connect } = await import("amqplib");
    const conn = await connect(broker.replace(/\/\/?$/, "/%2F"), { noDelay: true });
    const ch = await conn.createChannel();
    await ch.prefetch(prefetch);
    await ch.consume(queue, (m) => ch.ack(m));
    stop = () => conn.close();
  },
  /**
   * amqplib: the floor of the rpc:// round trip. Consumes requests at `prefetch`, acks each, and
   * publishes its body back to `reply_to` (transient, with the request's correlation id), as a
   * worker with an rpc:// backend does, minus everything else a worker does.
   */
  async "amqp-echo"() {
    const { connect } = await import("amqplib");
    const conn = await connect(broker.replace(/\/\/?$/, "/%2F"), { noDelay: true });
    const ch = await conn.createConfirmChannel();
    await ch.prefetch(prefetch);
    await ch.assertQueue(queue, { durable: true });
    await ch.consume(queue, (m) => {
      ch.ack(m);
      ch.publish("", m.properties.replyTo, m.content, { correlationId: m.properties.correlationId, deliveryMode: 1 }, () => {});
    });
    stop = () => conn.close();
  },
  /**
   * ioredis, kombu's reliable-pop shape without kombu: take up to `prefetch` messages with one
   * RPOP count, record them in `unacked` (MULTI: HSET + ZADD), JSON-parse each, then ack them
   * (HDEL + ZREM, pipelined). BLPOP-style wait only when the list is empty.
   */
  async "redis-raw"() {
    const { Redis } = await import("ioredis");
    const r = new Redis(broker, { enableAutoPipelining: false });
    let running = true;
    stop = async () => {
      running = false;
      r.disconnect();
    };
    let tag = 0;
    void (async () => {
      while (running) {
        const batch = await r.rpop(queue, prefetch);
        if (!batch) {
          await new Promise((res) => setTimeout(res, 5));
          continue;
        }
        const tags = batch.map(() => `t${process.pid}-${tag++}`);
        const now = Date.now() / 1000;
        const hset = [];
        const zadd = [];
        batch.forEach((m, i) => {
          hset.push(tags[i], m);
          zadd.push(now, tags[i]);
        });
        await r
          .multi()
          .hset("unacked", ...hset)
          .zadd("unacked_index", ...zadd)
          .exec();
        for (const m of batch) JSON.parse(m);
        await r
          .pipeline()
          .hdel("unacked", ...tags)
          .zrem("unacked_index", ...tags)
          .exec();
      }
    })().catch(fail);
  },
  /** AWS SDK: `pollers` loops of ReceiveMessage(10) + DeleteMessageBatch. */
  async "sqs-raw"() {
    const { ReceiveMessageCommand, DeleteMessageBatchCommand } = await import("@aws-sdk/client-sqs");
    const { client, url } = await sqsClient();
    let running = true;
    stop = async () => {
      running = false;
    };
    for (let i = 0; i < pollers; i++) {
      void (async () => {
        while (running) {
          const r = await client.send(new ReceiveMessageCommand({ QueueUrl: url, MaxNumberOfMessages: 10, WaitTimeSeconds: 1 }));
          const ms = r.Messages ?? [];
          if (ms.length > 0)
            await client.send(new DeleteMessageBatchCommand({ QueueUrl: url, Entries: ms.map((m, j) => ({ Id: String(j), ReceiptHandle: m.ReceiptHandle })) }));
        }
      })().catch(fail);
    }
  },
  /** better-sqlite3 on kombu's tables: claim up to `prefetch` rows in one IMMEDIATE transaction, parse, delete them. */
  async "sqlite-raw"() {
    const { default: Database } = await import("better-sqlite3");
    const db = new Database(broker);
    db.pragma("busy_timeout = 5000");
    const q = db.prepare("SELECT id FROM kombu_queue WHERE name = ?").get(queue);
    if (!q) throw new Error(`no kombu_queue row named ${queue}`);
    const claim = db.prepare(
      "UPDATE kombu_message SET visible = 0 WHERE id IN (SELECT id FROM kombu_message WHERE queue_id = ? AND visible = 1 ORDER BY id LIMIT ?) RETURNING id, payload",
    );
    const claimTx = db.transaction(() => claim.all(q.id, prefetch)).immediate;
    const del = db.prepare("DELETE FROM kombu_message WHERE id = ?");
    const delTx = db.transaction((ids) => {
      for (const id of ids) del.run(id);
    }).immediate;
    let running = true;
    stop = async () => {
      running = false;
    };
    void (async () => {
      while (running) {
        const rows = claimTx();
        if (rows.length === 0) {
          await new Promise((res) => setTimeout(res, 5));
          continue;
        }
        for (const r of rows) JSON.parse(r.payload);
        delTx(rows.map((r) => r.id));
        await new Promise((res) => setImmediate(res));
      }
    })().catch(fail);
  },
  /**
   * celery-node 0.5.9, its only mode: on AMQP it consumes with no prefetch limit and acks each
   * message before running it; on Redis one BRPOP at a time, no ack. It has no ignore_result, so
   * its per-task result write is switched off (Celeriac and Python run these tasks with
   * ignore_result, and write nothing either); its per-task console.info lines are silenced, as
   * the other workers run quiet.
   */
  async "celery-node"() {
    const celery = (await import("celery-node")).default;
    console.info = () => {};
    const worker = celery.createWorker(broker, broker, queue);
    worker.backend.storeResult = () => Promise.resolve();
    worker.register("bench.noop", async () => null);
    void worker.start();
    // No stop(): its disconnect waits out a 5 s BRPOP; the drain is over when it is asked to stop.
  },
  /** BullMQ 5: a Worker of `concurrency` on its own queue format; jobs are removed on completion. */
  async bullmq() {
    const { Worker } = await import("bullmq");
    const u = new URL(broker);
    const connection = { host: u.hostname, port: Number(u.port), db: Number(u.pathname.slice(1) || 0), maxRetriesPerRequest: null };
    const worker = new Worker(queue, async () => null, { connection, concurrency });
    worker.on("error", (e) => process.stderr.write(`${e.message}\n`));
    await worker.waitUntilReady();
    stop = () => worker.close();
  },
  /** sqs-consumer 11: `pollers` consumers, batchSize 10, handleMessageBatch. */
  async "sqs-consumer"() {
    const { Consumer } = await import("sqs-consumer");
    const { client, url } = await sqsClient();
    const consumers = [];
    for (let i = 0; i < pollers; i++) {
      const c = Consumer.create({ queueUrl: url, sqs: client, batchSize: 10, waitTimeSeconds: 1, handleMessageBatch: async (ms) => ms });
      c.on("error", (e) => process.stderr.write(`${e.message}\n`));
      c.start();
      consumers.push(c);
    }
    stop = async () => {
      for (const c of consumers) c.stop();
    };
  },
  /** The Celeriac worker (createWorker) on @celeriac/sqs with `pollers` pollers, at `concurrency`. */
  async "sqs-celeriac"() {
    const { createSqsTransport } = await dist("sqs");
    const { createWorker } = await dist("worker");
    const transport = createSqsTransport({ endpoint: broker, region, credentials, pollers, waitTimeSeconds: 1 });
    await transport.connect();
    const worker = createWorker({ transport, queues: [queue], concurrency, silent: true });
    worker.register("bench.noop", async () => null, { ignoreResult: true });
    await worker.start();
    stop = () => worker.stop().then(() => transport.close());
  },
};

if (!roles[role]) fail(new Error(`unknown role ${role}; one of ${Object.keys(roles).join(", ")}`));
await roles[role]().catch(fail);
process.stdout.write("ready\n");
