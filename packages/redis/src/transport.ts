import { randomUUID } from "node:crypto";
import { Redis } from "ioredis";
import {
  CeleriacError,
  ConnectionLifecycle,
  DeliveryQueue,
  SettleBatch,
  assertKnownOptions,
  optionKeys,
  assertPublishable,
  createDelivery,
  kombuValueEncoder,
  parseKombuEnvelope,
  type KombuReading,
  pyParse,
  pyStringify,
  stringifyKombuEnvelope,
  toKombuEnvelope,
  type ConnectionEvents,
  type ConsumeOptions,
  type Consumer,
  type Delivery,
  type ExchangeMessaging,
  type PublishOptions,
  type Transport,
  type TransportCapabilities,
  type WireMessage,
  notKombuMessage,
} from "@celeriac/core/transport";
import {
  ACK,
  CLAIM,
  PRIORITY_STEPS,
  RESCORE,
  RENEW,
  RESTORE,
  SEP,
  UNACKED_INDEX_KEY,
  UNACKED_KEY,
  UNACKED_MUTEX_KEY,
  UNLOCK,
  bindingKey,
  bindingMember,
  fromRedisPriority,
  listKey,
  sha1,
  stepOf,
  toRedisPriority,
} from "./kombu-redis.js";
import { RedisExchanges, fanoutKeyPrefix } from "./exchanges.js";
import { connectionOf, describeConnection, ioredisOptions, isAuthError } from "./url.js";

export interface RedisTransportOptions {
  /**
   * `redis://[user:password@]host[:port][/db]`, `rediss://…` (TLS), or kombu's Sentinel form
   * `sentinel://[:password@]host:26379[/db];sentinel://host2:26379?master_name=mymaster` (the
   * password and db are the master's). Default `redis://localhost:6379/0`. Not with `client`.
   */
  url?: string;
  /**
   * With a `sentinel://` URL: the name of the master the Sentinels monitor (kombu's
   * `master_name` transport option). Wins over the URL's `?master_name=`.
   */
  masterName?: string;
  /**
   * Your own ioredis client for commands (never closed by the transport). Consumers still open
   * one extra connection each (`client.duplicate()`), since BRPOP blocks its connection; the
   * transport closes those.
   */
  client?: Redis;
  /**
   * kombu's `visibility_timeout`: an unacked message older than this is put back on its queue
   * by any consumer's restore sweep, Python's or ours. Default 1 hour, kombu's default. Every
   * process on the same Redis database should use the same value. Celeriac extends the messages
   * it holds (ETA, long tasks) so they are not restored while held, unlike kombu (kombu#337).
   */
  visibilityTimeoutMs?: number;
  /**
   * How often a consuming transport looks for expired unacked entries. Default 1000 ms (or a
   * quarter of the visibility timeout if smaller). It also bounds how late a `nack({delayMs})`
   * comes back.
   */
  restoreIntervalMs?: number;
  /**
   * How long `connect()` waits for a Redis it cannot reach (retrying, the outage reported on
   * `lifecycle`) before it rejects with the reason. Default 10 000 ms: a worker started just
   * before its Redis comes up still starts, one started against a wrong address stops with a clear
   * error instead of waiting forever. A refused password rejects at once.
   */
  connectTimeoutMs?: number;
  /** Most messages taken from Redis in one round trip (bounded by free prefetch). Default 100. */
  batchSize?: number;
  /**
   * kombu's `unacked_mutex_expire`: how long a sweeper killed mid-sweep keeps the restore lock
   * (`unacked_mutex`) from every other process, hence how late a killed worker's messages can come
   * back beyond the visibility timeout. Default 10 000 ms; the lock is renewed before each batch
   * of a long sweep, so it never lapses under a live sweeper. kombu's default is 300 s, which once
   * held a recovery up for ~298 s; a shorter lease is safe because every restore is atomic on its
   * own (our script checks the entry, kombu's `restore_by_tag` WATCHes it), so two sweepers never
   * restore one message twice. A lock taken by a Python worker keeps kombu's expiry.
   */
  unackedMutexExpireMs?: number;
  /** BRPOP timeout of an idle consumer, in ms. Only bounds reconnect checks; stop() unblocks at once. Default 1000. */
  blockTimeoutMs?: number;
  /**
   * kombu's `fanout_prefix` transport option: fanout exchanges publish on `/{db}.<exchange>…`
   * (true, kombu 4+'s default), on `<exchange>…` (false, kombu 3), or on a custom prefix where
   * `{db}` is replaced by the database number. Must match the Python side's setting.
   */
  fanoutPrefix?: boolean | string;
  /**
   * kombu's `fanout_patterns` transport option: a fanout publish goes to `<prefix><exchange>/<routing key>`
   * (true, the default) or to `<prefix><exchange>` whatever the routing key (false, kombu 3).
   */
  fanoutPatterns?: boolean;
}

const KNOWN = optionKeys<RedisTransportOptions>({
  url: true,
  masterName: true,
  client: true,
  visibilityTimeoutMs: true,
  restoreIntervalMs: true,
  batchSize: true,
  connectTimeoutMs: true,
  unackedMutexExpireMs: true,
  blockTimeoutMs: true,
  fanoutPrefix: true,
  fanoutPatterns: true,
});

const encodeSpecial = kombuValueEncoder("kombu52");

function positive(name: string, value: number | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== "number" || !Number.isFinite(value) || value <= 0) {
    throw new CeleriacError("invalid_argument", `createRedisTransport: ${name} must be a positive number, got ${String(value)}`);
  }
  return value;
}

/** A message taken from Redis and recorded in `unacked`, not yet settled by us. */
interface Claimed {
  queue: string;
  tag: string;
  /** sha1 of the `unacked` value we stored: settles only touch the entry if it is still ours. */
  sha: string;
  item: string;
}

/** A consumer's blocking connection (BRPOP blocks it), and the pump that reads from it. */
interface BlockingReader {
  blocking: Redis;
  /** Its CLIENT ID, for CLIENT UNBLOCK on stop. */
  id: number | null;
  blocked: boolean;
  pumping: Promise<void> | null;
}

/** Waits for `p` (its failure ignored), but at most `ms`. */
async function waitAtMost(p: Promise<unknown> | null, ms: number): Promise<void> {
  if (!p) return;
  let timer: ReturnType<typeof setTimeout> | undefined;
  await Promise.race([p.catch(() => undefined), new Promise((r) => (timer = setTimeout(r, ms)))]);
  clearTimeout(timer);
}

/** Reads a list item: kombu's envelope in Python's JSON dialect (core's parser takes JSON.parse's
 * fast path unless the text needs Python's reading). */
function readEnvelope(item: string): KombuReading {
  return parseKombuEnvelope(item);
}

/**
 * The envelope of a restored message, marked as kombu marks it
 * (`headers.redelivered` and `properties.delivery_info.redelivered`), in Python's JSON form.
 * Returns null when the item is not a JSON object.
 */
function markRedelivered(item: string): { payload: string; redisPriority: number } | null {
  let value: unknown;
  try {
    value = pyParse(item);
  } catch {
    return null;
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) return null;
  const env = value as Record<string, unknown>;
  const headers = env["headers"];
  const props = env["properties"];
  if (typeof headers === "object" && headers !== null && !Array.isArray(headers)) (headers as Record<string, unknown>)["redelivered"] = true;
  let redisPriority = 0;
  if (typeof props === "object" && props !== null && !Array.isArray(props)) {
    const p = props as Record<string, unknown>;
    const info = p["delivery_info"];
    if (typeof info === "object" && info !== null && !Array.isArray(info)) (info as Record<string, unknown>)["redelivered"] = true;
    if (typeof p["priority"] === "number") redisPriority = p["priority"];
  }
  return { payload: pyStringify(env, { encodeSpecial }), redisPriority };
}

/**
 * kombu's Redis transport, message for message: lists per priority step, the JSON envelope with a
 * base64 body, `_kombu.binding.*`, and ack emulation in `unacked` / `unacked_index`. See README.md.
 */
/**
 * What `createRedisTransport` returns: the transport contract, with kombu's exchanges always
 * present. The class behind it is not public: the claim scripts and the restore sweep are not API.
 */
export interface RedisTransport extends Transport {
  readonly exchanges: ExchangeMessaging;
  /** The command connection (yours, when passed as `client`). */
  readonly client: Redis;
  /** The last connection or subscriber error (outages themselves are on `lifecycle`). */
  readonly lastError: Error | null;
}

class RedisTransportImpl implements RedisTransport {
  readonly name = "redis";
  readonly capabilities: TransportCapabilities = {
    // kombu's four priority lists, consumed in order: emulated on plain lists.
    priority: "emulated",
    delayedDelivery: false,
    visibilityExtension: true,
    deadLetter: false,
    // Redis's largest string.
    maxMessageBytes: 512 * 1024 * 1024,
  };
  readonly closed: Promise<void>;
  /** The command connection (publish, claim, settle, sweep). */
  readonly client: Redis;
  private readonly ownsClient: boolean;
  private readonly visibilityTimeoutMs: number;
  private readonly restoreIntervalMs: number;
  private readonly batchSize: number;
  private readonly mutexExpireMs: number;
  private readonly blockTimeoutMs: number;
  private readonly connectTimeoutMs: number;
  private readonly bound = new Set<string>();
  private readonly unsettled = new Map<string, Claimed>();
  private readonly consumers = new Set<Consumer>();
  private readonly events = new ConnectionLifecycle("redis", { initialDelayMs: 50, maxDelayMs: 1000 });
  /** Outages of the command connection (ioredis reconnects it) and of consumers' reads. */
  readonly lifecycle: ConnectionEvents = this.events;
  private readonly inFlight = new Set<Promise<unknown>>();
  private readonly instance = randomUUID();
  private readonly acks = new SettleBatch<Claimed>((batch) => this.flushAcks(batch));
  private sweeper: ReturnType<typeof setInterval> | undefined;
  private sweeping: Promise<unknown> | null = null;
  private isClosed = false;
  private resolveClosed!: () => void;
  /** The last connection error ioredis reported (it reconnects by itself). */
  lastError: Error | null = null;
  /** Where we connect, password masked, for log lines and errors. */
  private readonly where: string;
  /** Set when Redis refused our credentials: nothing is retried after it. */
  private failure: CeleriacError | null = null;
  /**
   * Rejected by `close()` when Redis is unreachable: ioredis's `disconnect()` during a reconnect
   * wait neither sends nor fails the commands it queued, so publishes race this instead.
   */
  private readonly abandoned: Promise<never>;
  private abandon!: (err: Error) => void;
  /** Counts "ready" events: a command issued while not ready can only have been sent after one. */
  private readyEpoch = 0;
  /** `connect()` calls waiting for the first ready connection. */
  private readonly connectWaiters = new Set<{ resolve: () => void; reject: (err: unknown) => void }>();
  /**
   * Named exchanges as kombu lays them out on Redis: fanout over pub/sub, direct and topic through
   * `_kombu.binding.<exchange>` and lists. See exchanges.ts and README.md.
   */
  readonly exchanges: ExchangeMessaging;
  private readonly exchangeMessaging: RedisExchanges;

  constructor(options: RedisTransportOptions = {}) {
    assertKnownOptions("createRedisTransport", options, KNOWN);
    if (options.url !== undefined && options.client !== undefined) {
      throw new CeleriacError("invalid_argument", "createRedisTransport: pass url or client, not both");
    }
    this.visibilityTimeoutMs = positive("visibilityTimeoutMs", options.visibilityTimeoutMs, 3_600_000);
    this.restoreIntervalMs = positive("restoreIntervalMs", options.restoreIntervalMs, Math.min(1000, this.visibilityTimeoutMs / 4));
    this.batchSize = Math.floor(positive("batchSize", options.batchSize, 100));
    this.mutexExpireMs = positive("unackedMutexExpireMs", options.unackedMutexExpireMs, 10_000);
    this.blockTimeoutMs = positive("blockTimeoutMs", options.blockTimeoutMs, 1000);
    this.connectTimeoutMs = positive("connectTimeoutMs", options.connectTimeoutMs, 10_000);
    if (options.client) {
      if (options.masterName !== undefined)
        throw new CeleriacError("invalid_argument", "createRedisTransport: masterName goes with a sentinel:// url, not with client");
      this.client = options.client;
      this.ownsClient = false;
      const o = options.client.options;
      this.where = o.sentinels ? `Redis (Sentinel master ${o.name ?? "?"})` : `redis://${o.host ?? "localhost"}:${o.port ?? 6379}/${o.db ?? 0}`;
    } else {
      const connection = connectionOf("createRedisTransport", options.url, options.masterName);
      // Publishes are auto-pipelined (a burst of LPUSHes in one write). The claim and ack scripts
      // are not: they are batches already (core's SettleBatch), and auto-pipelining would hold
      // each one for another event-loop turn while a task waits on its ack.
      this.client = new Redis(
        ioredisOptions(connection, { lazyConnect: true, enableAutoPipelining: true, autoPipeliningIgnoredCommands: ["evalsha", "eval"] }),
      );
      this.ownsClient = true;
      this.where = describeConnection(connection);
    }
    this.client.on("error", (err: Error) => this.onClientError(err));
    // ioredis reconnects by itself; its events are the outage, reported once through core's
    // lifecycle: a first connection that cannot be made is an outage too (Celery retries the
    // broker at startup), a refused password is a failure (no retry can fix it).
    let reconnects = 0;
    this.client.on("ready", () => {
      reconnects = 0;
      this.readyEpoch++;
      this.events.report({ type: "connected" });
      for (const w of [...this.connectWaiters]) w.resolve();
    });
    this.client.on("close", () => {
      const state = this.events.state;
      if (this.isClosed || this.failure || (state !== "connected" && state !== "connecting")) return;
      const reason = this.lastError?.message ?? "connection closed";
      this.events.lost(
        new CeleriacError("connection", `redis: ${state === "connected" ? "lost the connection to" : "cannot connect to"} ${this.where}: ${reason}`, {
          cause: this.lastError,
        }),
      );
    });
    this.client.on("reconnecting", (ms: number) => this.events.report({ type: "reconnecting", attempt: ++reconnects, attemptMs: ms }));
    this.closed = new Promise((r) => (this.resolveClosed = r));
    this.abandoned = new Promise<never>((_, reject) => (this.abandon = reject));
    this.abandoned.catch(() => undefined);
    const fanoutPrefix = options.fanoutPrefix ?? true;
    if (typeof fanoutPrefix !== "boolean" && typeof fanoutPrefix !== "string") {
      throw new CeleriacError("invalid_argument", `createRedisTransport: fanoutPrefix must be a boolean or a string, got ${typeof fanoutPrefix}`);
    }
    const fanoutPatterns = options.fanoutPatterns ?? true;
    if (typeof fanoutPatterns !== "boolean") {
      throw new CeleriacError("invalid_argument", `createRedisTransport: fanoutPatterns must be a boolean, got ${typeof fanoutPatterns}`);
    }
    this.exchanges = this.exchangeMessaging = new RedisExchanges({
      client: this.client,
      // kombu fills `{db}` from the connection's database (redis.py `_get_pool`).
      fanoutPrefix: fanoutKeyPrefix(fanoutPrefix, this.client.options.db ?? 0),
      fanoutPatterns,
      blockTimeoutMs: this.blockTimeoutMs,
      assertOpen: (what) => this.open(what),
      track: (p) => this.track(p),
      reportError: (err) => (this.lastError = err),
    });
  }

  private open(what: string): void {
    if (this.isClosed) throw new CeleriacError("closed", `redis transport is closed; cannot ${what}`);
    if (this.failure) throw this.failure;
  }

  /** Every client error lands here: kept for messages, and a refused password ends the transport. */
  private onClientError(err: Error): void {
    this.lastError = err;
    if (isAuthError(err)) this.fail(err);
  }

  /**
   * Redis refused our credentials: ioredis would retry forever with the same password, so the
   * connections are dropped, `failed` is reported (the worker exits non-zero), consumers end with
   * the error and `connect()` rejects with it.
   */
  private fail(err: Error): void {
    if (this.failure || this.isClosed) return;
    const error = new CeleriacError("connection", `redis: ${this.where} refused the connection: ${err.message}`, { cause: err });
    this.failure = error;
    if (this.ownsClient) this.client.disconnect();
    this.events.report({ type: "failed", error });
    for (const c of this.consumers) (c as DeliveryQueue<Claimed>).fail(error);
    for (const w of [...this.connectWaiters]) w.reject(error);
  }

  /**
   * Resolves once Redis answers. While it cannot be reached, ioredis keeps trying (with its
   * backoff) and the outage is on `lifecycle`; a refused password rejects at once, and so does
   * `close()` meanwhile, so a worker told to stop while connecting stops.
   */
  async connect(): Promise<void> {
    this.open("connect");
    if (this.events.state === "idle") this.events.report({ type: "connecting" });
    if (this.client.status !== "ready") {
      const ready = new Promise<void>((resolve, reject) => {
        const w = {
          resolve: () => {
            this.connectWaiters.delete(w);
            resolve();
          },
          reject: (err: unknown) => {
            this.connectWaiters.delete(w);
            reject(err);
          },
        };
        this.connectWaiters.add(w);
      });
      // Failures arrive as "error"/"close" events (and ioredis retries by itself): not from here.
      if (this.client.status === "wait" || this.client.status === "end") this.client.connect().catch(() => undefined);
      let timer: ReturnType<typeof setTimeout> | undefined;
      const gaveUp = new Promise<never>((_, reject) => {
        timer = setTimeout(() => {
          const reason = this.lastError?.message ?? "no answer";
          reject(
            new CeleriacError("connection", `redis: cannot connect to ${this.where} within ${this.connectTimeoutMs} ms: ${reason}`, { cause: this.lastError }),
          );
        }, this.connectTimeoutMs);
      });
      try {
        await Promise.race([ready, gaveUp]);
      } finally {
        clearTimeout(timer);
        ready.catch(() => undefined); // after a timeout nobody waits for it any more
      }
    }
    await this.client.ping();
    // A client passed in ready never emits "ready" again: the answered ping says connected.
    this.events.report({ type: "connected" });
  }

  private track<T>(p: Promise<T>): Promise<T> {
    this.inFlight.add(p);
    const done = () => this.inFlight.delete(p);
    p.then(done, done);
    return p;
  }

  private static fail(what: string, err: unknown): CeleriacError {
    if (err instanceof CeleriacError) return err;
    return new CeleriacError("connection", `redis ${what} failed: ${(err as Error).message}`, { cause: err });
  }

  async publish(queue: string, message: WireMessage, options: PublishOptions = {}): Promise<void> {
    this.open("publish");
    assertPublishable(this, queue, message, options);
    const redisPriority = toRedisPriority(message.properties.priority);
    const payload = stringifyKombuEnvelope(toKombuEnvelope(message, { exchange: "", routingKey: queue, deliveryTag: randomUUID(), priority: redisPriority }));
    const key = listKey(queue, stepOf(redisPriority));
    // When the LPUSH was handed to ioredis, and whether a connection was up then.
    let pushed: { wasReady: boolean; epoch: number } | null = null;
    const work = (async () => {
      if (!this.bound.has(queue)) {
        // Celery declares the binding once per queue; so do we, before the first message.
        this.bound.add(queue);
        try {
          await this.client.sadd(bindingKey(queue), bindingMember(queue));
        } catch (err) {
          this.bound.delete(queue);
          throw err;
        }
      }
      pushed = { wasReady: this.client.status === "ready", epoch: this.readyEpoch };
      await this.client.lpush(key, payload);
    })();
    try {
      await Promise.race([this.track(work), this.abandoned]);
    } catch (err) {
      throw this.publishError(queue, err, pushed);
    }
  }

  /**
   * A publish is reported failed only when Redis cannot have the message: it answered with an
   * error, or the LPUSH never reached a live connection (issued while disconnected, and no
   * connection came up before it failed). A connection lost between sending and Redis's reply
   * leaves the outcome unknown (Redis may have queued it; ioredis resends such commands after a
   * reconnect, and gives up after its retries): that is `outcome_unknown`, so a caller that
   * retries knows it may create a duplicate.
   */
  private publishError(queue: string, err: unknown, pushed: { wasReady: boolean; epoch: number } | null): CeleriacError {
    if (err instanceof CeleriacError) return err;
    const replied = (err as Error | null)?.name === "ReplyError";
    if (pushed && !replied && (pushed.wasReady || pushed.epoch !== this.readyEpoch)) {
      return new CeleriacError(
        "outcome_unknown",
        `redis publish to ${queue}: the connection to ${this.where} was lost before Redis replied (${(err as Error).message}); the message may or may not be queued, a retry may run the task twice`,
        { cause: err },
      );
    }
    return RedisTransportImpl.fail("publish", err);
  }

  async purge(queue: string): Promise<number> {
    this.open("purge");
    const pipe = this.client.multi();
    for (const step of PRIORITY_STEPS) pipe.llen(listKey(queue, step)).del(listKey(queue, step));
    const res = await pipe.exec().catch((err: unknown) => {
      throw RedisTransportImpl.fail("purge", err);
    });
    let n = 0;
    for (let i = 0; i < (res?.length ?? 0); i += 2) n += Number(res?.[i]?.[1] ?? 0);
    return n;
  }

  /** Seconds since the epoch, as kombu scores `unacked_index`. */
  private static now(): number {
    return Date.now() / 1000;
  }

  private unackedValue(item: string, queue: string): string {
    return `[${item}, "", ${pyStringify(queue)}]`;
  }

  /** Puts one of our claims back on its queue (kombu's `restore_by_tag`). */
  private async restoreClaim(c: Claimed, leftmost: boolean): Promise<void> {
    const marked = markRedelivered(c.item);
    if (!marked) {
      // Not JSON: nobody can ever consume it, so drop it rather than loop on it.
      await ACK.run(this.client, [UNACKED_KEY, UNACKED_INDEX_KEY], [c.tag, c.sha]);
      return;
    }
    const target = listKey(c.queue, stepOf(marked.redisPriority));
    await RESTORE.run(this.client, [UNACKED_KEY, UNACKED_INDEX_KEY, target], [c.tag, c.sha, marked.payload, leftmost ? "l" : "r"]);
  }

  /**
   * A late ack, after the visibility timeout put the message back: the work is done, so the
   * restored copy (kombu's restore writes it byte for byte as `markRedelivered` does) is removed
   * from its list if nobody took it yet.
   */
  private async removeRestored(c: Claimed): Promise<void> {
    const marked = markRedelivered(c.item);
    if (!marked) return;
    await this.client.lrem(listKey(c.queue, stepOf(marked.redisPriority)), 1, marked.payload);
    if (stepOf(marked.redisPriority) !== 0) await this.client.lrem(c.queue, 1, marked.payload); // kombu restores to the bare list
  }

  /** The queue a kombu `(exchange, routing_key)` pair delivers to, as kombu's `_lookup`. */
  private async lookup(exchange: string, routingKey: string): Promise<string> {
    if (exchange === "") return routingKey;
    const members = await this.client.smembers(bindingKey(exchange));
    for (const m of members) {
      const [rk, , queue] = m.split(SEP);
      if (rk === routingKey && queue) return queue;
    }
    return routingKey;
  }

  /**
   * kombu's `restore_visible`: under kombu's `unacked_mutex`, puts every unacked message older
   * than the visibility timeout back on its queue, whoever received it (a Python worker or us).
   * Returns how many were restored. Consumers run it every `restoreIntervalMs`.
   */
  async restoreVisible(): Promise<number> {
    this.open("restore");
    const token = randomUUID();
    const locked = await this.client.set(UNACKED_MUTEX_KEY, token, "PX", Math.ceil(this.mutexExpireMs), "NX");
    if (locked !== "OK") return 0;
    let restored = 0;
    try {
      for (let round = 0; round < 20; round++) {
        if (round > 0 && (await RENEW.run(this.client, [UNACKED_MUTEX_KEY], [token, Math.ceil(this.mutexExpireMs)])) !== 1) break; // lapsed: someone else sweeps
        const ceil = RedisTransportImpl.now() - this.visibilityTimeoutMs / 1000;
        const tags = await this.client.zrangebyscore(UNACKED_INDEX_KEY, "-inf", ceil, "LIMIT", 0, 100);
        if (tags.length === 0) break;
        const values = await this.client.hmget(UNACKED_KEY, ...tags);
        for (const [i, tag] of tags.entries()) {
          const raw = values[i];
          if (raw === null || raw === undefined) {
            await this.client.zrem(UNACKED_INDEX_KEY, tag);
            continue;
          }
          let entry: unknown;
          try {
            entry = pyParse(raw);
          } catch {
            continue; // not kombu's; leave it to whoever wrote it
          }
          if (!Array.isArray(entry) || entry.length < 3) continue;
          const [envelope, exchange, routingKey] = entry as [unknown, unknown, unknown];
          if (typeof exchange !== "string" || typeof routingKey !== "string") continue;
          const marked = markRedelivered(pyStringify(envelope, { encodeSpecial }));
          if (!marked) continue;
          const queue = await this.lookup(exchange, routingKey);
          const n = await RESTORE.run(
            this.client,
            [UNACKED_KEY, UNACKED_INDEX_KEY, listKey(queue, stepOf(marked.redisPriority))],
            [tag, sha1(raw), marked.payload, "r"],
          );
          if (n === 1) restored++;
        }
        if (tags.length < 100) break;
      }
    } finally {
      await UNLOCK.run(this.client, [UNACKED_MUTEX_KEY], [token]).catch(() => undefined);
    }
    return restored;
  }

  private startSweeper(): void {
    if (this.sweeper) return;
    this.sweeper = setInterval(() => {
      if (this.sweeping || this.isClosed) return;
      this.sweeping = this.restoreVisible()
        .catch(() => undefined) // Redis away: the next tick tries again
        .finally(() => (this.sweeping = null));
    }, this.restoreIntervalMs);
    this.sweeper.unref?.();
  }

  private stopSweeperIfIdle(): void {
    if (this.consumers.size === 0 && this.sweeper) {
      clearInterval(this.sweeper);
      this.sweeper = undefined;
    }
  }

  /** Acks are batched per tick (core's SettleBatch): one script call settles all acks of a burst. */
  private ack(c: Claimed): Promise<void> {
    return this.acks.add(c);
  }

  private flushAcks(batch: Claimed[]): Promise<void> {
    const args: string[] = [];
    for (const c of batch) args.push(c.tag, c.sha);
    return this.track(
      ACK.run(this.client, [UNACKED_KEY, UNACKED_INDEX_KEY], args).then(async (lost) => {
        for (const i of lost as number[]) {
          const c = batch[i];
          if (c) await this.removeRestored(c);
        }
      }),
    ).catch((err: unknown) => {
      throw RedisTransportImpl.fail("ack", err ?? new Error("ack failed"));
    });
  }

  consume(queues: readonly string[], options: ConsumeOptions): Consumer {
    this.open("consume");
    // kombu's BRPOP order: every queue's step 0, then every queue's step 3, ...
    const lists: { key: string; queue: string; rk: string }[] = [];
    for (const step of PRIORITY_STEPS) for (const q of queues) lists.push({ key: listKey(q, step), queue: q, rk: pyStringify(q) });
    const blocking = this.client.duplicate({ lazyConnect: true, maxRetriesPerRequest: null, enableAutoPipelining: false });
    blocking.on("error", (err: Error) => this.onClientError(err));
    const reader: BlockingReader = { blocking, id: null, blocked: false, pumping: null };
    blocking.on("ready", () => (reader.id = null));
    const q: DeliveryQueue<Claimed> = new DeliveryQueue({
      queues,
      consume: options,
      toDelivery: (c, release) => this.makeDelivery(c, release),
      giveBack: async (rest) => {
        for (const c of rest) {
          this.unsettled.delete(c.tag);
          // Redis away: the command would wait for the reconnect; the visibility timeout restores it.
          if (this.client.status !== "ready") continue;
          await this.restoreClaim(c, false).catch(() => undefined); // else the visibility timeout does it
        }
      },
      onStop: async () => {
        this.consumers.delete(q);
        this.stopSweeperIfIdle();
        if (this.client.status !== "ready") {
          // Redis away: a BRPOP queued for the reconnect fails now instead of holding the stop,
          // and a batch being claimed is waited for a moment only (it fails with the connection).
          blocking.disconnect();
          await waitAtMost(reader.pumping, 1000);
          return;
        }
        if (reader.blocked && reader.id !== null) await this.client.client("UNBLOCK", reader.id).catch(() => undefined);
        // The pump may still be taking a batch: wait for it, so what it took goes back too.
        await reader.pumping?.catch(() => undefined);
        blocking.disconnect();
      },
    });
    this.consumers.add(q);
    this.startSweeper();
    if (!q.stopped) reader.pumping = this.pump(q, lists, reader);
    return q;
  }

  /**
   * Keeps the buffer filled while there is prefetch room: batches from the claim script while
   * the queue has messages (the next batch is fetched while the last one is handed out), BRPOP
   * while it is empty. Redis going away (restart, network) is retried by core's lifecycle loop
   * with backoff, and reported as an outage.
   */
  private async pump(q: DeliveryQueue<Claimed>, lists: { key: string; queue: string; rk: string }[], reader: BlockingReader): Promise<void> {
    const keys = lists.map((l) => l.key);
    const claimKeys = [UNACKED_KEY, UNACKED_INDEX_KEY, ...keys];
    const rkArgs = lists.map((l) => l.rk);
    const take = (list: { queue: string }, tag: string, sha: string, item: string) => {
      const c: Claimed = { queue: list.queue, tag, sha, item };
      this.unsettled.set(tag, c);
      q.push(c);
    };
    const fetch = async (room: number): Promise<void> => {
      const res = (await CLAIM.run(this.client, claimKeys, [room, RedisTransportImpl.now(), `${this.instance}-${Date.now()}-`, ...rkArgs])) as (
        string | number
      )[];
      if (res.length > 0) {
        for (let i = 0; i < res.length; i += 4) take(lists[Number(res[i])]!, String(res[i + 1]), String(res[i + 2]), String(res[i + 3]));
        return;
      }
      if (q.stopped) return;
      // Idle: block until a message arrives. BRPOP then registers it in `unacked` right away
      // (kombu does the same after every BRPOP); the batch script above is used while busy.
      const { blocking } = reader;
      if (blocking.status === "wait") await blocking.connect();
      if (reader.id === null) reader.id = Number(await blocking.client("ID"));
      if (q.stopped) return;
      reader.blocked = true;
      let popped: [string, string] | null;
      try {
        popped = await blocking.brpop(...keys, this.blockTimeoutMs / 1000);
      } finally {
        reader.blocked = false;
      }
      if (!popped) return;
      const [key, item] = popped;
      const list = lists.find((l) => l.key === key) ?? lists[0]!;
      let tag: string | null = null;
      try {
        tag = parseKombuEnvelope(item).deliveryTag;
      } catch {
        tag = null;
      }
      tag ??= `${this.instance}-${randomUUID()}`;
      const value = this.unackedValue(item, list.queue);
      await this.client.multi().zadd(UNACKED_INDEX_KEY, RedisTransportImpl.now(), tag).hset(UNACKED_KEY, tag, value).exec();
      take(list, tag, sha1(value), item);
    };
    while (!q.stopped && !this.isClosed) {
      const room = Math.min(q.room, this.batchSize);
      if (room <= 0 || q.buffered >= this.batchSize) {
        await q.changed();
        continue;
      }
      await this.events.retry(
        () =>
          fetch(room).catch((err: unknown) => {
            this.lastError = err as Error;
            throw err;
          }),
        { signal: q.signal },
      );
    }
  }

  private makeDelivery(c: Claimed, release: () => void): Delivery | null {
    let message: WireMessage;
    let redelivered = false;
    try {
      ({ message, redelivered } = readEnvelope(c.item));
    } catch {
      // Nothing could ever consume it: handed out for the worker to refuse with one log line
      // (its reject removes it), rather than dropped unseen or restored forever.
      message = notKombuMessage(c.item);
    }
    if (message.properties.priority !== undefined) message.properties.priority = fromRedisPriority(message.properties.priority);
    /** Re-dates the unacked entry to expire `ms` from now, only while it is still ours (same sha). */
    const redate = (ms: number) => {
      const score = RedisTransportImpl.now() + (ms - this.visibilityTimeoutMs) / 1000;
      return this.track(RESCORE.run(this.client, [UNACKED_KEY, UNACKED_INDEX_KEY], [c.tag, c.sha, score]));
    };
    return createDelivery({
      transport: this.name,
      message,
      queue: c.queue,
      redelivered,
      deliveryCount: null,
      visibilityTimeoutMs: this.visibilityTimeoutMs,
      isClosed: () => this.isClosed,
      onSettled: () => {
        this.unsettled.delete(c.tag);
        release();
      },
      ops: {
        ack: () => this.ack(c),
        nack: async ({ requeue, delayMs }) => {
          if (!requeue) await this.ack(c);
          // Stays in `unacked`, dated so that any sweeper (Python's too) restores it in delayMs.
          else if (delayMs > 0) await redate(delayMs);
          else await this.track(this.restoreClaim(c, true));
        },
        // Once restored and taken by someone else, their entry is theirs: RESCORE checks the sha.
        extend: async (ms) => void (await redate(ms)),
        // No dead-letter list in kombu's layout: dropped, as kombu's reject(requeue=False).
        reject: () => this.ack(c),
      },
    });
  }

  /**
   * Stops consumers (their prefetched messages go back at once), puts back every message received
   * here and not settled (kombu's restore at shutdown), waits up to `drainMs` (default 5000) for
   * publishes and settles in flight, and closes the connections it opened.
   */
  async close(options: { drainMs?: number } = {}): Promise<void> {
    if (this.isClosed) return this.closed;
    for (const w of [...this.connectWaiters]) w.reject(new CeleriacError("closed", "redis transport closed while connecting"));
    // Redis unreachable (or refused us): every command below would wait in ioredis's offline
    // queue for its reconnects, so a stop would hang for as long as the outage lasts. Dropping the
    // connection first fails them at once; what we held comes back by the visibility timeout.
    if (this.ownsClient && this.client.status !== "ready") {
      this.client.disconnect();
      this.abandon(new Error("the transport was closed while Redis was unreachable"));
    }
    // Subscriptions go first: their bindings are removed while the command connection is up.
    await this.exchangeMessaging.close().catch(() => undefined);
    for (const c of [...this.consumers]) await c.stop();
    if (this.sweeper) clearInterval(this.sweeper);
    this.sweeper = undefined;
    // A sweep holds kombu's unacked_mutex: let it finish and release it.
    await waitAtMost(this.sweeping, this.client.status === "ready" ? 10_000 : 1000);
    this.acks.flush();
    for (const c of [...this.unsettled.values()]) {
      await this.restoreClaim(c, false).catch(() => undefined);
    }
    this.unsettled.clear();
    this.isClosed = true;
    const drainMs = options.drainMs ?? 5000;
    if (this.inFlight.size > 0) {
      let timer: ReturnType<typeof setTimeout> | undefined;
      await Promise.race([Promise.allSettled([...this.inFlight]), new Promise((r) => (timer = setTimeout(r, drainMs)))]);
      clearTimeout(timer);
    }
    if (this.ownsClient) {
      // QUIT on a reconnecting client waits for ioredis's retries (~10 s): just drop it then.
      if (this.client.status === "ready") await this.client.quit().catch(() => this.client.disconnect());
      else this.client.disconnect();
    }
    // A publish still waiting now never gets its reply (the connection is gone): it ends as
    // outcome_unknown if its LPUSH may have been sent, as a connection error if not.
    this.abandon(new Error("the transport was closed before Redis replied"));
    this.resolveClosed();
  }
}

/** Creates the Redis transport; see {@link RedisTransportOptions} for the defaults. */
export function createRedisTransport(options: RedisTransportOptions = {}): RedisTransport {
  return new RedisTransportImpl(options);
}
