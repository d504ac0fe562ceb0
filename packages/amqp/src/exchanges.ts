import { randomUUID } from "node:crypto";
import type { Channel, ChannelModel, ConsumeMessage } from "amqplib";
import { CeleriacError } from "@celeriac/core";
import {
  type ExchangeDelivery,
  type ExchangeMessaging,
  type ExchangeSpec,
  type ExchangeSubscription,
  type SubscribeOptions,
  type WireMessage,
} from "@celeriac/core/transport";
import { describe, type ReconnectingConnection } from "./connection.js";
import { Declarations } from "./declarations.js";
import { typeFieldTable } from "./field-table.js";

/** What the exchange side needs from its transport. */
export interface ExchangeHost {
  readonly connection: ReconnectingConnection;
  readonly timeoutMs: number;
  onEvent: ((event: string, detail?: unknown) => void) | undefined;
  publishTo(exchange: string, routingKey: string, message: WireMessage, declare: (conn: ChannelModel) => Promise<void>): Promise<void>;
  fromAmqpMessage(m: ConsumeMessage): WireMessage;
}

const EXCHANGE_TYPES = new Set(["direct", "fanout", "topic"]);
const SUBSCRIBE_KEYS = new Set(["bindingKey", "queue", "messageTtlMs", "queueExpiresMs"]);

/**
 * kombu's `Exchange` defaults (kombu/entity.py: `durable = True`, `auto_delete = False`). Callers
 * state what Celery declares: `celeryev` is topic and durable (celery/events/event.py), the pidbox
 * exchanges are non-durable, not auto-deleted (kombu/pidbox.py: `_get_exchange`,
 * `_get_reply_exchange`). Any other flag makes RabbitMQ refuse the second declaration with 406.
 */
function flagsOf(spec: ExchangeSpec): { durable: boolean; autoDelete: boolean } {
  return { durable: spec.durable ?? true, autoDelete: spec.autoDelete ?? false };
}

function validateSpec(spec: ExchangeSpec): void {
  if (typeof spec.name !== "string" || spec.name === "")
    throw new CeleriacError("invalid_argument", "exchange name must be a non-empty string (the default exchange is not an exchange to subscribe to)");
  if (!EXCHANGE_TYPES.has(spec.type))
    throw new CeleriacError(
      "invalid_argument",
      `exchange ${JSON.stringify(spec.name)}: type must be direct, fanout or topic, got ${JSON.stringify(spec.type)}`,
    );
}

function positiveIntOrUndefined(name: string, v: number | undefined): void {
  if (v !== undefined && !(Number.isInteger(v) && v > 0))
    throw new CeleriacError("invalid_argument", `subscribe: ${name} must be a positive integer of milliseconds, got ${String(v)}`);
}

/** A refused declaration becomes a clear error; anything else (a lost connection) stays as it is, so the publish retries through a reconnect. */
function declareExchangeError(spec: ExchangeSpec, err: unknown): unknown {
  const text = describe(err);
  if (/PRECONDITION_FAILED|PRECONDITION-FAILED|\b406\b/.test(text)) {
    const f = flagsOf(spec);
    return new CeleriacError(
      "invalid_argument",
      `exchange ${JSON.stringify(spec.name)} already exists with other settings than ${JSON.stringify({ type: spec.type, ...f })}; ` +
        `declare it as the other side (Celery/kombu) does. Broker said: ${text}`,
      { cause: err },
    );
  }
  return err;
}

/** `Transport.exchanges` for RabbitMQ: real exchanges, a queue per subscription, no-ack consumers. */
export class AmqpExchanges implements ExchangeMessaging {
  /** Exchanges declared on each connection; a broker restart (new connection) declares again. */
  private readonly declared = new Declarations();
  private readonly subscriptions = new Set<AmqpExchangeSubscription>();

  constructor(private readonly host: ExchangeHost) {}

  ensureExchange(conn: ChannelModel, spec: ExchangeSpec): Promise<void> {
    const f = flagsOf(spec);
    const key = `${spec.name}\0${spec.type}\0${f.durable}\0${f.autoDelete}`;
    // An auto-delete exchange can vanish once its last queue goes: never trust the cache for it.
    return this.declared.once(
      conn,
      key,
      async (ch) => {
        try {
          await ch.assertExchange(spec.name, spec.type, f);
        } catch (err) {
          throw declareExchangeError(spec, err);
        }
      },
      { cache: !f.autoDelete },
    );
  }

  async publishToExchange(exchange: ExchangeSpec, routingKey: string, message: WireMessage): Promise<void> {
    validateSpec(exchange);
    try {
      await this.host.publishTo(exchange.name, routingKey, message, (conn) => this.ensureExchange(conn, exchange));
    } catch (err) {
      // Someone deleted the exchange after we declared it: the broker's 404 closes the publish
      // channel, and amqplib reports only "channel closed". Declare again and publish once more.
      if (!/NOT_FOUND|\b404\b|channel closed/i.test(describe(err))) throw err;
      const conn = this.host.connection.current;
      if (conn) this.declared.forget(conn);
      await this.host.publishTo(exchange.name, routingKey, message, (c) => this.ensureExchange(c, exchange));
    }
  }

  async subscribe(exchange: ExchangeSpec, options: SubscribeOptions, onMessage: (delivery: ExchangeDelivery) => void): Promise<ExchangeSubscription> {
    validateSpec(exchange);
    for (const k of Object.keys(options))
      if (!SUBSCRIBE_KEYS.has(k)) throw new CeleriacError("invalid_argument", `subscribe: unknown option ${JSON.stringify(k)}`);
    if (typeof options.bindingKey !== "string") throw new CeleriacError("invalid_argument", "subscribe: bindingKey must be a string");
    positiveIntOrUndefined("messageTtlMs", options.messageTtlMs);
    positiveIntOrUndefined("queueExpiresMs", options.queueExpiresMs);
    const sub = new AmqpExchangeSubscription(this, this.host, exchange, options, onMessage, () => this.subscriptions.delete(sub));
    this.subscriptions.add(sub);
    try {
      await sub.start();
    } catch (err) {
      await sub.close();
      throw err;
    }
    return sub;
  }

  /** Closes every subscription (the transport is closing). */
  async closeAll(): Promise<void> {
    await Promise.all([...this.subscriptions].map((s) => s.close()));
  }
}

/**
 * One subscription: a queue bound to the exchange, consumed without acks on a channel of its own.
 *
 * A private queue (no `queue` option) is exclusive and auto-deleted, like the `celeryev.<uuid>`
 * queue of Celery's event receiver, so it dies with the connection. A named queue is declared as
 * kombu declares pidbox and event queues (non-durable, auto-delete, not exclusive), so both sides
 * agree on its flags. After a reconnect the queue is declared, bound and consumed again on the
 * new connection: the subscription survives, missing what was published while it was away.
 */
class AmqpExchangeSubscription implements ExchangeSubscription {
  private readonly queue: string;
  private readonly isPrivate: boolean;
  private closed = false;
  private current: { ch: Channel; conn: ChannelModel; tag: string | null } | null = null;
  private opening: Promise<void> | null = null;
  private offUp: (() => void) | null = null;
  private retryTimer: ReturnType<typeof setTimeout> | null = null;

  constructor(
    private readonly owner: AmqpExchanges,
    private readonly host: ExchangeHost,
    private readonly spec: ExchangeSpec,
    private readonly options: SubscribeOptions,
    private readonly onMessage: (delivery: ExchangeDelivery) => void,
    private readonly onClosed: () => void,
  ) {
    this.isPrivate = options.queue === undefined;
    // `celeryev.<uuid>` for events, as celery/events/receiver.py names its queue.
    this.queue = options.queue ?? `${spec.name}.${randomUUID()}`;
  }

  async start(): Promise<void> {
    const conn = await this.host.connection.ready(this.host.timeoutMs);
    this.offUp = this.host.connection.onUp((c) => this.reopen(c));
    await this.open(conn);
  }

  private reopen(conn: ChannelModel): void {
    if (this.closed || this.opening || this.current?.conn === conn) return;
    this.opening = this.open(conn)
      .then(
        () => this.host.onEvent?.("subscription-recovered", { exchange: this.spec.name, queue: this.queue }),
        (err: unknown) => {
          this.host.onEvent?.("subscription-error", err);
          this.scheduleRetry();
        },
      )
      .finally(() => (this.opening = null));
  }

  /** The channel died while the connection stands (e.g. the queue was deleted): try again. */
  private scheduleRetry(): void {
    if (this.closed || this.retryTimer) return;
    this.retryTimer = setTimeout(() => {
      this.retryTimer = null;
      const c = this.host.connection.current;
      if (c && !this.closed && !this.current) this.reopen(c);
    }, 500);
  }

  private async open(conn: ChannelModel): Promise<void> {
    await this.owner.ensureExchange(conn, this.spec);
    const ch = await conn.createChannel();
    const state: { ch: Channel; conn: ChannelModel; tag: string | null } = { ch, conn, tag: null };
    ch.on("error", (err: unknown) => this.host.onEvent?.("channel-error", err));
    ch.on("close", () => {
      if (this.current !== state) return;
      this.current = null;
      // Connection loss is handled by onUp; a channel that died alone is reopened here.
      if (!this.closed && this.host.connection.current === conn) this.scheduleRetry();
    });
    try {
      const args: Record<string, unknown> = {};
      if (this.options.messageTtlMs !== undefined) args["x-message-ttl"] = this.options.messageTtlMs;
      if (this.options.queueExpiresMs !== undefined) args["x-expires"] = this.options.queueExpiresMs;
      await ch.assertQueue(this.queue, { durable: false, autoDelete: true, exclusive: this.isPrivate, arguments: typeFieldTable(args) });
      await ch.bindQueue(this.queue, this.spec.name, this.options.bindingKey);
      const r = await ch.consume(
        this.queue,
        (m) => {
          if (m === null || this.closed) return;
          this.deliver(m);
        },
        { noAck: true },
      );
      state.tag = r.consumerTag;
    } catch (err) {
      await ch.close().catch(() => undefined);
      throw new CeleriacError(
        "connection",
        `subscribing queue ${JSON.stringify(this.queue)} to exchange ${JSON.stringify(this.spec.name)} failed: ${describe(err)}`,
        { cause: err },
      );
    }
    this.current = state;
    if (this.closed) await this.teardown(state);
  }

  private deliver(m: ConsumeMessage): void {
    try {
      this.onMessage({ message: this.host.fromAmqpMessage(m), exchange: m.fields.exchange, routingKey: m.fields.routingKey });
    } catch (err) {
      // A throwing handler must not take the channel down with it.
      this.host.onEvent?.("subscription-handler-error", err);
    }
  }

  private async teardown(state: { ch: Channel; tag: string | null }): Promise<void> {
    if (state.tag !== null) await state.ch.cancel(state.tag).catch(() => undefined);
    // Auto-delete would remove it once the consumer is gone; deleting says so at once.
    await state.ch.deleteQueue(this.queue).catch(() => undefined);
    await state.ch.close().catch(() => undefined);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.offUp?.();
    if (this.retryTimer) clearTimeout(this.retryTimer);
    await this.opening?.catch(() => undefined);
    const state = this.current;
    this.current = null;
    if (state) await this.teardown(state);
    this.onClosed();
  }
}
