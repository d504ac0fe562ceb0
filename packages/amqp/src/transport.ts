import type { Channel, ChannelModel, ConfirmChannel, ConsumeMessage, Options } from "amqplib";
import {
  assertKnownOptions,
  optionKeys,
  CeleriacError,
  ConnectionLifecycle,
  DeliveryQueue,
  SettleBatch,
  assertPublishable,
  createDelivery,
  type ConnectionEvents,
  type ConsumeOptions,
  type Consumer,
  type DeadLetter,
  type Delivery,
  type PublishOptions,
  type ExchangeMessaging,
  type Transport,
  type TransportCapabilities,
  type WireMessage,
} from "@celeriac/core/transport";
import { describe, ReconnectingConnection } from "./connection.js";
import { Declarations } from "./declarations.js";
import { AmqpExchanges } from "./exchanges.js";
import { typeFieldTable } from "./field-table.js";

export interface AmqpTransportOptions {
  /**
   * Broker URL, `amqp://user:pass@host:5672/vhost` or `amqps://...`. Default: `amqp://guest:guest@localhost:5672//`.
   * A cluster is a failover list, Celery's `amqp://h1;amqp://h2` or an array: a lost connection
   * reconnects to the next node, round-robin.
   */
  url?: string | readonly string[];
  /** TLS socket options for amqps:// (`ca`, `cert`, `key`, `servername`, `rejectUnauthorized`). */
  tls?: Record<string, unknown>;
  /**
   * How queues are declared before use. `"declare"` (default) declares them exactly as Celery
   * does; `"passive"` only checks they exist, so a queue someone else declared is never touched.
   */
  declare?: "declare" | "passive";
  /** Arguments of every declared queue, e.g. `{"x-queue-type": "quorum"}`. Must match Python's `queue_arguments`. */
  queueArguments?: Record<string, unknown>;
  /** Per-queue arguments, overriding `queueArguments` for that queue. */
  queues?: Record<string, { arguments?: Record<string, unknown> }>;
  /** Adds `x-max-priority` to declared queues and makes priority native. Celery's `x-max-priority` must match. */
  maxPriority?: number;
  /** Publisher confirms (default true): `publish` resolves only once the broker has the message. */
  confirm?: boolean;
  /**
   * How long a publish may wait for a connection and its confirm (default 30 000 ms). During a
   * broker outage publishes wait for the reconnect up to this long, then fail with
   * `CeleriacError("connection")`; none is dropped silently.
   */
  publishTimeoutMs?: number;
  /** First reconnect delay after a lost connection (default 100 ms), doubled up to `reconnectMaxDelayMs`. */
  reconnectInitialDelayMs?: number;
  /** Longest reconnect delay (default 5 000 ms). */
  reconnectMaxDelayMs?: number;
  /**
   * Exchange that `reject(reason)` copies messages to (routing key = the queue name, header
   * `x-celeriac-reject-reason`) before acking them. It is declared direct and durable, and a
   * queue `<queue>.dead` bound to it per rejecting queue. Without it, `reject` nacks without
   * requeue: the broker drops the message or uses the queue's own `x-dead-letter-exchange`.
   */
  deadLetterExchange?: string;
  /** Connection events (`disconnected`, `reconnected`, `consumer-recovered`), for logs. */
  onEvent?: (event: string, detail?: unknown) => void;
}

const OPTION_KEYS = optionKeys<AmqpTransportOptions>({
  url: true,
  tls: true,
  declare: true,
  queueArguments: true,
  queues: true,
  maxPriority: true,
  confirm: true,
  publishTimeoutMs: true,
  reconnectInitialDelayMs: true,
  reconnectMaxDelayMs: true,
  deadLetterExchange: true,
  onEvent: true,
});

export const DEFAULT_AMQP_URL = "amqp://guest:guest@localhost:5672//";
export const REJECT_REASON_HEADER = "x-celeriac-reject-reason";
/** How long a settle that could not reach the broker waits for its message to come back. */
const DEFERRED_SETTLE_MS = 30 * 60_000;

/**
 * A failover list as Celery writes it (`amqp://h1;amqp://h2`, kombu splits the hostname on ";"),
 * or an array of URLs, each normalised. Split before any URL is parsed, so a URL's own parsing
 * never sees the list.
 */
export function amqpUrlList(url: string | readonly string[]): string[] {
  const parts = (typeof url === "string" ? [url] : [...url]).flatMap((u) => {
    if (typeof u !== "string") throw new CeleriacError("invalid_argument", `an AMQP URL must be a string, got ${JSON.stringify(u)}`);
    return u.split(";").map((x) => x.trim());
  });
  if (parts.length === 0 || parts.some((p) => p === "")) {
    throw new CeleriacError("invalid_argument", `empty AMQP URL in ${JSON.stringify(url)} (a failover list is amqp://h1;amqp://h2)`);
  }
  return parts.map(normaliseAmqpUrl);
}

/** kombu reads `amqp://host//` and `amqp://host/` as vhost "/"; amqplib would read "/" and "". */
export function normaliseAmqpUrl(url: string): string {
  const m = /^(amqps?:\/\/[^/?]*)(\/[^?]*)?(\?.*)?$/i.exec(url);
  if (!m) throw new CeleriacError("invalid_argument", `not an AMQP URL: ${JSON.stringify(url)} (expected amqp://user:pass@host:5672/vhost)`);
  const path = m[2] ?? "";
  const vhost = path === "" || path === "/" || path === "//" ? "/" : decodeURIComponent(path.slice(1));
  return `${m[1]}/${encodeURIComponent(vhost)}${m[3] ?? ""}`;
}

function isChannelError(err: unknown): err is Error & { code?: number } {
  return err instanceof Error && typeof (err as { code?: unknown }).code === "number";
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** RabbitMQ transport, wire-compatible with Celery's py-amqp transport. */
/**
 * What `createAmqpTransport` returns: the transport contract, with RabbitMQ's exchanges always
 * present. The class behind it is not public: declarations and publishing internals are not API.
 */
export interface AmqpTransport extends Transport {
  readonly exchanges: ExchangeMessaging;
  /** The messages `reject` dead-lettered (needs `deadLetterExchange`, else `CeleriacError("unsupported")`). */
  readDeadLetters(queue: string, options?: { limit?: number }): Promise<DeadLetter[]>;
}

class AmqpTransportImpl implements AmqpTransport {
  readonly name = "amqp";
  readonly capabilities: TransportCapabilities;
  readonly closed: Promise<void>;
  private resolveClosed!: () => void;
  readonly connection: ReconnectingConnection;
  private readonly opts: Required<Pick<AmqpTransportOptions, "declare" | "confirm" | "publishTimeoutMs">> & AmqpTransportOptions;
  /** @internal Read by its consumers' deliveries. */
  isClosed = false;
  private readonly publishChannels = new WeakMap<ChannelModel, Promise<Channel>>();
  /** The publish channel once open, for a publish that need not await anything first. */
  private openPublishChannel: { conn: ChannelModel; ch: Channel } | null = null;
  private readonly declared = new Declarations();
  private readonly consumers = new Set<Consumer>();
  private readonly events: ConnectionLifecycle;
  /** Outages of the connection (it reconnects by itself through core's lifecycle loop). */
  readonly lifecycle: ConnectionEvents;
  private inFlight = 0;
  private idle: (() => void) | null = null;
  /** Named exchanges (Celery events, remote control): see exchanges.ts. */
  readonly exchanges: AmqpExchanges;
  /** @internal The acks of every consumer of this transport, coalesced per tick (see flushAcks). */
  readonly acks = new SettleBatch<Handle>(flushAcks);

  constructor(options: AmqpTransportOptions = {}) {
    assertKnownOptions("createAmqpTransport", options, OPTION_KEYS);
    if (options.declare !== undefined && options.declare !== "declare" && options.declare !== "passive") {
      throw new CeleriacError("invalid_argument", `createAmqpTransport: declare must be "declare" or "passive", got ${JSON.stringify(options.declare)}`);
    }
    if (options.maxPriority !== undefined && !(Number.isInteger(options.maxPriority) && options.maxPriority >= 1 && options.maxPriority <= 255)) {
      throw new CeleriacError("invalid_argument", `createAmqpTransport: maxPriority must be an integer 1..255, got ${String(options.maxPriority)}`);
    }
    this.opts = { declare: "declare", confirm: true, publishTimeoutMs: 30_000, ...options };
    // Refused here, not by a broker that would close the channel at declare time.
    checkQueueArguments("queueArguments", this.queueArguments(null));
    for (const q of Object.keys(options.queues ?? {})) checkQueueArguments(`queues[${JSON.stringify(q)}]`, this.queueArguments(q));
    this.connection = new ReconnectingConnection({
      urls: amqpUrlList(options.url ?? DEFAULT_AMQP_URL),
      tls: options.tls,
      lifecycle:
        (this.lifecycle = this.events =
          new ConnectionLifecycle("amqp", {
            initialDelayMs: options.reconnectInitialDelayMs ?? 100,
            maxDelayMs: options.reconnectMaxDelayMs ?? 5_000,
          })),
      onEvent: options.onEvent,
    });
    const priorityArg = options.maxPriority ?? options.queueArguments?.["x-max-priority"];
    this.capabilities = Object.freeze({
      priority: priorityArg !== undefined ? "native" : "none",
      // A delay would need a TTL + dead-letter queue per delay; not emulated. nack({delayMs})
      // holds the message on its channel until then instead (see README).
      delayedDelivery: false,
      // An unacked message is never redelivered while its channel lives, so there is nothing
      // to extend; RabbitMQ's consumer_timeout is the only clock (see README).
      visibilityExtension: false,
      deadLetter: options.deadLetterExchange !== undefined,
      // RabbitMQ 3.10's default max_message_size.
      maxMessageBytes: 134_217_728,
    });
    this.closed = new Promise((r) => (this.resolveClosed = r));
    this.exchanges = new AmqpExchanges({
      connection: this.connection,
      timeoutMs: this.opts.publishTimeoutMs,
      onEvent: options.onEvent,
      publishTo: (exchange, routingKey, message, declare) => this.publishTo(exchange, routingKey, message, declare),
      fromAmqpMessage,
    });
  }

  async connect(): Promise<void> {
    this.assertOpen();
    await this.connection.open();
  }

  private assertOpen(): void {
    if (this.isClosed) throw new CeleriacError("closed", "amqp transport is closed");
  }

  /** The arguments this transport declares `queue` with (`null`: a queue without its own entry). */
  queueArguments(queue: string | null): Record<string, unknown> {
    const own = queue !== null && this.opts.queues && Object.hasOwn(this.opts.queues, queue) ? this.opts.queues[queue]?.arguments : undefined;
    const args: Record<string, unknown> = { ...this.opts.queueArguments, ...own };
    if (this.opts.maxPriority !== undefined) args["x-max-priority"] = this.opts.maxPriority;
    return args;
  }

  /** Declares (or checks, in passive mode) a queue as Celery does, once per connection. */
  ensureQueue(conn: ChannelModel, queue: string): Promise<void> {
    return this.declared.once(conn, queue, (ch) => this.declareQueue(ch, queue));
  }

  private async declareQueue(ch: Channel, queue: string): Promise<void> {
    try {
      if (this.opts.declare === "passive") {
        await ch.checkQueue(queue);
      } else {
        const args = typeFieldTable(this.queueArguments(queue));
        await ch.assertExchange(queue, "direct", { durable: true, autoDelete: false });
        await ch.assertQueue(queue, { durable: true, exclusive: false, autoDelete: false, arguments: args });
        await ch.bindQueue(queue, queue, queue);
      }
    } catch (err) {
      throw declareError(queue, this.opts.declare, this.queueArguments(queue), err);
    }
  }

  private publishChannel(conn: ChannelModel): Promise<Channel> {
    let p = this.publishChannels.get(conn);
    if (!p) {
      p = (this.opts.confirm ? conn.createConfirmChannel() : conn.createChannel()).then((ch) => {
        ch.on("error", () => undefined);
        ch.on("close", () => {
          if (this.publishChannels.get(conn) === p) this.publishChannels.delete(conn);
          if (this.openPublishChannel?.ch === ch) this.openPublishChannel = null;
        });
        this.openPublishChannel = { conn, ch };
        return ch;
      });
      const pp = p;
      p.catch(() => {
        if (this.publishChannels.get(conn) === pp) this.publishChannels.delete(conn);
      });
      this.publishChannels.set(conn, p);
    }
    return p;
  }

  async publish(queue: string, message: WireMessage, options?: PublishOptions): Promise<void> {
    this.assertOpen();
    assertPublishable(this, queue, message, options);
    await this.publishTo("", queue, message, queue);
  }

  /** Publishes with a confirm, waiting through reconnects up to `publishTimeoutMs`. */
  async publishTo(
    exchange: string,
    routingKey: string,
    message: WireMessage,
    declare: string | null | ((conn: ChannelModel) => Promise<void>),
    extraHeaders?: Record<string, unknown>,
  ): Promise<void> {
    const content = Buffer.from(message.body.buffer, message.body.byteOffset, message.body.byteLength);
    const props = toPublishOptions(message, extraHeaders);
    const deadline = Date.now() + this.opts.publishTimeoutMs;
    this.inFlight++;
    try {
      for (;;) {
        // Fast path: connected, the publish channel open and the queue declared on this
        // connection already; nothing to await before the publish itself.
        const open = this.openPublishChannel;
        const current = this.connection.current;
        const fast = open !== null && current === open.conn && (declare === null || (typeof declare === "string" && this.declared.isDone(current, declare)));
        const conn = fast ? current : await this.connection.ready(Math.max(1, deadline - Date.now()));
        try {
          let ch: Channel;
          if (fast) ch = open.ch;
          else {
            // A queue name (default exchange) or an exchange declaration, once per connection.
            if (typeof declare === "string") await this.ensureQueue(conn, declare);
            else if (declare !== null) await declare(conn);
            ch = await this.publishChannel(conn);
          }
          if (this.opts.confirm) {
            await new Promise<void>((resolve, reject) => {
              (ch as ConfirmChannel).publish(exchange, routingKey, content, props, (err: unknown) => (err ? reject(toError(err)) : resolve()));
            });
          } else if (!ch.publish(exchange, routingKey, content, props)) {
            await new Promise<void>((r) => ch.once("drain", () => r()));
          }
          return;
        } catch (err) {
          // A refusal of the queue itself (arguments differ, passive and missing, no access):
          // the same on every attempt.
          if (err instanceof CeleriacError && err.code !== "connection") throw err;
          // A connection that is going away fails its channels first: give it a moment to be
          // seen as closed. If it still stands, the broker refused this publish on its own,
          // unless it is one of the refusals that pass: a nack (a quorum queue nacks what it
          // received while electing a new leader, after its leader's node failed) or a
          // declaration that failed for another reason than the queue. Those are sent again,
          // so a publish resolves only once confirmed, or rejects at the deadline.
          await sleep(100);
          if (this.isClosed) throw new CeleriacError("closed", "amqp transport closed during publish", { cause: err });
          const stillUp = this.connection.current === conn;
          const passing = err instanceof CeleriacError || /message nacked/i.test(describe(err));
          if (stillUp && !passing && !isConnectionGone(err)) {
            throw new CeleriacError("connection", `publish to ${JSON.stringify(routingKey)} failed: ${describe(err)}`, { cause: err });
          }
          if (stillUp) await sleep(200);
          if (Date.now() >= deadline) {
            throw new CeleriacError(
              "connection",
              `publish to ${JSON.stringify(routingKey)} not confirmed within ${this.opts.publishTimeoutMs} ms: ${describe(err)}`,
              { cause: err },
            );
          }
        }
      }
    } finally {
      this.inFlight--;
      if (this.inFlight === 0) this.idle?.();
    }
  }

  consume(queues: readonly string[], options: ConsumeOptions): Consumer {
    this.assertOpen();
    const c = new AmqpConsumer(this, [...queues], options, this.opts.onEvent, () => this.consumers.delete(c.queue));
    this.consumers.add(c.queue);
    c.begin();
    return c.queue;
  }

  async purge(queue: string): Promise<number> {
    this.assertOpen();
    const conn = await this.connection.ready(this.opts.publishTimeoutMs);
    await this.ensureQueue(conn, queue);
    const ch = await conn.createChannel();
    ch.on("error", () => undefined);
    try {
      const r = await ch.purgeQueue(queue);
      return r.messageCount;
    } finally {
      await ch.close().catch(() => undefined);
    }
  }

  /**
   * What `reject` dead-lettered from `queue` (needs `deadLetterExchange`), oldest first, left in
   * place: read unacked on a channel of its own, which is then closed, so RabbitMQ requeues
   * them where they were.
   */
  async readDeadLetters(queue: string, options: { limit?: number } = {}): Promise<DeadLetter[]> {
    if (this.opts.deadLetterExchange === undefined) throw new CeleriacError("unsupported", "readDeadLetters needs the deadLetterExchange option");
    const limit = options.limit ?? 1000;
    const conn = await this.connection.ready(this.opts.publishTimeoutMs);
    await this.ensureDeadLetterQueue(conn, queue);
    const ch = await conn.createChannel();
    ch.on("error", () => undefined);
    const out: DeadLetter[] = [];
    try {
      while (out.length < limit) {
        const m = await ch.get(`${queue}.dead`, { noAck: false });
        if (!m) break;
        const message = fromAmqpMessage(m);
        const reason = message.headers[REJECT_REASON_HEADER];
        delete message.headers[REJECT_REASON_HEADER];
        const count = message.headers["x-delivery-count"];
        out.push({ queue, message, reason: typeof reason === "string" ? reason : "", deliveryCount: typeof count === "number" ? count + 1 : null, raw: null });
      }
    } finally {
      await ch.close().catch(() => undefined);
    }
    return out;
  }

  ensureDeadLetterQueue(conn: ChannelModel, queue: string): Promise<void> {
    const exchange = this.opts.deadLetterExchange!;
    return this.declared.once(conn, `\0dead:${queue}`, async (ch) => {
      if (exchange !== "") await ch.assertExchange(exchange, "direct", { durable: true });
      await ch.assertQueue(`${queue}.dead`, { durable: true });
      if (exchange !== "") await ch.bindQueue(`${queue}.dead`, exchange, queue);
    });
  }

  /** Copies a rejected message to the dead-letter exchange with its reason. */
  async deadLetter(queue: string, message: WireMessage, reason: string): Promise<void> {
    const exchange = this.opts.deadLetterExchange!;
    const conn = await this.connection.ready(this.opts.publishTimeoutMs);
    await this.ensureDeadLetterQueue(conn, queue);
    await this.publishTo(exchange, exchange === "" ? `${queue}.dead` : queue, message, null, { [REJECT_REASON_HEADER]: reason });
  }

  async close(options: { drainMs?: number } = {}): Promise<void> {
    if (this.isClosed) return this.closed;
    this.isClosed = true;
    await Promise.all([...this.consumers].map((c) => c.stop()));
    await this.exchanges.closeAll();
    // Acks queued by late settles reach the broker before the connection goes.
    this.acks.flush();
    if (this.inFlight > 0) {
      await Promise.race([new Promise<void>((r) => (this.idle = r)), sleep(options.drainMs ?? 5_000)]);
    }
    await this.connection.close();
    this.resolveClosed();
  }
}

/**
 * What RabbitMQ refuses for a quorum queue, refused before any declaration: priorities (a quorum
 * queue has none in RabbitMQ 3.x, and `x-max-priority` is an error there), and stream queues,
 * which Celery cannot consume either. Quorum queues must be durable, non-exclusive and not
 * auto-delete: this transport declares every queue that way (as Celery does), and consumes with
 * per-consumer QoS (`basic.qos global=false`), the only kind a quorum queue accepts.
 */
function checkQueueArguments(where: string, args: Record<string, unknown>): void {
  const type = args["x-queue-type"];
  if (type === undefined || type === "classic") return;
  if (type === "stream") {
    throw new CeleriacError(
      "unsupported",
      `createAmqpTransport: ${where} asks for x-queue-type "stream"; stream queues are not task queues (Celery cannot consume them either)`,
    );
  }
  if (type !== "quorum")
    throw new CeleriacError("invalid_argument", `createAmqpTransport: ${where}: x-queue-type must be "classic" or "quorum", got ${JSON.stringify(type)}`);
  if (args["x-max-priority"] !== undefined) {
    throw new CeleriacError(
      "invalid_argument",
      `createAmqpTransport: ${where}: quorum queues do not support priorities (x-max-priority / maxPriority); use a classic queue for priorities`,
    );
  }
}

/** Attempts to open a consumer the broker refuses (403, 404 passive, 406) before it fails: ~1 s. */
const REFUSED_ATTEMPTS = 3;
/** Attempts after other channel failures before it fails: ~10 s, longer than a quorum queue's leader election. */
const FAILED_ATTEMPTS = 20;
const CONSUME_RETRY_MS = 500;

/** A refusal of the queue itself: retrying on the same connection cannot change it. */
function isRefusal(err: unknown): boolean {
  if (err instanceof CeleriacError && err.code === "invalid_argument") return true;
  const code = isChannelError(err) ? err.code : undefined;
  return code === 403 || code === 406 || /ACCESS_REFUSED|PRECONDITION_FAILED/.test(describe(err));
}

function isConnectionGone(err: unknown): boolean {
  const msg = describe(err);
  return /connection closed|channel ended|socket|ECONNRESET|CONNECTION_FORCED|closed by server: 320/i.test(msg);
}

function toError(err: unknown): Error {
  return err instanceof Error ? err : new Error(String(err));
}

function declareError(queue: string, mode: "declare" | "passive", args: Record<string, unknown>, err: unknown): CeleriacError {
  const text = describe(err);
  const code = isChannelError(err) ? err.code : undefined;
  if (code === 406 || /PRECONDITION_FAILED|PRECONDITION-FAILED/.test(text)) {
    const arg = /inequivalent arg '([^']+)'/.exec(text)?.[1];
    const what = arg ? `argument "${arg}" differs` : "its arguments differ";
    return new CeleriacError(
      "invalid_argument",
      `queue ${JSON.stringify(queue)} already exists and ${what} from what this transport declares (${JSON.stringify(args)}). ` +
        `Give the queue's existing arguments in queueArguments/queues/maxPriority (celeriac CLI: --queue-arguments/--max-priority), ` +
        `or use declare: "passive" (--passive-queues). Broker said: ${text}`,
      { cause: err },
    );
  }
  if (code === 403 || /ACCESS_REFUSED|ACCESS-REFUSED/.test(text)) {
    return new CeleriacError(
      "invalid_argument",
      `no access to queue ${JSON.stringify(queue)} for this user (check its permissions on the vhost). Broker said: ${text}`,
      {
        cause: err,
      },
    );
  }
  if (mode === "passive" && (code === 404 || /NOT_FOUND/.test(text))) {
    return new CeleriacError(
      "invalid_argument",
      `queue ${JSON.stringify(queue)} does not exist (declare: "passive", --passive-queues, never creates queues). Broker said: ${text}`,
      { cause: err },
    );
  }
  return new CeleriacError("connection", `declaring queue ${JSON.stringify(queue)} failed: ${text}`, { cause: err });
}

export function toPublishOptions(message: WireMessage, extraHeaders?: Record<string, unknown>): Options.Publish {
  const p = message.properties;
  const o: Options.Publish = {
    contentType: message.contentType,
    contentEncoding: message.contentEncoding,
    headers: typeFieldTable(message.headers, extraHeaders),
    deliveryMode: p.deliveryMode ?? 2,
  };
  if (p.correlationId !== undefined) o.correlationId = p.correlationId;
  if (p.replyTo !== undefined && p.replyTo !== "") o.replyTo = p.replyTo;
  if (p.priority !== undefined) o.priority = p.priority;
  if (p.expiration !== undefined) o.expiration = p.expiration;
  return o;
}

export function fromAmqpMessage(m: { content: Buffer; properties: ConsumeMessage["properties"] }): WireMessage {
  const p = m.properties;
  const message: WireMessage = {
    body: new Uint8Array(m.content.buffer, m.content.byteOffset, m.content.byteLength),
    contentType: typeof p.contentType === "string" ? p.contentType : "application/json",
    contentEncoding: typeof p.contentEncoding === "string" ? p.contentEncoding : "utf-8",
    headers: (p.headers as Record<string, unknown> | undefined) ?? {},
    properties: {},
  };
  if (typeof p.correlationId === "string") message.properties.correlationId = p.correlationId;
  if (typeof p.replyTo === "string") message.properties.replyTo = p.replyTo;
  if (typeof p.deliveryMode === "number") message.properties.deliveryMode = p.deliveryMode;
  if (typeof p.priority === "number") message.properties.priority = p.priority;
  if (p.expiration !== undefined && p.expiration !== null) message.properties.expiration = String(p.expiration);
  return message;
}

/** A consumer channel. When it dies, the broker requeues its unsettled messages; the deliveries handed out for them are re-attached when they come back. */
interface ChannelState {
  ch: Channel;
  conn: ChannelModel;
  alive: boolean;
  /** Received on this channel and not settled (buffered or handed out). */
  handles: Set<Handle>;
  /**
   * Delivery tag -> handle, for every message received on this channel whose settle has not been
   * written yet, in delivery-tag order (tags grow on a channel and a Map keeps insertion order).
   * A `basic.ack multiple` up to tag N also acks every lower tag still unacked on the channel, so
   * it is written only when each entry up to N is an ack waiting to be written.
   */
  unwritten: Map<number, Handle>;
}

type SettleOp = (ch: Channel, raw: ConsumeMessage) => void;

/** Identifies a message across redeliveries: its queue and Celery task id (or correlation id). */
function messageKey(queue: string, message: WireMessage): string | null {
  const id = message.headers["id"] ?? message.properties.correlationId;
  return typeof id === "string" && id !== "" ? `${queue}\0${id}` : null;
}

/** One received message: where it lives now (it moves to a new channel when redelivered to a held delivery). */
interface Handle {
  message: WireMessage;
  queue: string;
  redelivered: boolean;
  raw: ConsumeMessage;
  state: ChannelState;
  key: string | null;
  /** Set once handed out. */
  delivery: Delivery | null;
  /** The consumer it was received by (where a settle that cannot reach the broker is remembered). */
  owner: AmqpConsumer;
  /** True while its ack is being written by flushAcks. */
  acking: boolean;
}

/**
 * Writes the acks coalesced in one tick: per channel, one `basic.ack multiple` for the longest
 * run of the oldest unwritten deliveries that are all acked, then single acks for the acked ones
 * behind a delivery that is still unsettled (a long task, a held ETA, a buffered message): a
 * multiple ack must never cover those. An ack whose channel is gone waits for the redelivery.
 */
function flushAcks(handles: Handle[]): void {
  for (const h of handles) h.acking = true;
  for (const h of handles) {
    if (!h.acking) continue; // written already, with an earlier handle of its channel
    const state = h.state;
    let upTo: Handle | null = null;
    if (state.alive) {
      for (const u of state.unwritten.values()) {
        if (!u.acking) break;
        upTo = u;
      }
    }
    try {
      if (!state.alive) throw new Error("channel closed");
      if (upTo) {
        state.ch.ack(upTo.raw, true);
        for (const [tag, u] of state.unwritten) {
          state.unwritten.delete(tag);
          u.acking = false;
          u.owner.written(u);
          if (u === upTo) break;
        }
      }
      if (h.acking) {
        state.ch.ack(h.raw);
        state.unwritten.delete(h.raw.fields.deliveryTag);
        h.acking = false;
        h.owner.written(h);
      }
    } catch {
      // The channel closed under us: the broker requeued the message; the ack waits for it.
      for (const u of handles) {
        if (u.acking && u.state === state) {
          state.unwritten.delete(u.raw.fields.deliveryTag);
          u.acking = false;
          u.owner.lost(u, (ch, raw) => ch.ack(raw));
        }
      }
    }
  }
}

/**
 * The AMQP side of a consumer: channels, their recovery after a lost connection, and settles
 * that could not reach the broker. Buffering, the prefetch window, stop and iteration are core's
 * DeliveryQueue.
 */
class AmqpConsumer {
  readonly queue: DeliveryQueue<Handle>;
  private state: ChannelState | null = null;
  private readonly states = new Set<ChannelState>();
  private tags: string[] = [];
  private offUp: (() => void) | null = null;
  private timers = new Set<ReturnType<typeof setTimeout>>();
  private held = new Map<ReturnType<typeof setTimeout>, () => void>();
  private starting: Promise<void> | null = null;
  private openingFor: ChannelModel | null = null;
  private readonly orphans = new Map<string, Handle>();
  private readonly deferred = new Map<string, { fn: SettleOp; at: number }>();
  /** Failed attempts to open the consumer on a live connection since it last opened. */
  private failures = 0;

  constructor(
    readonly transport: AmqpTransportImpl,
    private readonly queues: string[],
    options: ConsumeOptions,
    private readonly onEvent: ((event: string, detail?: unknown) => void) | undefined,
    private readonly onStopped: () => void,
  ) {
    this.queue = new DeliveryQueue<Handle>({
      queues,
      consume: options,
      toDelivery: (h, release) => this.toDelivery(h, release),
      // Received after stop: straight back to the broker.
      giveBack: (hs) => {
        for (const h of hs) this.apply(h, (ch, raw) => ch.nack(raw, false, true));
      },
      onStop: () => this.shutdown(),
    });
  }

  begin(): void {
    if (this.queue.stopped) return;
    this.offUp = this.transport.connection.onUp((conn) => this.restart(conn, true));
    void this.transport.connection
      .open()
      .then((conn) => this.restart(conn, false))
      // Not only a hook: a consumer that never started ends its iteration with the error.
      .catch((err: unknown) => {
        this.onEvent?.("consumer-error", err);
        this.queue.fail(err);
      });
  }

  private restart(conn: ChannelModel, recovered: boolean): void {
    if (this.queue.stopped) return;
    if (this.state?.alive && this.state.conn === conn) return;
    // The channel's close and the connection's comeback can both ask for a restart.
    if (this.openingFor === conn) return;
    this.openingFor = conn;
    const p = this.open(conn)
      .finally(() => {
        if (this.openingFor === conn) this.openingFor = null;
      })
      .then(
        () => {
          this.failures = 0;
          if (recovered) this.onEvent?.("consumer-recovered", this.queues);
        },
        (err: unknown) => {
          this.onEvent?.("consumer-error", err);
          // The connection still stands but the queue could not be consumed. A refusal (406
          // arguments differ, 404 on a passive declare, 403 no access) is tried a few times, in
          // case someone was re-declaring the queue; anything else (a channel closed by
          // consumer_timeout, a quorum queue electing its leader) gets longer. Past that the
          // consumer fails with the broker's reason, so the worker logs it and exits non-zero
          // instead of retrying unseen.
          const limit = isRefusal(err) ? REFUSED_ATTEMPTS : FAILED_ATTEMPTS;
          if (++this.failures >= limit) {
            this.queue.fail(
              err instanceof CeleriacError && err.code === "invalid_argument"
                ? err
                : new CeleriacError(
                    "connection",
                    `cannot consume ${this.queues.map((q) => JSON.stringify(q)).join(", ")} (${this.failures} attempts): ${describe(err)}`,
                    {
                      cause: err,
                    },
                  ),
            );
            return;
          }
          this.later(CONSUME_RETRY_MS, () => {
            const c = this.transport.connection.current;
            if (c && !this.queue.stopped && !this.state?.alive) this.restart(c, true);
          });
        },
      );
    this.starting = p;
  }

  private later(ms: number, fn: () => void): void {
    const t = setTimeout(() => {
      this.timers.delete(t);
      fn();
    }, ms);
    this.timers.add(t);
  }

  private async open(conn: ChannelModel): Promise<void> {
    for (const q of this.queues) await this.transport.ensureQueue(conn, q);
    const ch = await conn.createChannel();
    const state: ChannelState = { ch, conn, alive: true, handles: new Set(), unwritten: new Map() };
    this.state = state;
    this.states.add(state);
    ch.on("error", (err: unknown) => this.onEvent?.("channel-error", err));
    ch.on("close", () => {
      state.alive = false;
      this.states.delete(state);
      // Acks queued for this channel cannot be written any more: they wait for the redelivery.
      this.transport.acks.flush();
      state.unwritten.clear();
      // Prefetched messages of a dead channel, never handed out, are simply back in the queue.
      for (const h of this.queue.drop((x) => x.state === state)) state.handles.delete(h);
      // Handed out and unsettled: the broker requeued them. When one comes back, the delivery
      // the caller holds is re-attached to it instead of handing out a second copy.
      for (const h of state.handles) if (h.key !== null && h.delivery && !h.delivery.settled) this.orphans.set(h.key, h);
      if (this.state === state) {
        this.state = null;
        if (this.transport.connection.current && !this.queue.stopped) {
          this.later(200, () => {
            const cur = this.transport.connection.current;
            if (cur && !this.queue.stopped && !this.state) this.restart(cur, true);
          });
        }
      }
    });
    await ch.prefetch(this.queue.prefetch, false);
    const tags: string[] = [];
    for (const queue of this.queues) {
      const r = await ch.consume(queue, (m) => {
        // Cancelled by the broker (the queue was deleted, or its node went away): the channel
        // stays open but delivers nothing more, so close it; the close handler opens a new one,
        // which declares the queue again (or finds it gone, in passive mode, and fails).
        if (m === null) {
          this.onEvent?.("consumer-cancelled", queue);
          void ch.close().catch(() => undefined);
          return;
        }
        this.receive(fromAmqpMessage(m), queue, m, state);
      });
      tags.push(r.consumerTag);
    }
    this.tags = tags;
    if (this.queue.stopped) await this.cancel(state);
  }

  private receive(message: WireMessage, queue: string, m: ConsumeMessage, state: ChannelState): void {
    const key = m.fields.redelivered ? messageKey(queue, message) : null;
    if (key !== null) {
      const op = this.deferred.get(key);
      if (op) {
        // Settled by the caller while its channel was gone: apply that settle now.
        this.deferred.delete(key);
        try {
          op.fn(state.ch, m);
        } catch {
          // channel gone again: it comes back once more
        }
        return;
      }
      const orphan = this.orphans.get(key);
      if (orphan && orphan.delivery && !orphan.delivery.settled) {
        this.orphans.delete(key);
        // The same message came back on a new channel while its delivery was still unsettled.
        orphan.raw = m;
        orphan.state = state;
        state.handles.add(orphan);
        state.unwritten.set(m.fields.deliveryTag, orphan);
        return;
      }
    }
    const h: Handle = {
      message,
      queue,
      redelivered: m.fields.redelivered,
      raw: m,
      state,
      key: messageKey(queue, message),
      delivery: null,
      owner: this,
      acking: false,
    };
    state.handles.add(h);
    state.unwritten.set(m.fields.deliveryTag, h);
    this.queue.push(h);
  }

  /**
   * Applies a settle to the message's current channel; when that channel is gone the broker has
   * requeued the message, so the settle is applied when it comes back.
   */
  private apply(h: Handle, fn: SettleOp): void {
    // Acks queued before this settle reach the broker first, in the order they were made.
    this.transport.acks.flush();
    const state = h.state;
    let done = false;
    if (state.alive) {
      try {
        fn(state.ch, h.raw);
        done = true;
      } catch {
        // The channel closed under us.
      }
    }
    state.unwritten.delete(h.raw.fields.deliveryTag);
    if (done) this.written(h);
    else this.lost(h, fn);
  }

  /** @internal A settle of `h` was written to its channel. */
  written(h: Handle): void {
    const state = h.state;
    state.handles.delete(h);
    if (this.queue.stopped && state.handles.size === 0) void this.closeChannel(state);
  }

  /** @internal A settle of `h` could not be written (its channel is gone): applied when the message comes back. */
  lost(h: Handle, fn: SettleOp): void {
    this.defer(h.key, fn);
    this.written(h);
  }

  private toDelivery(h: Handle, release: () => void): Delivery {
    // Quorum queues count deliveries in x-delivery-count (absent on the first one).
    const count = h.message.headers["x-delivery-count"];
    h.delivery = createDelivery({
      transport: this.transport.name,
      message: h.message,
      queue: h.queue,
      redelivered: h.redelivered,
      deliveryCount: typeof count === "number" ? count + 1 : null,
      isClosed: () => this.transport.isClosed,
      onSettled: release,
      ops: {
        // Coalesced with the other acks of this tick; resolves once written (or deferred).
        ack: () => this.transport.acks.add(h),
        nack: ({ requeue, delayMs }) => {
          if (requeue && delayMs > 0) {
            // Held on this channel until the delay is over, then requeued. If the process dies
            // first, the broker requeues it at once (earlier than asked, never lost).
            this.hold(delayMs, () => this.apply(h, (ch, raw) => ch.nack(raw, false, true)));
            return;
          }
          this.apply(h, (ch, raw) => ch.nack(raw, false, requeue));
        },
        // Nothing to extend on AMQP: an unacked message stays with its channel.
        extend: () => undefined,
        reject: async (reason) => {
          if (!this.transport.capabilities.deadLetter) {
            this.apply(h, (ch, raw) => ch.nack(raw, false, false));
            return;
          }
          try {
            await this.transport.deadLetter(h.queue, h.message, reason);
          } catch (err) {
            // Not dead-lettered: give the message back rather than lose it.
            this.apply(h, (ch, raw) => ch.nack(raw, false, true));
            throw err;
          }
          this.apply(h, (ch, raw) => ch.ack(raw));
        },
      },
    });
    return h.delivery;
  }

  /** Remembers a settle that could not reach the broker, for when the message is redelivered. */
  private defer(key: string | null, fn: SettleOp): void {
    if (key === null) return;
    this.orphans.delete(key);
    const now = Date.now();
    // Bounded: a message another consumer took never comes back here.
    for (const [k, v] of this.deferred) if (now - v.at > DEFERRED_SETTLE_MS) this.deferred.delete(k);
    this.deferred.set(key, { fn, at: now });
  }

  private hold(ms: number, then: () => void): void {
    const t = setTimeout(() => {
      this.held.delete(t);
      then();
    }, ms);
    this.held.set(t, then);
  }

  private async cancel(state: ChannelState): Promise<void> {
    if (!state.alive) return;
    for (const tag of this.tags) await state.ch.cancel(tag).catch(() => undefined);
  }

  private async closeChannel(state: ChannelState): Promise<void> {
    if (!state.alive) return;
    state.alive = false;
    await state.ch.close().catch(() => undefined);
  }

  /** The broker side of stop: cancel, give back what was prefetched, close idle channels. */
  private async shutdown(): Promise<void> {
    this.onStopped();
    this.offUp?.();
    await this.starting?.catch(() => undefined);
    const state = this.state;
    if (state) await this.cancel(state);
    // Prefetched but never handed out: back to the queue now.
    for (const h of this.queue.drop(() => true)) this.apply(h, (ch, raw) => ch.nack(raw, false, true));
    // Held nacks (delayMs) happen now rather than after the consumer is gone.
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
    for (const [t, then] of this.held) {
      clearTimeout(t);
      then();
    }
    this.held.clear();
    for (const s of [...this.states]) if (s.handles.size === 0) await this.closeChannel(s);
  }
}

export function createAmqpTransport(options: AmqpTransportOptions = {}): AmqpTransport {
  return new AmqpTransportImpl(options);
}
