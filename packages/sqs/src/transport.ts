import { randomUUID } from "node:crypto";
import http from "node:http";
import https from "node:https";
import {
  ChangeMessageVisibilityBatchCommand,
  ChangeMessageVisibilityCommand,
  CreateQueueCommand,
  DeleteMessageBatchCommand,
  GetQueueAttributesCommand,
  GetQueueUrlCommand,
  ReceiveMessageCommand,
  SendMessageCommand,
  SQSClient,
  type BatchResultErrorEntry,
  type Message,
  type MessageSystemAttributeName,
  type QueueAttributeName,
  type MessageAttributeValue,
} from "@aws-sdk/client-sqs";
import {
  CeleriacError,
  ConnectionLifecycle,
  DeliveryQueue,
  assertKnownOptions,
  optionKeys,
  assertPublishable,
  createDelivery,
  parseKombuEnvelope,
  stringifyKombuEnvelope,
  toKombuEnvelope,
  type ConnectionEvents,
  type ConsumeOptions,
  type Consumer,
  type DeadLetter,
  type Delivery,
  type PublishOptions,
  type Transport,
  type TransportCapabilities,
  type WireMessage,
  notKombuMessage,
} from "@celeriac/core/transport";
import { Batcher, type BatchOutcome } from "./batcher.js";
import { isFifoQueue, sqsQueueName } from "./names.js";

/** A priority tier: messages with `properties.priority >= minPriority` go to `<queue><suffix>`. */
export interface SqsPriorityTier {
  /** Appended to the queue name, e.g. `-high` (then prefixed and `.`->`-` like any name). */
  suffix: string;
  /** Lowest Celeriac priority (0..9, higher is more urgent) that goes to this tier. */
  minPriority: number;
}

export interface SqsTransportOptions {
  /** AWS region. Default: `AWS_REGION`, then `AWS_DEFAULT_REGION`, then `us-east-1` (kombu's default). */
  region?: string;
  /** Service endpoint, e.g. `http://127.0.0.1:9324` for a local emulator. Default: AWS's. */
  endpoint?: string;
  /**
   * Static credentials (e.g. from an `sqs://key:secret@` URL). Default: the SDK's default chain
   * (environment, shared config, SSO, container and instance roles).
   */
  credentials?: { accessKeyId: string; secretAccessKey: string; sessionToken?: string };
  /** An SQS client you own; it is used as is and never destroyed by `close()`. */
  client?: SQSClient;
  /** Prepended to every queue name, as kombu's `queue_name_prefix`. Default "". */
  queueNamePrefix?: string;
  /**
   * Queues that already exist, by Celery queue name, with their URLs (kombu's
   * `predefined_queues`). With them set, nothing is created or looked up for other names.
   */
  predefinedQueues?: Record<string, { url: string }>;
  /** Create a queue on first use when it does not exist, like kombu. Default true (false with predefinedQueues). */
  createQueues?: boolean;
  /**
   * How long a received, unsettled message stays hidden (sent on every receive, whole seconds).
   * Default 30 minutes, kombu's. The worker extends it for running and held tasks.
   */
  visibilityTimeoutMs?: number;
  /** Long-poll duration of a receive on an empty queue, 1..20 s. Default 10 (kombu's). */
  waitTimeSeconds?: number;
  /** Most concurrent receive loops per queue; each takes up to 10 messages. Default 8; the
   * number used is `ceil(prefetch / 10)` up to this. */
  pollers?: number;
  /** `base64` (kombu's default `sqs_base64_encoding`) or `json` for a plain JSON MessageBody. Both are read. */
  bodyEncoding?: "base64" | "json";
  /** MessageGroupId for FIFO queues when a message has no `MessageGroupId` header. Default "default" (kombu's). */
  messageGroupId?: string;
  /** Queue that rejected and over-received messages go to, with their reason. Default: none. */
  deadLetterQueue?: string;
  /** With a deadLetterQueue: a message received more than this many times is dead-lettered
   * instead of delivered again. Default 5. */
  maxReceiveCount?: number;
  /**
   * Tiered queues that emulate priority: a consumer of `q` also polls `q<suffix>` for each tier,
   * highest tier first (see README, "Priorities"). Default none (priority is ignored).
   */
  priorityTiers?: readonly SqsPriorityTier[];
  /** Longest an ack or visibility change waits to join a batch of 10. Default 5 ms. */
  batchDelayMs?: number;
  /** Most sockets to the endpoint (keep-alive). Default 64. */
  maxSockets?: number;
}

const KNOWN_OPTIONS = optionKeys<SqsTransportOptions>({
  region: true,
  endpoint: true,
  credentials: true,
  client: true,
  queueNamePrefix: true,
  predefinedQueues: true,
  createQueues: true,
  visibilityTimeoutMs: true,
  waitTimeSeconds: true,
  pollers: true,
  bodyEncoding: true,
  messageGroupId: true,
  deadLetterQueue: true,
  maxReceiveCount: true,
  priorityTiers: true,
  batchDelayMs: true,
  maxSockets: true,
});

/** SQS's limits. */
const MAX_BODY_BYTES = 262_144;
const MAX_DELAY_S = 900;
const MAX_VISIBILITY_S = 43_200;
const MAX_PER_RECEIVE = 10;
const RECEIVE_ATTRIBUTES: MessageSystemAttributeName[] = ["ApproximateReceiveCount", "SentTimestamp"];

/** Message attribute names Celeriac writes on dead-lettered messages. */
export const DEAD_LETTER_REASON = "celeriac-dead-letter-reason";
/** Marks a message re-sent by a delayed nack: it is the same message delivered again. */
const HANDED_BACK = "celeriac-handed-back";
export const DEAD_LETTER_SOURCE = "celeriac-source-queue";
export const DEAD_LETTER_RECEIVES = "celeriac-receive-count";

function checkNumber(name: string, v: number | undefined, fallback: number, min: number, max = Infinity): number {
  if (v === undefined) return fallback;
  if (typeof v !== "number" || Number.isNaN(v) || v < min || v > max) {
    throw new CeleriacError("invalid_argument", `createSqsTransport: ${name} must be a number from ${min} to ${max}, got ${String(v)}`);
  }
  return v;
}

const seconds = (ms: number, max: number) => Math.min(max, Math.max(0, Math.ceil(ms / 1000)));

/** The endpoint no longer has the queue (deleted, or an emulator restarted and lost it). */
function isMissingQueue(err: unknown): boolean {
  for (let e = err as { name?: string; Code?: string; cause?: unknown } | undefined, depth = 0; e && depth < 3; e = e.cause as typeof e, depth++) {
    const code = e.name ?? e.Code;
    if (code === "QueueDoesNotExist" || code === "AWS.SimpleQueueService.NonExistentQueue") return true;
  }
  return false;
}

interface Received {
  /** null until screen() decides: not a kombu envelope. */
  message: WireMessage | null;
  sqs: Message;
  queue: string;
  url: string;
  rank: number;
  receiveCount: number;
  sentAt: number;
  /** Gives the receiving poller its slot back once the message is settled or released. */
  done?: () => void;
}

interface QueueTarget {
  /** Celery's name for the logical queue (what deliveries report). */
  queue: string;
  /** Physical queues, highest priority tier first; the base queue is last. */
  tiers: { name: string; rank: number }[];
}

/** Amazon SQS in kombu's wire format; see README.md. */
/**
 * What `createSqsTransport` returns: the transport contract, plus the SQS names of Celery queues.
 * The class behind it is not public: pollers, batchers and screening are not API.
 */
export interface SqsTransport extends Transport {
  /** The SDK client (yours, when passed as `client`). */
  readonly client: SQSClient;
  /** The SQS name of a Celery queue name (prefix, kombu's character rules). */
  sqsName(queue: string): string;
  /** The URL of a Celery queue: predefined, cached, looked up, or created. */
  queueUrl(queue: string): Promise<string>;
  readDeadLetters(queue: string, options?: { limit?: number }): Promise<DeadLetter[]>;
}

class SqsTransportImpl implements SqsTransport {
  readonly name = "sqs";
  readonly capabilities: TransportCapabilities;
  readonly closed: Promise<void>;
  readonly client: SQSClient;
  private readonly ownsClient: boolean;
  private readonly prefix: string;
  private readonly predefined: Map<string, string>;
  private readonly createQueues: boolean;
  private readonly visibilityS: number;
  private readonly waitS: number;
  private readonly maxPollers: number;
  private readonly bodyEncoding: "base64" | "json";
  private readonly messageGroupId: string;
  private readonly dlq: string | null;
  private readonly maxReceiveCount: number;
  private readonly tiers: SqsPriorityTier[];
  private readonly batchDelayMs: number;
  private readonly urls = new Map<string, Promise<string>>();
  /** Per queue URL: messages sent before this time were purged while delayed; drop them on receipt. */
  private readonly purgedBefore = new Map<string, number>();
  private readonly deletes = new Map<string, Batcher<{ handle: string }>>();
  private readonly visibility = new Map<string, Batcher<{ handle: string; seconds: number }>>();
  /** Receipt handles received here and not settled (handed out or buffered), for close. */
  private readonly unsettled = new Map<string, string>();
  private readonly consumers = new Set<Consumer>();
  private readonly events = new ConnectionLifecycle("sqs", { initialDelayMs: 200, maxDelayMs: 5000 });
  /** Outages as the pollers see them (the SDK has no connection of its own to watch). */
  readonly lifecycle: ConnectionEvents = this.events;
  private readonly publishes = new Set<Promise<unknown>>();
  private isClosed = false;
  private resolveClosed!: () => void;

  constructor(options: SqsTransportOptions = {}) {
    assertKnownOptions("createSqsTransport", options, KNOWN_OPTIONS);
    this.prefix = options.queueNamePrefix ?? "";
    if (typeof this.prefix !== "string") throw new CeleriacError("invalid_argument", "createSqsTransport: queueNamePrefix must be a string");
    this.predefined = new Map(
      Object.entries(options.predefinedQueues ?? {}).map(([k, v]) => {
        if (typeof v?.url !== "string") throw new CeleriacError("invalid_argument", `createSqsTransport: predefinedQueues.${k}.url must be a string`);
        return [k, v.url];
      }),
    );
    this.createQueues = options.createQueues ?? this.predefined.size === 0;
    this.visibilityS = seconds(checkNumber("visibilityTimeoutMs", options.visibilityTimeoutMs, 1_800_000, 0, MAX_VISIBILITY_S * 1000), MAX_VISIBILITY_S);
    this.waitS = Math.round(checkNumber("waitTimeSeconds", options.waitTimeSeconds, 10, 0, 20));
    this.maxPollers = Math.round(checkNumber("pollers", options.pollers, 8, 1, 256));
    this.bodyEncoding = options.bodyEncoding ?? "base64";
    if (this.bodyEncoding !== "base64" && this.bodyEncoding !== "json") {
      throw new CeleriacError("invalid_argument", `createSqsTransport: bodyEncoding must be "base64" or "json", got ${String(this.bodyEncoding)}`);
    }
    this.messageGroupId = options.messageGroupId ?? "default";
    this.dlq = options.deadLetterQueue ?? null;
    this.maxReceiveCount = Math.round(checkNumber("maxReceiveCount", options.maxReceiveCount, 5, 1));
    if (options.maxReceiveCount !== undefined && this.dlq === null) {
      throw new CeleriacError("invalid_argument", "createSqsTransport: maxReceiveCount needs a deadLetterQueue to send over-received messages to");
    }
    this.tiers = [...(options.priorityTiers ?? [])].sort((a, b) => b.minPriority - a.minPriority);
    for (const t of this.tiers) {
      if (typeof t.suffix !== "string" || t.suffix === "" || !(t.minPriority >= 1 && t.minPriority <= 9)) {
        throw new CeleriacError("invalid_argument", "createSqsTransport: each priority tier needs a non-empty suffix and a minPriority from 1 to 9");
      }
    }
    this.batchDelayMs = checkNumber("batchDelayMs", options.batchDelayMs, 5, 0, 1000);
    const maxSockets = Math.round(checkNumber("maxSockets", options.maxSockets, 64, 1));

    this.capabilities = {
      priority: this.tiers.length > 0 ? "emulated" : "none",
      delayedDelivery: true,
      visibilityExtension: true,
      deadLetter: this.dlq !== null,
      // SQS takes 256 KiB of MessageBody; the body is base64 inside the kombu JSON, and that
      // again base64 by default. 4 KiB is left for headers.
      maxMessageBytes: this.bodyEncoding === "base64" ? Math.floor((MAX_BODY_BYTES * 9) / 16) - 4096 : Math.floor((MAX_BODY_BYTES * 3) / 4) - 4096,
    };

    if (options.client) {
      this.client = options.client;
      this.ownsClient = false;
    } else {
      const region = options.region ?? process.env["AWS_REGION"] ?? process.env["AWS_DEFAULT_REGION"] ?? "us-east-1";
      // Keep-alive with bounded sockets: long polls and batches reuse connections instead of a
      // TLS handshake per request, and a burst cannot open unbounded sockets.
      const agentOptions = { keepAlive: true, maxSockets, maxFreeSockets: maxSockets };
      this.client = new SQSClient({
        region,
        ...(options.endpoint !== undefined ? { endpoint: options.endpoint } : {}),
        ...(options.credentials !== undefined ? { credentials: options.credentials } : {}),
        requestHandler: { httpAgent: new http.Agent(agentOptions), httpsAgent: new https.Agent(agentOptions) },
      });
      this.ownsClient = true;
    }
    this.closed = new Promise((r) => (this.resolveClosed = r));
  }

  async connect(): Promise<void> {
    if (this.isClosed) throw new CeleriacError("closed", "sqs transport is closed");
    this.events.report({ type: "connected" });
  }

  private guardOpen(what: string): void {
    if (this.isClosed) throw new CeleriacError("closed", `sqs transport is closed; cannot ${what}`);
  }

  /** The SQS name of a Celery queue name (prefix, kombu's character rules). */
  sqsName(queue: string): string {
    return sqsQueueName(this.prefix, queue);
  }

  /** The URL of a Celery queue: predefined, cached, looked up, or created. */
  queueUrl(queue: string): Promise<string> {
    const predefined = this.predefined.get(queue);
    if (predefined !== undefined) return Promise.resolve(predefined);
    let p = this.urls.get(queue);
    if (!p) {
      p = this.lookupQueue(queue);
      this.urls.set(queue, p);
      p.catch(() => this.urls.delete(queue));
    }
    return p;
  }

  /**
   * Runs `op` on the queue's URL; when the endpoint says the queue does not exist (it lost it,
   * e.g. an emulator restart, or someone deleted it), forgets the URL and declares the queue
   * again, once. kombu declares a queue on first use and caches its URL (`_new_queue` in
   * kombu/transport/SQS.py); a cached URL that no longer works is that first use again.
   */
  private async onQueue<T>(queue: string, op: (url: string) => Promise<T>): Promise<T> {
    const cached = this.urls.get(queue);
    try {
      return await op(await this.queueUrl(queue));
    } catch (err) {
      if (!isMissingQueue(err) || this.predefined.has(queue) || !this.createQueues) throw err;
      if (this.urls.get(queue) === cached) this.urls.delete(queue);
      return op(await this.queueUrl(queue));
    }
  }

  private async lookupQueue(queue: string): Promise<string> {
    if (this.predefined.size > 0 && !this.createQueues) {
      throw new CeleriacError("invalid_argument", `sqs: queue ${JSON.stringify(queue)} is not among the predefinedQueues`);
    }
    const name = this.sqsName(queue);
    try {
      const r = await this.client.send(new GetQueueUrlCommand({ QueueName: name }));
      if (r.QueueUrl) return r.QueueUrl;
    } catch (err) {
      const e = err as { name?: string };
      const missing = e.name === "QueueDoesNotExist" || e.name === "AWS.SimpleQueueService.NonExistentQueue";
      if (!missing) throw CeleriacError.from(err, "connection");
    }
    if (!this.createQueues) throw new CeleriacError("invalid_argument", `sqs: queue ${name} does not exist and createQueues is off`);
    const attributes: Record<string, string> = { VisibilityTimeout: String(this.visibilityS) };
    if (isFifoQueue(name)) attributes["FifoQueue"] = "true";
    try {
      const r = await this.client.send(new CreateQueueCommand({ QueueName: name, Attributes: attributes }));
      if (!r.QueueUrl) throw new CeleriacError("connection", `sqs: CreateQueue ${name} returned no URL`);
      return r.QueueUrl;
    } catch (err) {
      // Someone else created it meanwhile, perhaps with another visibility timeout (kombu uses
      // 1800 s): use theirs. Our receives pass their own VisibilityTimeout anyway.
      if ((err as { name?: string }).name === "QueueNameExists" || (err as { Code?: string }).Code === "QueueAlreadyExists") {
        const r = await this.client.send(new GetQueueUrlCommand({ QueueName: name })).catch((e: unknown) => {
          throw CeleriacError.from(e, "connection");
        });
        if (r.QueueUrl) return r.QueueUrl;
      }
      throw CeleriacError.from(err, "connection");
    }
  }

  /** The physical queue for a message of `priority` published to `queue`. */
  private tierFor(queue: string, priority: number | undefined): string {
    const p = priority ?? 0;
    for (const t of this.tiers) if (p >= t.minPriority) return queue + t.suffix;
    return queue;
  }

  private target(queue: string): QueueTarget {
    const tiers = this.tiers.map((t, i) => ({ name: queue + t.suffix, rank: i }));
    tiers.push({ name: queue, rank: this.tiers.length });
    return { queue, tiers };
  }

  private encodeBody(message: WireMessage, routingKey: string): string {
    const json = stringifyKombuEnvelope(toKombuEnvelope(message, { exchange: "", routingKey, deliveryTag: randomUUID() }));
    return this.bodyEncoding === "base64" ? Buffer.from(json, "utf8").toString("base64") : json;
  }

  async publish(queue: string, message: WireMessage, options: PublishOptions = {}): Promise<void> {
    this.guardOpen("publish");
    assertPublishable(this, queue, message, options);
    const delayMs = options.delayMs ?? 0;
    const physical = this.tierFor(queue, message.properties.priority);
    const body = this.encodeBody(message, queue);
    if (Buffer.byteLength(body) > MAX_BODY_BYTES) {
      throw new CeleriacError(
        "invalid_argument",
        `publish: message is ${Buffer.byteLength(body)} bytes as an SQS MessageBody; SQS takes at most ${MAX_BODY_BYTES}`,
      );
    }
    const p = this.onQueue(physical, (url) => this.sendBody(url, physical, body, delayMs, message.headers));
    this.publishes.add(p);
    try {
      await p;
    } finally {
      this.publishes.delete(p);
    }
  }

  private async sendBody(
    url: string,
    physical: string,
    body: string,
    delayMs: number,
    headers: Record<string, unknown>,
    attributes?: Record<string, MessageAttributeValue>,
  ): Promise<void> {
    const fifo = isFifoQueue(this.sqsName(physical)) || url.endsWith(".fifo");
    const str = (v: unknown) => (typeof v === "string" && v !== "" ? v : undefined);
    try {
      await this.client.send(
        new SendMessageCommand({
          QueueUrl: url,
          MessageBody: body,
          // FIFO queues take no per-message delay: such a message arrives at once and the worker
          // holds it until the ETA in its headers.
          ...(delayMs > 0 && !fifo ? { DelaySeconds: seconds(delayMs, MAX_DELAY_S) } : {}),
          ...(fifo
            ? {
                MessageGroupId: str(headers["MessageGroupId"]) ?? this.messageGroupId,
                MessageDeduplicationId: str(headers["MessageDeduplicationId"]) ?? randomUUID(),
              }
            : {}),
          ...(attributes ? { MessageAttributes: attributes } : {}),
        }),
      );
    } catch (err) {
      throw CeleriacError.from(err, "connection");
    }
  }

  private deleteBatcher(url: string): Batcher<{ handle: string }> {
    let b = this.deletes.get(url);
    if (!b) {
      b = new Batcher(async (entries) => {
        const r = await this.client.send(
          new DeleteMessageBatchCommand({ QueueUrl: url, Entries: entries.map((e, i) => ({ Id: String(i), ReceiptHandle: e.handle })) }),
        );
        return outcomes(entries.length, r.Failed, "delete");
      }, this.batchDelayMs);
      this.deletes.set(url, b);
    }
    return b;
  }

  private visibilityBatcher(url: string): Batcher<{ handle: string; seconds: number }> {
    let b = this.visibility.get(url);
    if (!b) {
      b = new Batcher(async (entries) => {
        const r = await this.client.send(
          new ChangeMessageVisibilityBatchCommand({
            QueueUrl: url,
            Entries: entries.map((e, i) => ({ Id: String(i), ReceiptHandle: e.handle, VisibilityTimeout: e.seconds })),
          }),
        );
        return outcomes(entries.length, r.Failed, "change visibility");
      }, this.batchDelayMs);
      this.visibility.set(url, b);
    }
    return b;
  }

  /** Makes received messages visible again now (visibility 0), batched; errors are left to the timeout. */
  private release(items: { url: string; handle: string }[]): Promise<unknown> {
    for (const i of items) this.unsettled.delete(i.handle);
    const ps = items.map((i) =>
      this.visibilityBatcher(i.url)
        .add({ handle: i.handle, seconds: 0 })
        .catch(() => undefined),
    );
    for (const b of new Set(items.map((i) => this.visibility.get(i.url)))) b?.flush();
    return Promise.all(ps);
  }

  /** Sends a received message's body to the dead-letter queue with its reason, then deletes it. */
  private async deadLetter(r: { sqs: Message; queue: string; url: string; receiveCount: number }, reason: string): Promise<void> {
    if (this.dlq === null) throw new CeleriacError("unsupported", "sqs: no deadLetterQueue configured");
    const dlq = this.dlq;
    await this.onQueue(dlq, (dlqUrl) =>
      this.sendBody(
        dlqUrl,
        dlq,
        r.sqs.Body ?? "",
        0,
        {},
        {
          [DEAD_LETTER_REASON]: { DataType: "String", StringValue: reason.slice(0, 4096) || "(no reason)" },
          [DEAD_LETTER_SOURCE]: { DataType: "String", StringValue: r.queue },
          [DEAD_LETTER_RECEIVES]: { DataType: "Number", StringValue: String(r.receiveCount) },
        },
      ),
    );
    await this.deleteBatcher(r.url).add({ handle: r.sqs.ReceiptHandle! });
  }

  /**
   * Dead-lettered messages of `queue`, left in the dead-letter queue (received with visibility
   * 0). SQS hands out at most 10 per receive and in no guaranteed order, so this is a sample of
   * up to `limit` (default 10), not a listing.
   */
  async readDeadLetters(queue: string, options: { limit?: number } = {}): Promise<DeadLetter[]> {
    if (this.dlq === null) return [];
    const url = await this.queueUrl(this.dlq);
    const r = await this.client.send(
      new ReceiveMessageCommand({
        QueueUrl: url,
        MaxNumberOfMessages: Math.min(10, options.limit ?? 10),
        WaitTimeSeconds: 0,
        VisibilityTimeout: 0,
        MessageAttributeNames: ["All"],
      }),
    );
    const out: DeadLetter[] = [];
    const seen = new Set<string>();
    for (const m of r.Messages ?? []) {
      // A receive with visibility 0 may return one message several times.
      if (m.MessageId !== undefined && seen.has(m.MessageId)) continue;
      if (m.MessageId !== undefined) seen.add(m.MessageId);
      const attrs = m.MessageAttributes ?? {};
      if ((attrs[DEAD_LETTER_SOURCE]?.StringValue ?? "") !== queue) continue;
      out.push({
        queue,
        message: this.decode(m.Body ?? ""),
        reason: attrs[DEAD_LETTER_REASON]?.StringValue ?? "",
        deliveryCount: Number(attrs[DEAD_LETTER_RECEIVES]?.StringValue ?? 0),
        raw: m.Body ?? "",
      });
    }
    return out;
  }

  /** kombu's `_optional_b64_decode`, then the envelope; null when it is not a kombu message. */
  private decode(body: string): WireMessage | null {
    try {
      const text = body.trimStart().startsWith("{") ? body : Buffer.from(body, "base64").toString("utf8");
      return parseKombuEnvelope(text).message;
    } catch {
      return null;
    }
  }

  /** Deletes every visible message of `queue` (and its priority tiers); resolves with how many. */
  async purge(queue: string): Promise<number> {
    this.guardOpen("purge");
    // PurgeQueue neither counts nor takes effect at once (SQS allows one per 60 s), so purge
    // receives and deletes in batches. Messages still delayed or held by a consumer are left.
    let n = 0;
    for (const { name } of this.target(queue).tiers) {
      const url = await this.queueUrl(name);
      for (;;) {
        const r = await this.client.send(new ReceiveMessageCommand({ QueueUrl: url, MaxNumberOfMessages: 10, WaitTimeSeconds: 0, VisibilityTimeout: 60 }));
        const msgs = r.Messages ?? [];
        if (msgs.length === 0) break;
        await this.client.send(
          new DeleteMessageBatchCommand({ QueueUrl: url, Entries: msgs.map((m, i) => ({ Id: String(i), ReceiptHandle: m.ReceiptHandle! })) }),
        );
        n += msgs.length;
      }
      // Delayed messages cannot be received yet, and PurgeQueue would also take messages sent
      // in the next 60 s. They are counted, and this transport drops them when they come due.
      const attrs = await this.client.send(new GetQueueAttributesCommand({ QueueUrl: url, AttributeNames: ["ApproximateNumberOfMessagesDelayed"] }));
      const delayed = Number(attrs.Attributes?.ApproximateNumberOfMessagesDelayed ?? 0);
      if (delayed > 0) {
        n += delayed;
        this.purgedBefore.set(url, Date.now());
      }
    }
    return n;
  }

  consume(queues: readonly string[], options: ConsumeOptions): Consumer {
    this.guardOpen("consume");
    const handleOf = (r: Received) => ({ url: r.url, handle: r.sqs.ReceiptHandle! });
    const q: DeliveryQueue<Received> = new DeliveryQueue({
      queues,
      consume: options,
      // Highest tier first, arrival order within a tier.
      rank: (r) => r.rank,
      toDelivery: (r, release) => this.makeDelivery(r, release),
      // Prefetched, never handed out: visible to everyone again right away. Each poller gets
      // its slot back.
      giveBack: async (rows) => {
        for (const r of rows) r.done?.();
        await this.release(rows.map(handleOf));
      },
      // In-flight long polls were cancelled (the queue's signal) before anything is made visible
      // again: a poll answered with a message we just released would lose that answer.
      onStop: () => void this.consumers.delete(q),
    });
    this.consumers.add(q);
    if (q.stopped) return q;
    const pollersPerQueue = Math.max(1, Math.min(this.maxPollers, Math.ceil(q.prefetch / MAX_PER_RECEIVE)));
    const targets = queues.map((name) => this.target(name));
    // Each poller holds at most its share of the window, so one queue's long poll never blocks
    // another queue's receives; the queue still hands out at most `prefetch` at a time.
    const share = Math.max(1, Math.ceil(q.prefetch / (pollersPerQueue * targets.length)));
    for (const t of targets) for (let i = 0; i < pollersPerQueue; i++) void this.poll(q, t, i, share);
    return q;
  }

  /** One long-polling receiver of a consumer, filling the consumer's queue with its share. */
  private async poll(q: DeliveryQueue<Received>, target: QueueTarget, index: number, share: number): Promise<void> {
    let held = 0;
    // Receive only once half a batch is free: waking on every single settle would mean
    // receives of one or two messages, many more requests for the same work.
    const threshold = Math.ceil(Math.min(MAX_PER_RECEIVE, share) / 2);
    const done = () => void held--;
    const handleOf = (r: Received) => ({ url: r.url, handle: r.sqs.ReceiptHandle! });
    let round = index;
    while (!q.stopped && !this.isClosed) {
      const room = share - held;
      // ...or whenever the consumer has nothing buffered to hand out, so no one starves.
      if (room <= 0 || (room < threshold && q.buffered > 0)) {
        await q.changed();
        continue;
      }
      const want = Math.min(MAX_PER_RECEIVE, room);
      // Weighting: higher tiers first; every 5th receive starts at the base queue so a flood
      // of urgent work cannot starve it.
      const order = round++ % 5 === 4 ? [...target.tiers].reverse() : target.tiers;
      // Connection trouble: core's lifecycle loop backs off and retries, never stops silently.
      const got = await this.events.retry(
        async () => {
          let out: Received[] = [];
          for (const [i, tier] of order.entries()) {
            const last = i === order.length - 1;
            out = await this.receive(target.queue, tier.name, tier.rank, want, last ? this.waitS : 0, q.signal);
            if (out.length > 0 || q.stopped) break;
          }
          return out;
        },
        { signal: q.signal },
      );
      if (got === undefined) break;
      if (q.stopped || this.isClosed) {
        await this.release(got.map(handleOf));
        break;
      }
      const ready: Received[] = [];
      await Promise.all(
        got.map(async (r) => {
          if (await this.screen(r)) ready.push(r);
        }),
      );
      for (const r of ready) {
        held++;
        r.done = done;
        this.unsettled.set(r.sqs.ReceiptHandle!, r.url);
      }
      // screen() awaited network calls: if stop ran meanwhile, push gives them straight back.
      q.push(...ready);
    }
  }

  /** One ReceiveMessage call, decoded. */
  private async receive(queue: string, physical: string, rank: number, max: number, waitS: number, signal: AbortSignal): Promise<Received[]> {
    let url = "";
    const r = await this.onQueue(physical, (u) => {
      url = u;
      return this.client.send(
        new ReceiveMessageCommand({
          QueueUrl: url,
          MaxNumberOfMessages: max,
          WaitTimeSeconds: waitS,
          VisibilityTimeout: this.visibilityS,
          // Both spellings (the emulator reads the older one); only what screen() uses.
          AttributeNames: RECEIVE_ATTRIBUTES as unknown as QueueAttributeName[],
          MessageSystemAttributeNames: RECEIVE_ATTRIBUTES,
          MessageAttributeNames: [HANDED_BACK],
        }),
        { abortSignal: signal },
      );
    });
    const out: Received[] = [];
    for (const m of r.Messages ?? []) {
      if (!m.ReceiptHandle) continue;
      const message = this.decode(m.Body ?? "");
      const receiveCount = Number(m.Attributes?.ApproximateReceiveCount ?? 1);
      const sentAt = Number(m.Attributes?.SentTimestamp ?? 0);
      out.push({ message, sqs: m, queue, url, rank, receiveCount, sentAt });
    }
    return out;
  }

  /**
   * Decides what happens to a received message before anyone sees it: false when it was
   * dead-lettered (unreadable or over-received) or dropped by a purge. Whether a far ETA is
   * held or handed back is the worker's decision (see `maxNackDelayMs` in makeDelivery).
   */
  private async screen(r: Received): Promise<boolean> {
    try {
      const purged = this.purgedBefore.get(r.url);
      if (purged !== undefined && r.sentAt > 0 && r.sentAt <= purged) {
        await this.deleteBatcher(r.url).add({ handle: r.sqs.ReceiptHandle! });
        return false;
      }
      if (r.message === null) {
        if (this.dlq !== null) {
          await this.deadLetter(r, "decode_failed: not a kombu message");
          return false;
        }
        // Without a DLQ the worker refuses it (one log line) and its reject deletes it.
        r.message = notKombuMessage(r.sqs.Body ?? "");
        return true;
      }
      if (this.dlq !== null && r.receiveCount > this.maxReceiveCount) {
        await this.deadLetter(r, `received ${r.receiveCount} times, more than maxReceiveCount ${this.maxReceiveCount}`);
        return false;
      }
      return true;
    } catch {
      // Could not dead-letter: hand it out as is (the worker refuses what is unreadable).
      r.message ??= notKombuMessage(r.sqs.Body ?? "");
      return true;
    }
  }

  private makeDelivery(r: Received, release: () => void): Delivery {
    const handle = r.sqs.ReceiptHandle!;
    // FIFO queues take no per-message DelaySeconds, and a message hidden by its visibility
    // would hold back the rest of its group: there a far-ETA message stays with the worker.
    const fifo = r.url.endsWith(".fifo");
    return createDelivery({
      transport: this.name,
      message: r.message!,
      queue: r.queue,
      redelivered: r.receiveCount > 1 || r.sqs.MessageAttributes?.[HANDED_BACK] !== undefined,
      deliveryCount: r.receiveCount,
      maxNackDelayMs: fifo ? 0 : MAX_DELAY_S * 1000,
      // Every receive passes its own VisibilityTimeout, whatever the queue's default is.
      visibilityTimeoutMs: this.visibilityS * 1000,
      isClosed: () => this.isClosed,
      onSettled: () => {
        this.unsettled.delete(handle);
        r.done?.();
        release();
      },
      ops: {
        ack: () => this.deleteBatcher(r.url).add({ handle }),
        nack: ({ requeue, delayMs }) => {
          if (!requeue) return this.deleteBatcher(r.url).add({ handle });
          if (delayMs <= 0) {
            const p = this.visibilityBatcher(r.url).add({ handle, seconds: 0 });
            this.visibility.get(r.url)?.flush();
            return p;
          }
          if (!fifo && delayMs <= MAX_DELAY_S * 1000) {
            // Re-sent with DelaySeconds and the original deleted: a message handed back in
            // hops until a far ETA starts each hop with a fresh receive count, so hops never
            // count towards maxReceiveCount (the worker keeps its hops within maxNackDelayMs). The
            // HANDED_BACK attribute keeps it `redelivered`, as a nack that requeues promises.
            const again = { [HANDED_BACK]: { DataType: "String", StringValue: "1" } };
            return this.sendBody(r.url, r.queue, r.sqs.Body ?? "", delayMs, {}, again).then(() => this.deleteBatcher(r.url).add({ handle }));
          }
          // Longer, or FIFO: the same message, hidden for the delay (up to 12 h). It keeps its
          // receive count.
          return this.client
            .send(new ChangeMessageVisibilityCommand({ QueueUrl: r.url, ReceiptHandle: handle, VisibilityTimeout: seconds(delayMs, MAX_VISIBILITY_S) }))
            .then(() => undefined);
        },
        extend: (ms) => this.visibilityBatcher(r.url).add({ handle, seconds: seconds(ms, MAX_VISIBILITY_S) }),
        reject: (reason) => (this.dlq !== null ? this.deadLetter(r, reason) : this.deleteBatcher(r.url).add({ handle })),
      },
    });
  }

  /**
   * Stops consumers (prefetched messages become visible at once), waits up to `drainMs` for
   * in-flight publishes, makes every message received here and not settled visible again, sends
   * pending acks, and destroys the client if this transport created it.
   */
  async close(options: { drainMs?: number } = {}): Promise<void> {
    if (this.isClosed) return this.closed;
    await Promise.all([...this.consumers].map((c) => c.stop()));
    const drainMs = options.drainMs ?? 5000;
    let timer: ReturnType<typeof setTimeout> | undefined;
    await Promise.race([Promise.allSettled([...this.publishes]), new Promise((r) => (timer = setTimeout(r, drainMs)))]);
    clearTimeout(timer);
    await this.release([...this.unsettled].map(([handle, url]) => ({ url, handle })));
    await Promise.all([...this.deletes.values(), ...this.visibility.values()].map((b) => b.drain()));
    this.isClosed = true;
    if (this.ownsClient) this.client.destroy();
    this.resolveClosed();
  }
}

function outcomes(n: number, failed: BatchResultErrorEntry[] | undefined, what: string): BatchOutcome[] {
  const out: BatchOutcome[] = new Array<BatchOutcome>(n).fill(null);
  for (const f of failed ?? []) {
    const i = Number(f.Id);
    // A receipt handle that expired means the message was received again elsewhere: the newer
    // holder settles it. Not an error for this one.
    if (f.Code === "ReceiptHandleIsInvalid" || f.Code === "InvalidParameterValue") continue;
    if (Number.isInteger(i) && i >= 0 && i < n) out[i] = new CeleriacError("connection", `sqs ${what} failed: ${f.Code ?? "error"}: ${f.Message ?? ""}`);
  }
  return out;
}

/** Creates the SQS transport; see {@link SqsTransportOptions} for the defaults. */
export function createSqsTransport(options: SqsTransportOptions = {}): SqsTransport {
  return new SqsTransportImpl(options);
}
