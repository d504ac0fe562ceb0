import { randomUUID } from "node:crypto";
import { GetQueueAttributesCommand, SendMessageCommand } from "@aws-sdk/client-sqs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createClient } from "@celeriac/core";
import { createSqsTransport, type SqsTransport } from "@celeriac/sqs";
import { createWorker, type LogRecord } from "@celeriac/worker";
import { startSqsEmulator, type SqsEmulator } from "../../../test-support/sqs-emulator.mjs";

let emulator: SqsEmulator;
const open: { close(): Promise<unknown> }[] = [];
beforeAll(async () => {
  emulator = await startSqsEmulator();
});
afterAll(async () => {
  for (const o of open) await o.close().catch(() => undefined);
  await emulator?.close();
});

function transport(): SqsTransport {
  const t = createSqsTransport({
    endpoint: emulator.endpoint,
    region: "us-east-1",
    credentials: { accessKeyId: "test", secretAccessKey: "test" },
    waitTimeSeconds: 1,
  });
  open.push(t);
  return t;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
async function waitFor(cond: () => boolean, ms: number, what: () => string): Promise<void> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out: ${what()}`);
    await sleep(50);
  }
}

async function depth(t: SqsTransport, queue: string): Promise<number> {
  const r = await t.client.send(
    new GetQueueAttributesCommand({
      QueueUrl: await t.queueUrl(queue),
      AttributeNames: ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    }),
  );
  // The emulator's ApproximateNumberOfMessages counts hidden messages too.
  return Number(r.Attributes?.ApproximateNumberOfMessages);
}

describe("an SQS endpoint that lost its queues", () => {
  it("publish and consume declare the queue again after the endpoint restarts", async () => {
    const queue = `restart-${randomUUID().slice(0, 8)}`;
    const ran = new Set<string>();
    const worker = createWorker({ transport: transport(), queues: [queue], concurrency: 4, silent: true });
    worker.register("rec", (ctx) => void ran.add(ctx.id), { acksLate: true });
    await worker.start();
    open.unshift({ close: () => worker.stop() });
    const client = createClient({ transport: transport(), defaultQueue: queue });
    for (let i = 0; i < 20; i++) await client.sendTask("rec");
    await waitFor(
      () => ran.size === 20,
      20_000,
      () => `ran ${ran.size} of 20 before the restart`,
    );

    await emulator.restart({ downMs: 300 });
    // The producer's cached queue URL points at a queue that no longer exists.
    for (let i = 0; i < 20; i++) await client.sendTask("rec");
    await waitFor(
      () => ran.size === 40,
      30_000,
      () => `ran ${ran.size} of 40 after the restart`,
    );
  }, 60_000);

  it("a body that is no kombu envelope is refused with one log line and deleted when there is no dead-letter queue", async () => {
    const queue = `garbage-${randomUUID().slice(0, 8)}`;
    const t = transport();
    const url = await t.queueUrl(queue);
    for (const body of ["not kombu", '{"a": 1}', Buffer.from("also not kombu").toString("base64")]) {
      await t.client.send(new SendMessageCommand({ QueueUrl: url, MessageBody: body }));
    }
    const logs: LogRecord[] = [];
    const ran: string[] = [];
    const worker = createWorker({ transport: transport(), queues: [queue], concurrency: 2, logger: (r) => logs.push(r) });
    worker.register("rec", (ctx) => void ran.push(ctx.id));
    await worker.start();
    open.unshift({ close: () => worker.stop() });
    const client = createClient({ transport: t, defaultQueue: queue });
    await client.sendTask("rec");
    const refused = () => logs.filter((l) => /Received invalid task message: .*not a kombu envelope/.test(l.msg));
    await waitFor(
      () => refused().length === 3 && ran.length === 1,
      20_000,
      () => `refused ${refused().length}, ran ${ran.length}: ${JSON.stringify(logs.map((l) => l.msg))}`,
    );
    await sleep(500);
    expect(refused()).toHaveLength(3);
    expect(await depth(t, queue)).toBe(0);
  }, 60_000);
});
