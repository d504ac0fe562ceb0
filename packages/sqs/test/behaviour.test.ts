import { spawn } from "node:child_process";
import { randomUUID } from "node:crypto";
import { fileURLToPath } from "node:url";
import { GetQueueAttributesCommand } from "@aws-sdk/client-sqs";
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from "vitest";
import { buildForChildren, type ChildBuild } from "../../../test-support/build-for-children.js";
import { celeryJsonCodec, createClient, createEnvelope } from "@celeriac/core";
import type { DeadLetter, Delivery } from "@celeriac/core/transport";
import { createWorker, type Worker } from "@celeriac/worker";
import { createSqsTransport, type SqsTransport, type SqsTransportOptions } from "@celeriac/sqs";
import { startSqsEmulator, type SqsEmulator } from "../../../test-support/sqs-emulator.mjs";

let emulator: SqsEmulator;
const open: { close(): Promise<void> }[] = [];

beforeAll(async () => {
  emulator = await startSqsEmulator();
});
afterAll(async () => {
  for (const t of open.splice(0).reverse()) await t.close();
  await emulator.close();
});

function transport(options: SqsTransportOptions = {}): SqsTransport {
  const t = createSqsTransport({
    endpoint: emulator.endpoint,
    region: "us-east-1",
    credentials: { accessKeyId: "test", secretAccessKey: "test" },
    waitTimeSeconds: 1,
    ...options,
  });
  open.push(t);
  return t;
}

const queueName = (what: string) => `${what}-${randomUUID().slice(0, 8)}`;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function counts(t: SqsTransport, queue: string): Promise<{ visible: number; hidden: number }> {
  const r = await t.client.send(
    new GetQueueAttributesCommand({
      QueueUrl: await t.queueUrl(queue),
      AttributeNames: ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    }),
  );
  // The emulator's ApproximateNumberOfMessages counts hidden messages too (real SQS does not).
  const hidden = Number(r.Attributes?.ApproximateNumberOfMessagesNotVisible);
  return { visible: Number(r.Attributes?.ApproximateNumberOfMessages) - hidden, hidden };
}

/** Two workers on one queue, each with its own transport: a redelivery would run the task twice. */
async function twoWorkers(queue: string, register: (w: Worker) => void): Promise<Worker[]> {
  const workers = [];
  for (let i = 0; i < 2; i++) {
    const t = transport({ visibilityTimeoutMs: 1000 });
    // Heartbeats well inside the 1 s visibility timeout, each reaching 3 s out.
    const w = createWorker({ transport: t, queues: [queue], concurrency: 2, etaHeartbeatMs: 300, visibilityExtensionMs: 3000, silent: true });
    register(w);
    await w.start();
    open.unshift({ close: () => w.stop() });
    workers.push(w);
  }
  return workers;
}

describe("visibility", () => {
  it("a task running longer than the visibility timeout finishes once, not twice", async () => {
    const queue = queueName("long-task");
    const runs: string[] = [];
    const ws = await twoWorkers(queue, (w) =>
      w.register(
        "slow",
        async (ctx) => {
          runs.push(ctx.hostname);
          await sleep(3500);
        },
        { acksLate: true },
      ),
    );
    const producer = transport();
    await createClient({ transport: producer, defaultQueue: queue }).sendTask("slow");
    const deadline = Date.now() + 15_000;
    while (ws.reduce((n, w) => n + w.counters.succeeded, 0) < 1 && Date.now() < deadline) await sleep(100);
    await sleep(1500); // a redelivery would have started by now
    expect(runs).toHaveLength(1);
    expect(await counts(producer, queue)).toEqual({ visible: 0, hidden: 0 });
  }, 30_000);

  it("a task with an ETA beyond the visibility timeout runs once, at its ETA", async () => {
    const queue = queueName("eta");
    const ranAt: number[] = [];
    await twoWorkers(queue, (w) => w.register("at", async () => void ranAt.push(Date.now())));
    const sent = Date.now();
    await createClient({ transport: transport(), defaultQueue: queue }).sendTask("at", { countdownMs: 3000 });
    await sleep(5500);
    expect(ranAt).toHaveLength(1);
    expect(ranAt[0]! - sent).toBeGreaterThanOrEqual(2900);
  }, 20_000);

  it("the worker hands an ETA beyond its horizon back in DelaySeconds hops, not held, and runs it once at its ETA", async () => {
    const queue = queueName("far-eta");
    const t = transport({ visibilityTimeoutMs: 1000 });
    const received: number[] = [];
    const ranAt: number[] = [];
    const w = createWorker({
      transport: t,
      queues: [queue],
      concurrency: 2,
      silent: true,
      handBackEtaBeyondMs: 1500,
      onEvent: (e) => e.type === "task-received" && received.push(Date.now()),
    });
    w.register("far", async () => void ranAt.push(Date.now()));
    await w.start();
    open.unshift({ close: () => w.stop() });
    const sent = Date.now();
    await createClient({ transport: transport(), defaultQueue: queue }).sendTask("far", { countdownMs: 4000 });
    await sleep(1000);
    // Re-sent with a delay: nothing is held in flight meanwhile.
    expect(await counts(t, queue)).toMatchObject({ hidden: 0 });
    await sleep(4500);
    expect(ranAt).toHaveLength(1);
    expect(ranAt[0]! - sent).toBeGreaterThanOrEqual(3900);
    // The worker saw it once, within the horizon of its ETA.
    expect(received).toHaveLength(1);
    expect(ranAt[0]! - received[0]!).toBeLessThanOrEqual(1600);
  }, 20_000);

  it("on a FIFO queue the worker holds a far ETA instead (no per-message delay there), and runs it once at its ETA", async () => {
    const queue = `${queueName("far-eta")}.fifo`;
    const t = transport({ visibilityTimeoutMs: 1000 });
    const received: number[] = [];
    const ranAt: number[] = [];
    const w = createWorker({
      transport: t,
      queues: [queue],
      concurrency: 2,
      silent: true,
      handBackEtaBeyondMs: 1500,
      etaHeartbeatMs: 300,
      visibilityExtensionMs: 3000,
      onEvent: (e) => e.type === "task-received" && received.push(Date.now()),
    });
    w.register("far", async () => void ranAt.push(Date.now()));
    await w.start();
    open.unshift({ close: () => w.stop() });
    const sent = Date.now();
    await createClient({ transport: transport(), defaultQueue: queue }).sendTask("far", { countdownMs: 4000 });
    await sleep(1500);
    // Held by the worker: in flight, and received at once rather than near its ETA.
    expect(await counts(t, queue)).toMatchObject({ hidden: 1 });
    expect(received).toHaveLength(1);
    await sleep(4000);
    expect(ranAt).toHaveLength(1);
    expect(ranAt[0]! - sent).toBeGreaterThanOrEqual(3900);
    expect(received).toHaveLength(1);
  }, 20_000);
});

describe("dead letters", () => {
  it("a poison message lands in the DLQ with its reason after maxReceiveCount receives", async () => {
    const queue = queueName("poison");
    const t = transport({ visibilityTimeoutMs: 1000, deadLetterQueue: queueName("dlq"), maxReceiveCount: 3 });
    const id = randomUUID();
    await t.publish(queue, celeryJsonCodec.encode(createEnvelope({ task: "crashes.worker", id })));
    const consumer = t.consume([queue], { prefetch: 5 });
    const seen: Delivery[] = [];
    const consuming = (async () => {
      // Like a worker that dies mid-task: never settles; the visibility timeout brings it back.
      for await (const d of consumer) seen.push(d);
    })();
    const deadline = Date.now() + 12_000;
    let dead: DeadLetter[] = [];
    while (dead.length === 0 && Date.now() < deadline) {
      await sleep(300);
      dead = await t.readDeadLetters(queue);
    }
    await consumer.stop();
    await consuming;
    expect(seen.map((d) => d.deliveryCount)).toEqual([1, 2, 3]);
    expect(dead).toHaveLength(1);
    expect(dead[0]!.message?.headers["id"]).toBe(id);
    expect(dead[0]!.reason).toMatch(/received 4 times, more than maxReceiveCount 3/);
    expect(dead[0]!.deliveryCount).toBe(4);
    expect(await counts(t, queue)).toEqual({ visible: 0, hidden: 0 });
  }, 20_000);
});

describe("shutdown", () => {
  const root = fileURLToPath(new URL("../../../", import.meta.url));
  let build: ChildBuild;

  beforeAll(() => {
    // The worker runs in a child process on plain Node, so it needs compiled JS.
    build = buildForChildren(root, ["core", "worker", "sqs"], "sqs");
  }, 120_000);
  afterAll(() => build.cleanup());

  it("SIGTERM with messages prefetched: all of them are visible again within a second", async () => {
    const queue = queueName("sigterm");
    const t = transport();
    for (let i = 0; i < 20; i++) await t.publish(queue, celeryJsonCodec.encode(createEnvelope({ task: "slow", id: randomUUID() })));
    const child = spawn(process.execPath, [fileURLToPath(new URL("./fixtures/sigterm-worker.mjs", import.meta.url)), build.dir, emulator.endpoint, queue], {
      stdio: ["ignore", "pipe", "pipe"],
    });
    let out = "";
    child.stdout.on("data", (d: Buffer) => (out += d.toString()));
    child.stderr.on("data", (d: Buffer) => (out += d.toString()));
    const exited = new Promise<void>((r) => child.once("exit", () => r()));
    // Whatever an assertion below does, the child does not outlive the test.
    onTestFinished(() => {
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
    });
    const deadline = Date.now() + 20_000;
    while (!out.includes("started") && Date.now() < deadline) await sleep(50);
    expect(out).toContain("started");
    // Let the prefetch fill: one running (acked early, so deleted), the rest held by the worker.
    let c = await counts(t, queue);
    while (c.hidden < 19 && Date.now() < deadline) {
      await sleep(50);
      c = await counts(t, queue);
    }
    expect(c).toEqual({ visible: 0, hidden: 19 });
    const killedAt = Date.now();
    child.kill("SIGTERM");
    while ((c = await counts(t, queue)).visible < 19 && Date.now() - killedAt < 3000) await sleep(20);
    const after = Date.now() - killedAt;
    expect(c).toEqual({ visible: 19, hidden: 0 });
    expect(after).toBeLessThan(1000);
    // The running task still finishes (graceful), then the process exits.
    await exited;
    expect(out).toContain("exited");
  }, 60_000);
});
