import type { ChordPart } from "./canvas.js";
import type { ResultMeta, TaskState } from "./envelope.js";
import type { ConnectionEvents } from "./lifecycle.js";
import type { WireMessage } from "./wire.js";

/**
 * What a transport can do, declared rather than emulated. Core checks these before relying on a
 * feature, the conformance suite skips what a transport does not declare, and the docs render them.
 */
export interface TransportCapabilities {
  /** How `properties.priority` is honoured: by the broker, by the transport, or not at all. */
  priority: "native" | "emulated" | "none";
  /** `publish(..., { delayMs })` hides the message until then (e.g. SQS DelaySeconds). */
  delayedDelivery: boolean;
  /** `delivery.extend(ms)` pushes back redelivery of an unsettled message. */
  visibilityExtension: boolean;
  /** `delivery.reject(reason)` moves the message to a dead-letter destination. */
  deadLetter: boolean;
  /**
   * Largest body the broker accepts, in bytes; null when unbounded. `publish` refuses a larger
   * body with `CeleriacError("invalid_argument")` before it reaches the broker (core's
   * `assertPublishable`).
   */
  maxMessageBytes: number | null;
}

export interface PublishOptions {
  /** Hide the message for this long. Only when `capabilities.delayedDelivery`. */
  delayMs?: number;
}

export interface ConsumeOptions {
  /** Most deliveries handed out and not yet settled (Celery's prefetch). */
  prefetch: number;
  /** Aborting stops the consumer, like `Consumer.stop()`. */
  signal?: AbortSignal;
}

export interface NackOptions {
  /** Put the message back for another delivery (default true). False drops or dead-letters it. */
  requeue?: boolean;
  /** With requeue: redeliver no sooner than this. */
  delayMs?: number;
}

/**
 * One received message. It settles exactly once: `ack`, `nack` or `reject`; a second settle
 * throws `CeleriacError("already_settled")`. `extend` may be called any number of times before.
 * A transport never settles on its own; unsettled deliveries of a closed consumer go back to
 * the queue.
 */
export interface Delivery {
  readonly message: WireMessage;
  readonly queue: string;
  /** True when the broker says this message was delivered before. */
  readonly redelivered: boolean;
  /** How many times it has been received, where the broker counts (else null). */
  readonly deliveryCount: number | null;
  /**
   * Longest `nack({ requeue: true, delayMs })` the broker itself keeps this message away for
   * (the message leaves this process and comes back no sooner than the delay); 0 when it cannot.
   * Per delivery because a broker may allow it on some queues only (SQS: not on FIFO queues).
   * The worker hands far-ETA messages back in hops of at most this instead of holding them.
   */
  readonly maxNackDelayMs: number;
  /**
   * How long the broker keeps this message from others before handing it out again unless
   * `extend` pushes it back (SQLite, Redis, SQS, memory); null where no timeout returns it (AMQP
   * holds it as long as the channel lives). The worker extends held messages at about a third of
   * it, by all of it, so a healthy worker never loses a long task to the timeout.
   */
  readonly visibilityTimeoutMs: number | null;
  readonly settled: boolean;
  ack(): Promise<void>;
  nack(options?: NackOptions): Promise<void>;
  /** Keep the message invisible to other consumers for `ms` more from now. */
  extend(ms: number): Promise<void>;
  /** Give up on the message for good: dead-letter it with `reason`, or drop it. */
  reject(reason: string): Promise<void>;
}

/** One message `reject` dead-lettered, as `Transport.readDeadLetters` returns it. */
export interface DeadLetter {
  queue: string;
  /** Null when the stored message is not readable (e.g. dead-lettered because it could not be decoded). */
  message: WireMessage | null;
  /** What `reject(reason)` was given (or why the transport dead-lettered it). */
  reason: string;
  /** How many times it had been received, where the broker counts (else null). */
  deliveryCount: number | null;
  /** The stored text, where the broker keeps it as text (kombu's envelope), so an unreadable one is not lost; else null. */
  raw: string | null;
}

/** A running consumption: iterate deliveries; `stop()` ends the iteration after returning
 * prefetched-but-unhandled messages to the broker. */
export interface Consumer extends AsyncIterable<Delivery> {
  stop(): Promise<void>;
  /**
   * Optional: the next delivery already received, without waiting, or null (none buffered, or
   * the prefetch window is full). The worker drains a burst with it and awaits the iterator only
   * when it returns null. Core's DeliveryQueue has it.
   */
  takeBuffered?(): Delivery | null;
}

/** A kombu exchange other than the default one. */
export interface ExchangeSpec {
  name: string;
  /** direct: by exact routing key; fanout: to every bound queue; topic: by `*`/`#` patterns. */
  type: "direct" | "fanout" | "topic";
  /** Survives a broker restart (AMQP). Celery's `celeryev` is durable, the pidbox exchanges are not. */
  durable?: boolean;
  autoDelete?: boolean;
}

export interface SubscribeOptions {
  /** The binding key: a topic pattern (`#` = everything), a direct routing key; ignored for fanout. */
  bindingKey: string;
  /** Name of the queue to bind, where the broker has queues for this (AMQP, Redis direct). Default: a fresh private name. */
  queue?: string;
  /** AMQP `x-message-ttl` of that queue: messages nobody read in time are dropped (Celery sets it on event and pidbox queues). */
  messageTtlMs?: number;
  /** AMQP `x-expires`: the queue itself goes away this long after its consumer does. */
  queueExpiresMs?: number;
}

/** One message received from an exchange subscription: no ack, these are fire-and-forget. */
export interface ExchangeDelivery {
  message: WireMessage;
  exchange: string;
  routingKey: string;
}

export interface ExchangeSubscription {
  /** Stops receiving and removes the private queue or channel subscription. Idempotent. */
  close(): Promise<void>;
}

/**
 * Publishing to and subscribing on named exchanges, for the broadcast traffic of a Celery
 * deployment: events (`celeryev`) and remote control (`celery.pidbox`, `reply.celery.pidbox`).
 * Present on transports whose broker routes by exchange as kombu does (AMQP natively, Redis with
 * kombu's pub/sub fanout and binding sets); absent where kombu has no such thing (SQS, SQLite).
 * Delivery is at most once: a subscriber that is not listening misses the message, as in Celery.
 */
export interface ExchangeMessaging {
  publishToExchange(exchange: ExchangeSpec, routingKey: string, message: WireMessage): Promise<void>;
  subscribe(exchange: ExchangeSpec, options: SubscribeOptions, onMessage: (delivery: ExchangeDelivery) => void): Promise<ExchangeSubscription>;
}

/**
 * The transport contract. Small on purpose: retries, ETA, rate limits and results live in core
 * and the worker, written once.
 */
export interface Transport {
  /** e.g. "sqlite", "amqp", "memory". */
  readonly name: string;
  readonly capabilities: TransportCapabilities;
  connect(): Promise<void>;
  /** Resolves once the broker has the message. */
  publish(queue: string, message: WireMessage, options?: PublishOptions): Promise<void>;
  consume(queues: readonly string[], options: ConsumeOptions): Consumer;
  /** Deletes every waiting message of `queue`; resolves with how many. */
  purge(queue: string): Promise<number>;
  /** Stops consumers, waits up to `drainMs` for in-flight publishes, then closes. Idempotent. */
  close(options?: { drainMs?: number }): Promise<void>;
  /** Resolves when the transport has closed, for whatever reason. */
  readonly closed: Promise<void>;
  /** Named exchanges (events, remote control): present only where the broker has them. */
  readonly exchanges?: ExchangeMessaging;
  /**
   * The connection's lifecycle (connected, disconnected, reconnecting, failed), one typed stream
   * the worker and the CLI log by default. See core's `ConnectionLifecycle`.
   */
  readonly lifecycle: ConnectionEvents;
  /**
   * The messages `reject` dead-lettered from `queue`, oldest first, without removing them.
   * Present exactly when `capabilities.deadLetter` is true.
   */
  readDeadLetters?(queue: string, options?: { limit?: number }): Promise<DeadLetter[]>;
}

/** A result backend: where task states and results are stored (Celery's `result_backend`). */
export interface ResultBackend {
  readonly name: string;
  /**
   * Stores a meta. A SUCCESS already stored is never overwritten. `replyTo` is the task
   * message's `reply_to` property, for backends that answer there (rpc://).
   */
  store(meta: ResultMeta, options?: { ttlMs?: number; replyTo?: string }): Promise<void>;
  /** The stored meta, or null when none (Celery reports that as PENDING). */
  get(taskId: string): Promise<ResultMeta | null>;
  /** Resolves with the meta once its state is ready (SUCCESS, FAILURE, REVOKED). */
  waitFor(taskId: string, options: { timeoutMs: number; signal?: AbortSignal }): Promise<ResultMeta>;
  forget(taskId: string): Promise<void>;
  /**
   * For backends that receive results on a queue of the client's own (rpc://): the queue name,
   * ready to receive. The client puts it in each task's `reply_to` property.
   */
  replyTo?(): Promise<string>;
  /**
   * Celery's `GroupResult.save()`: keeps a group's member ids under its id, so Python's
   * `GroupResult.restore(id)` finds them. Optional: `GroupResult.save()` refuses without it.
   */
  saveGroup?(groupId: string, taskIds: readonly string[]): Promise<void>;
  /**
   * Chords, a declared capability: a backend with both chord methods counts header completions
   * the way Celery's backend of the same kind does, so header tasks may finish on Python and
   * Celeriac workers alike. A backend without them cannot run chords: the client refuses to send
   * one (`CeleriacError("unsupported")`) rather than emulate Celery's polling `chord_unlock`.
   *
   * `setChordSize` is Celery's `backend.set_chord_size(group_id, size)`, called before the header
   * is published.
   */
  setChordSize?(groupId: string, size: number): Promise<void>;
  /**
   * Celery's `backend.on_chord_part_return`, called by the worker after a header task's result
   * is stored (success, failure or revoke). Resolves with every header part in header order when
   * this call completed the chord (exactly one caller gets them, whichever worker finished last),
   * otherwise null. The caller then sends the body or stores its ChordError.
   */
  onChordPartReturn?(part: ChordPartReturn): Promise<ChordPart[] | null>;
  close(): Promise<void>;
}

/** One header task finishing, as `on_chord_part_return` gets it from the task's request. */
export interface ChordPartReturn {
  /** The header's group id (the task's `group` header). */
  groupId: string;
  taskId: string;
  /** The task's `group_index` header; null sorts last, as Celery's `+inf` score. */
  groupIndex: number | null;
  state: TaskState;
  /** The return value, or Celery's exception dict for FAILURE/REVOKED. */
  result: unknown;
}
