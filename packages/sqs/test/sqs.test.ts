import { randomUUID } from "node:crypto";
import http from "node:http";
import { ReceiveMessageCommand, SendMessageCommand } from "@aws-sdk/client-sqs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CeleriacError, celeryJsonCodec, createEnvelope, decodeTask, transportFromUrl, type DeadLetter } from "@celeriac/core";
import { createSqsTransport, parseSqsUrl, sqsEntityName, sqsQueueName, type SqsTransport, type SqsTransportOptions } from "@celeriac/sqs";
import {
  correctReceiveCounts,
  hasMessages,
  messageIdOfReceiptHandle,
  rewriteSqsRequest,
  visibilityChangeHandles,
} from "../../../test-support/sqs-adapter/index.mjs";
import { startSqsEmulator, type SqsEmulator } from "../../../test-support/sqs-emulator.mjs";
import { runPython } from "../../../test-support/python.js";

describe("names and URLs", () => {
  it("maps queue names as kombu's entity_name does", () => {
    expect(sqsEntityName("celery")).toBe("celery");
    expect(sqsEntityName("my.queue.name")).toBe("my-queue-name");
    expect(sqsEntityName("a.b.fifo")).toBe("a-b.fifo");
    expect(sqsEntityName("we!rd:name_x-y")).toBe("we_rd_name_x-y");
    expect(sqsQueueName("prod.", "tasks.high")).toBe("prod-tasks-high");
  });

  it("reads Celery's sqs:// URLs", () => {
    expect(parseSqsUrl("sqs://")).toEqual({});
    expect(parseSqsUrl("sqs://AKIA%2Fx:s%2Bcret@")).toEqual({ credentials: { accessKeyId: "AKIA/x", secretAccessKey: "s+cret" } });
    // A raw @ or : in the secret belongs to the secret, as kombu (urllib's urlsplit) reads it.
    expect(parseSqsUrl("sqs://AKIA:se@c:ret@localhost:9324")).toEqual({
      credentials: { accessKeyId: "AKIA", secretAccessKey: "se@c:ret" },
      endpoint: "http://localhost:9324",
    });
    expect(
      parseSqsUrl("sqs://k:s@localhost:9324?region=eu-west-1&queue_name_prefix=dev-&visibility_timeout=60&wait_time_seconds=5&sqs_base64_encoding=false"),
    ).toEqual({
      credentials: { accessKeyId: "k", secretAccessKey: "s" },
      endpoint: "http://localhost:9324",
      region: "eu-west-1",
      queueNamePrefix: "dev-",
      visibilityTimeoutMs: 60_000,
      waitTimeSeconds: 5,
      bodyEncoding: "json",
    });
    expect(parseSqsUrl("sqs://sqs.example.com?is_secure=true&dead_letter_queue=dlq&max_receive_count=4").endpoint).toBe("https://sqs.example.com");
    expect(() => parseSqsUrl("sqs://?polling_intervall=1")).toThrow(/unknown parameter "polling_intervall"/);
    expect(() => parseSqsUrl("redis://x")).toThrow(CeleriacError);
  });

  it("core resolves sqs:// to this package", async () => {
    const t = await transportFromUrl("sqs://k:s@127.0.0.1:1?region=us-east-1");
    expect(t.name).toBe("sqs");
    expect(t.capabilities).toMatchObject({ delayedDelivery: true, visibilityExtension: true, deadLetter: false, priority: "none" });
    await t.close();
  });

  it("rejects unknown and invalid options", () => {
    expect(() => createSqsTransport({ visibilityTimeout: 5 } as unknown as SqsTransportOptions)).toThrow(/unknown option "visibilityTimeout"/);
    expect(() => createSqsTransport({ waitTimeSeconds: 30 })).toThrow(/waitTimeSeconds/);
    expect(() => createSqsTransport({ maxReceiveCount: 3 })).toThrow(/needs a deadLetterQueue/);
    expect(() => createSqsTransport({ priorityTiers: [{ suffix: "", minPriority: 5 }] })).toThrow(/suffix/);
  });
});

describe("the test rig's adapter", () => {
  const base = "http://127.0.0.1:9";

  it("adds the QueueUrl kombu leaves out of path-style query requests", () => {
    const r = rewriteSqsRequest(
      "/123456789012/celery",
      "application/x-www-form-urlencoded",
      undefined,
      Buffer.from("Action=DeleteMessage&ReceiptHandle=abc"),
      base,
    );
    expect(new URLSearchParams(r.body.toString()).get("QueueUrl")).toBe(`${base}/123456789012/celery`);
    const kept = rewriteSqsRequest("/", "application/x-www-form-urlencoded", undefined, Buffer.from("Action=ListQueues"), base);
    expect(kept.body.toString()).toBe("Action=ListQueues");
  });

  it("splits a long poll for several messages into an instant receive, then a long poll for one", () => {
    const json = rewriteSqsRequest(
      "/",
      "application/x-amz-json-1.0",
      "AmazonSQS.ReceiveMessage",
      Buffer.from(JSON.stringify({ QueueUrl: "u", MaxNumberOfMessages: 10, WaitTimeSeconds: 10 })),
      base,
    );
    expect(JSON.parse(json.receive!.instant.toString())).toMatchObject({ MaxNumberOfMessages: 10, WaitTimeSeconds: 0 });
    expect(JSON.parse(json.receive!.single.toString())).toMatchObject({ MaxNumberOfMessages: 1, WaitTimeSeconds: 10 });
    const query = rewriteSqsRequest(
      "/1/q",
      "application/x-www-form-urlencoded",
      undefined,
      Buffer.from("Action=ReceiveMessage&MaxNumberOfMessages=10&WaitTimeSeconds=20"),
      base,
    );
    expect(new URLSearchParams(query.receive!.single.toString()).get("MaxNumberOfMessages")).toBe("1");
    expect(new URLSearchParams(query.receive!.instant.toString()).get("QueueUrl")).toBe(`${base}/1/q`);
    const short = rewriteSqsRequest(
      "/",
      "application/x-amz-json-1.0",
      "AmazonSQS.ReceiveMessage",
      Buffer.from(JSON.stringify({ MaxNumberOfMessages: 1, WaitTimeSeconds: 10 })),
      base,
    );
    expect(short.receive).toBeUndefined();
    expect(hasMessages("application/x-amz-json-1.0", Buffer.from(""))).toBe(false);
    expect(hasMessages("application/x-amz-json-1.0", Buffer.from('{"Messages":[{}]}'))).toBe(true);
    expect(hasMessages("text/xml", Buffer.from("<ReceiveMessageResult><Message><Body>x</Body></Message>"))).toBe(true);
  });

  it("takes the emulator's visibility changes off receive counts", () => {
    const handle = Buffer.from(`${randomUUID()}${JSON.stringify({ date: 1, MessageId: "m1", QueueName: "q" })}`).toString("base64");
    expect(messageIdOfReceiptHandle(handle)).toBe("m1");
    expect(
      visibilityChangeHandles(
        "application/x-amz-json-1.0",
        "AmazonSQS.ChangeMessageVisibilityBatch",
        Buffer.from(JSON.stringify({ Entries: [{ ReceiptHandle: handle }] })),
      ),
    ).toEqual([handle]);
    expect(
      visibilityChangeHandles(
        "application/x-www-form-urlencoded",
        undefined,
        Buffer.from(`Action=ChangeMessageVisibilityBatch&ChangeMessageVisibilityBatchRequestEntry.1.ReceiptHandle=${encodeURIComponent(handle)}`),
      ),
    ).toEqual([handle]);
    const fixed = correctReceiveCounts(Buffer.from(JSON.stringify({ Messages: [{ MessageId: "m1", Attributes: { ApproximateReceiveCount: "5" } }] })), (id) =>
      id === "m1" ? 2 : 0,
    );
    expect(JSON.parse(fixed.toString()).Messages[0].Attributes.ApproximateReceiveCount).toBe("3");
  });
});

describe("against the emulator", () => {
  let emulator: SqsEmulator;
  const open: SqsTransport[] = [];
  beforeAll(async () => {
    emulator = await startSqsEmulator();
  });
  afterAll(async () => {
    for (const t of open) await t.close();
    await emulator.close();
  });
  const transport = (options: SqsTransportOptions = {}) => {
    const t = createSqsTransport({
      endpoint: emulator.endpoint,
      region: "us-east-1",
      credentials: { accessKeyId: "t", secretAccessKey: "t" },
      waitTimeSeconds: 1,
      ...options,
    });
    open.push(t);
    return t;
  };
  const task = (name: string, priority?: number) =>
    celeryJsonCodec.encode(createEnvelope({ task: name, id: randomUUID(), args: [1], ...(priority !== undefined ? { properties: { priority } } : {}) }));

  it("serves kombu's path-style requests through the adapter, and not without it", async () => {
    const t = transport();
    const url = await t.queueUrl(`raw-${randomUUID().slice(0, 8)}`);
    const path = new URL(url).pathname;
    const post = (base: string) =>
      new Promise<{ status: number; body: string }>((resolve, reject) => {
        const req = http.request(`${base}${path}`, { method: "POST", headers: { "content-type": "application/x-www-form-urlencoded" } }, (res) => {
          let body = "";
          res.on("data", (d: Buffer) => (body += d.toString()));
          res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
        });
        req.on("error", reject);
        req.end("Action=GetQueueAttributes&AttributeName.1=All&Version=2012-11-05");
      });
    expect((await post(emulator.endpoint)).body).toContain("<GetQueueAttributesResult>");
    expect((await post(emulator.upstream)).status).toBe(400);
  });

  it("gives back what a long poll took after its client went away", async () => {
    const t = transport();
    const queue = `gone-${randomUUID().slice(0, 8)}`;
    const url = await t.queueUrl(queue);
    const ac = new AbortController();
    const poll = t.client.send(new ReceiveMessageCommand({ QueueUrl: url, MaxNumberOfMessages: 10, WaitTimeSeconds: 2 }), { abortSignal: ac.signal });
    await new Promise((r) => setTimeout(r, 100));
    ac.abort();
    await expect(poll).rejects.toThrow();
    // The emulator's poll goes on and takes this message; the adapter makes it visible again.
    await t.publish(queue, task("after.abort"));
    await new Promise((r) => setTimeout(r, 300));
    const r = await t.client.send(new ReceiveMessageCommand({ QueueUrl: url, MaxNumberOfMessages: 1, WaitTimeSeconds: 3 }));
    expect(r.Messages).toHaveLength(1);
  });

  it("writes kombu's MessageBody: base64 of the JSON envelope, or the JSON itself", async () => {
    for (const bodyEncoding of ["base64", "json"] as const) {
      const t = transport({ bodyEncoding });
      const queue = `wire-${randomUUID().slice(0, 8)}`;
      const message = task("wire.check");
      await t.publish(queue, message);
      const r = await t.client.send(new ReceiveMessageCommand({ QueueUrl: await t.queueUrl(queue), MaxNumberOfMessages: 1, WaitTimeSeconds: 1 }));
      const raw = r.Messages![0]!.Body!;
      const text = bodyEncoding === "base64" ? Buffer.from(raw, "base64").toString("utf8") : raw;
      const envelope = JSON.parse(text) as {
        body: string;
        properties: { body_encoding: string; delivery_info: { routing_key: string } };
        headers: { task: string };
      };
      expect(envelope.properties.body_encoding).toBe("base64");
      expect(envelope.properties.delivery_info.routing_key).toBe(queue);
      expect(envelope.headers.task).toBe("wire.check");
      expect(JSON.parse(Buffer.from(envelope.body, "base64").toString())).toEqual([[1], {}, { callbacks: null, errbacks: null, chain: null, chord: null }]);
    }
  });

  it("reads either body form, whoever sent it", async () => {
    const t = transport();
    const queue = `mixed-${randomUUID().slice(0, 8)}`;
    const url = await t.queueUrl(queue);
    await transport({ bodyEncoding: "json" }).publish(queue, task("as.json"));
    await t.publish(queue, task("as.base64"));
    const c = t.consume([queue], { prefetch: 2 });
    const names: string[] = [];
    for await (const d of c) {
      names.push(decodeTask(d.message).headers.task);
      await d.ack();
      if (names.length === 2) break;
    }
    expect(names.sort()).toEqual(["as.base64", "as.json"]);
    // Something that is no kombu message never reaches a consumer; with a DLQ it goes there.
    const withDlq = transport({ deadLetterQueue: `dlq-${randomUUID().slice(0, 8)}` });
    await t.client.send(new SendMessageCommand({ QueueUrl: url, MessageBody: "not kombu" }));
    const c2 = withDlq.consume([queue], { prefetch: 1 });
    const next = c2[Symbol.asyncIterator]().next();
    let dead: DeadLetter[] = [];
    for (let i = 0; i < 30 && dead.length === 0; i++) {
      await new Promise((r) => setTimeout(r, 100));
      dead = await withDlq.readDeadLetters(queue);
    }
    await c2.stop();
    expect((await next).done).toBe(true);
    expect(dead.map((d) => [d.raw, d.reason])).toEqual([["not kombu", "decode_failed: not a kombu message"]]);
  });

  it("priority tiers: a higher tier is taken first, and Python targets a tier by its queue name", async () => {
    const tiers = [{ suffix: "-high", minPriority: 5 }];
    const t = transport({ priorityTiers: tiers });
    expect(t.capabilities.priority).toBe("emulated");
    const queue = `prio-${randomUUID().slice(0, 8)}`;
    for (let i = 0; i < 3; i++) await t.publish(queue, task(`low${i}`, 0));
    await t.publish(queue, task("high-ts", 9));
    // A Python producer sends to the tier queue by name.
    await runPython({ brokerUrl: `sqs://t:t@127.0.0.1:${emulator.port}` }, "-c", [
      `import sqs_app\nfrom interop_app import app\napp.send_task("high-py", queue="${queue}-high")`,
    ]);
    const c = t.consume([queue], { prefetch: 10 });
    const got: string[] = [];
    const queues = new Set<string>();
    for await (const d of c) {
      got.push(decodeTask(d.message).headers.task);
      queues.add(d.queue);
      await d.ack();
      if (got.length === 5) break;
    }
    expect(got.slice(0, 2).sort()).toEqual(["high-py", "high-ts"]);
    expect(got.slice(2).sort()).toEqual(["low0", "low1", "low2"]);
    expect([...queues]).toEqual([queue]);
  }, 30_000);

  it("close makes unsettled deliveries visible at once and destroys only its own client", async () => {
    const t = createSqsTransport({
      endpoint: emulator.endpoint,
      region: "us-east-1",
      credentials: { accessKeyId: "t", secretAccessKey: "t" },
      waitTimeSeconds: 1,
    });
    const queue = `close-${randomUUID().slice(0, 8)}`;
    await t.publish(queue, task("held"));
    const c = t.consume([queue], { prefetch: 1 });
    const it = c[Symbol.asyncIterator]();
    const first = await it.next();
    expect(first.done).toBe(false);
    await t.close();
    const other = transport();
    const start = Date.now();
    const c2 = other.consume([queue], { prefetch: 1 });
    for await (const d of c2) {
      expect(d.deliveryCount).toBe(2);
      await d.ack();
      break;
    }
    expect(Date.now() - start).toBeLessThan(3000);
    // A client passed in is left open.
    const shared = createSqsTransport({ client: other.client });
    await shared.close();
    expect(await other.purge(queue)).toBe(0);
  });
});
