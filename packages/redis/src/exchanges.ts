import { randomUUID } from "node:crypto";
import type { Redis } from "ioredis";
import { CeleriacError } from "@celeriac/core";
import {
  Backoff,
  sleep,
  assertKnownOptions,
  optionKeys,
  parseKombuEnvelope,
  stringifyKombuEnvelope,
  toKombuEnvelope,
  type ExchangeDelivery,
  type ExchangeMessaging,
  type ExchangeSpec,
  type ExchangeSubscription,
  type SubscribeOptions,
  type WireMessage,
} from "@celeriac/core/transport";
import { PRIORITY_STEPS, SEP, bindingKey, fromRedisPriority, listKey, stepOf, toRedisPriority } from "./kombu-redis.js";

/**
 * kombu's exchanges on Redis (kombu/transport/redis.py `Channel`, virtual/exchange.py):
 *
 * - fanout: pub/sub. `_put_fanout` PUBLISHes the envelope on `<prefix><exchange>/<routing key>`
 *   (just `<prefix><exchange>` when the routing key is empty or `fanout_patterns` is off), the
 *   prefix being `keyprefix_fanout = "/{db}."` with the database number filled in. Subscribers
 *   PSUBSCRIBE. Nothing is stored; a subscriber that is not listening misses the message.
 * - direct and topic: the binding table is the set `_kombu.binding.<exchange>`, members
 *   `routing_key \x06\x16 pattern \x06\x16 queue` (`_queue_bind`); a publisher reads it
 *   (`get_table`), picks the queues (DirectExchange: equal routing key; TopicExchange: the stored
 *   regex matches) and LPUSHes the envelope on each, in the list of its priority step (`_put`).
 *
 * The envelope is the one tasks use, with `delivery_info = {exchange, routing_key}` of this
 * publish (virtual/base.py `_inplace_augment_message`) and a fresh delivery tag.
 */

const SUBSCRIBE_KNOWN = optionKeys<SubscribeOptions>({ bindingKey: true, queue: true, messageTtlMs: true, queueExpiresMs: true });
const TYPES: readonly string[] = ["direct", "fanout", "topic"];

/** kombu's `keyprefix_fanout` for a `fanout_prefix` transport option, with `{db}` filled in (redis.py `_get_pool`). */
export function fanoutKeyPrefix(fanoutPrefix: boolean | string, db: number): string {
  if (fanoutPrefix === false) return "";
  const template = fanoutPrefix === true ? "/{db}." : fanoutPrefix;
  return template.split("{db}").join(String(db));
}

/** kombu's `_get_publish_topic`: the pub/sub channel of a fanout publish. */
export function fanoutChannel(prefix: string, patterns: boolean, exchange: string, routingKey: string): string {
  return routingKey !== "" && patterns ? `${prefix}${exchange}/${routingKey}` : `${prefix}${exchange}`;
}

/**
 * The exchange and routing key of a pub/sub channel, read as kombu's `_receive_one` does: drop
 * everything up to the first `.` when the channel starts with `/` (the `/{db}.` prefix), then the
 * exchange is what comes before the first `/`.
 */
export function parseFanoutChannel(channel: string): { exchange: string; routingKey: string } {
  let rest = channel;
  if (rest.startsWith("/")) {
    const dot = rest.indexOf(".");
    rest = dot < 0 ? "" : rest.slice(dot + 1);
  }
  const slash = rest.indexOf("/");
  return slash < 0 ? { exchange: rest, routingKey: "" } : { exchange: rest.slice(0, slash), routingKey: rest.slice(slash + 1) };
}

/** Makes text match itself in a Redis glob pattern (PSUBSCRIBE). */
export function globEscape(text: string): string {
  return text.replace(/[\\*?[\]]/g, "\\$&");
}

/** Python's `str.isalnum` for one character, close enough for routing keys. */
const ALNUM = /^[\p{L}\p{N}]$/u;

/**
 * kombu's `TopicExchange.key_to_pattern`: the regex stored in the binding set for a topic binding
 * key. `*` becomes `.*?[^\.]` and `#` becomes `.*?` (so kombu's `*` also spans dots, unlike AMQP's;
 * Python publishers route with this regex, so we write and read exactly it).
 */
export function topicPattern(bindingKey: string): string {
  // kombu.utils.text.escape_regex(rkey, '.#*'): every non-alphanumeric but those three gets a backslash.
  let escaped = "";
  for (const c of bindingKey) escaped += ALNUM.test(c) || ".#*".includes(c) ? c : c === "\0" ? "\\000" : `\\${c}`;
  const words = escaped.split(".").map((w) => (w === "*" ? String.raw`.*?[^\.]` : w === "#" ? ".*?" : w));
  return `^${words.join(String.raw`\.`)}$`;
}

/** A binding set member, kombu's `sep.join([routing_key, pattern, queue])`. */
export function bindingEntry(routingKey: string, pattern: string, queue: string): string {
  return [routingKey, pattern, queue].join(SEP);
}

const compiled = new Map<string, RegExp | null>();

/** Python's `re.match(pattern, routing_key)` for a stored topic pattern; kombu's escapes are valid JS (non-unicode) regex. */
function topicMatches(pattern: string, bindingKeyText: string, routingKey: string): boolean {
  let re = compiled.get(pattern);
  if (re === undefined) {
    try {
      re = new RegExp(pattern);
    } catch {
      // Not a pattern JS can read: route as kombu would for the binding key written next to it.
      try {
        re = new RegExp(topicPattern(bindingKeyText));
      } catch {
        re = null;
      }
    }
    if (compiled.size > 1000) compiled.clear();
    compiled.set(pattern, re);
  }
  return re !== null && re.exec(routingKey)?.index === 0;
}

/** The queues a direct or topic publish reaches, as kombu's `_lookup` with `get_table`. */
export function routeByTable(type: "direct" | "topic", members: readonly string[], routingKey: string): string[] {
  const queues = new Set<string>();
  for (const m of members) {
    const [rk = "", pattern = "", queue] = m.split(SEP);
    if (queue === undefined || queue === "") continue;
    if (type === "direct" ? rk === routingKey : topicMatches(pattern, rk, routingKey)) queues.add(queue);
  }
  return [...queues];
}

/** What the exchange part needs from the transport that owns it. */
export interface ExchangeHost {
  /** The command connection (publish, bindings). */
  readonly client: Redis;
  /** kombu's `keyprefix_fanout` with the database filled in. */
  readonly fanoutPrefix: string;
  /** kombu's `fanout_patterns`: the routing key is part of the pub/sub channel. */
  readonly fanoutPatterns: boolean;
  /** BRPOP timeout of a direct/topic subscription, in ms. */
  readonly blockTimeoutMs: number;
  assertOpen(what: string): void;
  track<T>(p: Promise<T>): Promise<T>;
  reportError(err: Error): void;
}

interface FanoutListener {
  exchange: string;
  onMessage: (delivery: ExchangeDelivery) => void;
}

/** Longest a close waits for one clean-up command (SREM, DEL, PUNSUBSCRIBE). */
const CLEANUP_WAIT_MS = 1000;

function checkSpec(where: string, exchange: ExchangeSpec): void {
  if (typeof exchange !== "object" || exchange === null || typeof exchange.name !== "string" || exchange.name === "") {
    throw new CeleriacError("invalid_argument", `${where}: exchange.name must be a non-empty string (the default exchange is publish(queue, ...))`);
  }
  if (!TYPES.includes(exchange.type)) {
    throw new CeleriacError("invalid_argument", `${where}: exchange.type must be direct, fanout or topic, got ${JSON.stringify(exchange.type)}`);
  }
}

function failed(what: string, err: unknown): CeleriacError {
  if (err instanceof CeleriacError) return err;
  return new CeleriacError("connection", `redis ${what} failed: ${(err as Error).message}`, { cause: err });
}

/**
 * Reads an envelope received from an exchange. Priority goes back to Celeriac's sense, as for
 * task deliveries (kombu writes Redis's reversed priority in every envelope).
 */
function readDelivery(text: string, exchange: string, fallbackRoutingKey: string): ExchangeDelivery {
  const { message, routingKey } = parseKombuEnvelope(text);
  if (message.properties.priority !== undefined) message.properties.priority = fromRedisPriority(message.properties.priority);
  return { message, exchange, routingKey: routingKey ?? fallbackRoutingKey };
}

/** Calls a subscriber without letting its exception escape into ioredis's event loop. */
function hand(host: ExchangeHost, onMessage: (d: ExchangeDelivery) => void, delivery: ExchangeDelivery): void {
  try {
    onMessage(delivery);
  } catch (err) {
    host.reportError(err instanceof Error ? err : new Error(String(err)));
  }
}

/**
 * `Transport.exchanges` of the Redis transport. One subscriber-mode connection serves every fanout
 * subscription; each direct/topic subscription BRPOPs its queue on a connection of its own.
 */
export class RedisExchanges implements ExchangeMessaging {
  private subscriber: Redis | null = null;
  private subscriberConnecting: Promise<Redis> | null = null;
  /** PSUBSCRIBE pattern -> its listeners. */
  private readonly listeners = new Map<string, Set<FanoutListener>>();
  /** PSUBSCRIBEs sent and not yet confirmed by Redis. */
  private readonly pendingPatterns = new Map<string, Promise<unknown>>();
  /** Local users of each binding member and queue, so a shared one is removed by its last user. */
  private readonly refs = new Map<string, number>();
  /** Bindings to declare again after a reconnect (a restarted Redis without persistence lost them). */
  private readonly declared = new Map<string, { key: string; member: string }>();
  private readonly open = new Set<{ close(): Promise<void> }>();
  private readonly subscribing = new Set<Promise<unknown>>();
  private closing = false;

  constructor(private readonly host: ExchangeHost) {}

  private assertOpen(what: string): void {
    this.host.assertOpen(what);
    if (this.closing) throw new CeleriacError("closed", `redis transport is closing; cannot ${what}`);
  }

  async publishToExchange(exchange: ExchangeSpec, routingKey: string, message: WireMessage): Promise<void> {
    checkSpec("publishToExchange", exchange);
    if (typeof routingKey !== "string") throw new CeleriacError("invalid_argument", "publishToExchange: routingKey must be a string");
    this.assertOpen("publish to an exchange");
    const redisPriority = toRedisPriority(message.properties.priority);
    const payload = stringifyKombuEnvelope(
      toKombuEnvelope(message, { exchange: exchange.name, routingKey, deliveryTag: randomUUID(), priority: redisPriority }),
    );
    const client = this.host.client;
    const work = (async () => {
      if (exchange.type === "fanout") {
        await client.publish(fanoutChannel(this.host.fanoutPrefix, this.host.fanoutPatterns, exchange.name, routingKey), payload);
        return;
      }
      const queues = routeByTable(exchange.type, await client.smembers(bindingKey(exchange.name)), routingKey);
      // No bound queue: dropped, as kombu (no deadletter_queue) and an AMQP exchange do.
      if (queues.length === 0) return;
      const pipe = client.multi();
      for (const q of queues) pipe.lpush(listKey(q, stepOf(redisPriority)), payload);
      await pipe.exec();
    })();
    try {
      await this.host.track(work);
    } catch (err) {
      throw failed("publish to an exchange", err);
    }
  }

  subscribe(exchange: ExchangeSpec, options: SubscribeOptions, onMessage: (delivery: ExchangeDelivery) => void): Promise<ExchangeSubscription> {
    const p = this.subscribeNow(exchange, options, onMessage);
    // close() lets subscribes in progress finish (and undo themselves) before the connections go.
    this.subscribing.add(p);
    const done = () => this.subscribing.delete(p);
    p.then(done, done);
    return p;
  }

  private async subscribeNow(
    exchange: ExchangeSpec,
    options: SubscribeOptions,
    onMessage: (delivery: ExchangeDelivery) => void,
  ): Promise<ExchangeSubscription> {
    checkSpec("subscribe", exchange);
    assertKnownOptions("subscribe", options, SUBSCRIBE_KNOWN);
    if (typeof options.bindingKey !== "string") throw new CeleriacError("invalid_argument", "subscribe: bindingKey must be a string");
    if (options.queue !== undefined && (typeof options.queue !== "string" || options.queue === "")) {
      throw new CeleriacError("invalid_argument", "subscribe: queue must be a non-empty string");
    }
    for (const k of ["messageTtlMs", "queueExpiresMs"] as const) {
      const v = options[k];
      if (v !== undefined && (typeof v !== "number" || !Number.isFinite(v) || v < 0)) {
        throw new CeleriacError("invalid_argument", `subscribe: ${k} must be a non-negative number, got ${String(v)}`);
      }
    }
    if (typeof onMessage !== "function") throw new CeleriacError("invalid_argument", "subscribe: onMessage must be a function");
    this.assertOpen("subscribe");
    // kombu's Redis transport ignores x-message-ttl and x-expires: messageTtlMs / queueExpiresMs are
    // accepted for portability and have no effect here (pub/sub keeps nothing; the queue goes away
    // on close).
    const queue = options.queue ?? `amq.gen-${randomUUID()}`;
    const pattern = exchange.type === "topic" ? topicPattern(options.bindingKey) : "";
    const binding = { key: bindingKey(exchange.name), member: bindingEntry(options.bindingKey, pattern, queue) };
    let subscription: ExchangeSubscription;
    const closedWhileSubscribing = () => new CeleriacError("closed", "redis transport closed while subscribing");
    try {
      await this.bind(binding);
      if (this.closing) throw closedWhileSubscribing();
      subscription =
        exchange.type === "fanout"
          ? await this.subscribeFanout(exchange.name, binding, onMessage)
          : await this.subscribeQueue(exchange.name, queue, binding, onMessage);
    } catch (err) {
      await this.unbind(binding).catch(() => undefined);
      // A connection error caused by our own close is reported as the close.
      if (this.closing && !(err instanceof CeleriacError && err.code === "closed"))
        throw new CeleriacError("closed", "redis transport closed while subscribing", { cause: err });
      throw failed("subscribe", err);
    }
    if (this.closing) {
      // The transport began closing while this subscription was being set up.
      await subscription.close();
      throw closedWhileSubscribing();
    }
    return subscription;
  }

  private refKey(kind: string, a: string, b = ""): string {
    return `${kind}\n${a}\n${b}`;
  }

  private addRef(key: string): number {
    const n = (this.refs.get(key) ?? 0) + 1;
    this.refs.set(key, n);
    return n;
  }

  private dropRef(key: string): number {
    const n = (this.refs.get(key) ?? 1) - 1;
    if (n <= 0) this.refs.delete(key);
    else this.refs.set(key, n);
    return n;
  }

  /** kombu's `_queue_bind`: SADD the member, for Python publishers to find. */
  private async bind(b: { key: string; member: string }): Promise<void> {
    const ref = this.refKey("binding", b.key, b.member);
    this.addRef(ref);
    this.declared.set(ref, b);
    await this.host.client.sadd(b.key, b.member);
  }

  private async unbind(b: { key: string; member: string }): Promise<void> {
    const ref = this.refKey("binding", b.key, b.member);
    if (this.dropRef(ref) > 0) return;
    this.declared.delete(ref);
    await this.boundedCleanup(this.host.client.srem(b.key, b.member));
  }

  /**
   * Waits for a clean-up command at most `waitMs`, and not at all while the command connection is
   * down. With Redis away, ioredis keeps it queued for the reconnect (and fails it after its ~10 s
   * of retries); closing does not wait for that. A binding member left behind is what kombu leaves
   * when a process dies.
   */
  private async boundedCleanup(command: Promise<unknown>, waitMs = CLEANUP_WAIT_MS): Promise<void> {
    if (this.host.client.status !== "ready") {
      command.catch(() => undefined);
      return;
    }
    let timer: ReturnType<typeof setTimeout> | undefined;
    const settled = command.then(
      () => undefined,
      () => undefined,
    );
    await Promise.race([settled, new Promise<void>((r) => (timer = setTimeout(r, waitMs)))]);
    clearTimeout(timer);
  }

  /** Declares every binding again: after a Redis restart the set may be gone while we still listen. */
  private redeclare(): void {
    for (const b of this.declared.values()) {
      this.host.client.sadd(b.key, b.member).catch((err: unknown) => this.host.reportError(err as Error));
    }
  }

  private async subscriberConnection(): Promise<Redis> {
    if (this.subscriber) return this.subscriber;
    this.subscriberConnecting ??= (async () => {
      // ioredis re-issues PSUBSCRIBE by itself after a reconnect (autoResubscribe).
      const sub = this.host.client.duplicate({ lazyConnect: true, enableAutoPipelining: false, autoResubscribe: true });
      sub.on("error", (err: Error) => this.host.reportError(err));
      sub.on("pmessage", (pattern: string, channel: string, data: string) => this.onPmessage(pattern, channel, data));
      let first = true;
      sub.on("ready", () => {
        if (!first) this.redeclare();
        first = false;
      });
      try {
        await sub.connect();
      } catch (err) {
        sub.disconnect();
        this.subscriberConnecting = null;
        throw err;
      }
      this.subscriber = sub;
      return sub;
    })();
    return this.subscriberConnecting;
  }

  private onPmessage(pattern: string, channel: string, data: string): void {
    const listeners = this.listeners.get(pattern);
    if (!listeners || listeners.size === 0 || !data) return;
    const fromChannel = parseFanoutChannel(channel);
    for (const l of [...listeners]) {
      let delivery: ExchangeDelivery;
      try {
        // Parsed per listener: each gets a message of its own to keep or change.
        delivery = readDelivery(data, l.exchange, fromChannel.routingKey);
      } catch (err) {
        // Not kombu's envelope: kombu warns and drops it too (`_receive_one`).
        this.host.reportError(err as Error);
        return;
      }
      hand(this.host, l.onMessage, delivery);
    }
  }

  /**
   * A fanout subscription listens on every routing key, as an AMQP fanout binding does:
   * `<prefix><exchange>` (publishes without a routing key, e.g. remote control) and
   * `<prefix><exchange>/*` (with one, e.g. events). kombu's own subscriber narrows by its binding
   * key instead (`_get_subscribe_topic`, `#` read as `*`); the contract says fanout ignores it.
   */
  private async subscribeFanout(
    exchange: string,
    binding: { key: string; member: string },
    onMessage: (d: ExchangeDelivery) => void,
  ): Promise<ExchangeSubscription> {
    const sub = await this.subscriberConnection();
    // The exchange part is matched literally (kombu leaves glob characters in), so `a*` hears `a*` only.
    const exact = globEscape(`${this.host.fanoutPrefix}${exchange}`);
    const patterns = [exact, `${exact}/*`];
    const listener: FanoutListener = { exchange, onMessage };
    const added: string[] = [];
    const remove = async () => {
      const idle: string[] = [];
      for (const p of added) {
        const set = this.listeners.get(p);
        set?.delete(listener);
        if (set && set.size === 0) {
          this.listeners.delete(p);
          idle.push(p);
        }
      }
      added.length = 0;
      if (idle.length === 0) return;
      // Sent even when offline, or ioredis would resubscribe the pattern after the reconnect.
      await this.boundedCleanup(sub.punsubscribe(...idle));
    };
    try {
      const fresh: string[] = [];
      const waits = new Set<Promise<unknown>>();
      for (const p of patterns) {
        let set = this.listeners.get(p);
        if (!set) {
          set = new Set();
          this.listeners.set(p, set);
          fresh.push(p);
        } else {
          // Another subscribe asked for this pattern and Redis may not have confirmed it yet.
          const pending = this.pendingPatterns.get(p);
          if (pending) waits.add(pending);
        }
        set.add(listener);
        added.push(p);
      }
      if (fresh.length > 0) {
        const confirmed = sub.psubscribe(...fresh);
        for (const p of fresh) this.pendingPatterns.set(p, confirmed);
        waits.add(
          confirmed.finally(() => {
            for (const p of fresh) if (this.pendingPatterns.get(p) === confirmed) this.pendingPatterns.delete(p);
          }),
        );
      }
      // Resolves once Redis confirmed, so a publish after subscribe() is seen.
      await Promise.all(waits);
    } catch (err) {
      await remove();
      throw err;
    }
    let closing: Promise<void> | null = null;
    const handle = {
      close: () =>
        (closing ??= (async () => {
          this.open.delete(handle);
          await remove();
          await this.unbind(binding).catch(() => undefined);
        })()),
    };
    this.open.add(handle);
    return handle;
  }

  /**
   * A direct or topic subscription consumes its queue's lists (every priority step, kombu's BRPOP
   * order) on a connection of its own, without ack bookkeeping: like kombu's `no_ack` consumers of
   * reply queues, delivery is at most once.
   */
  private async subscribeQueue(
    exchange: string,
    queue: string,
    binding: { key: string; member: string },
    onMessage: (d: ExchangeDelivery) => void,
  ): Promise<ExchangeSubscription> {
    const host = this.host;
    const keys = PRIORITY_STEPS.map((s) => listKey(queue, s));
    const queueRef = this.refKey("queue", queue);
    this.addRef(queueRef);
    // BRPOP waits through a reconnect (maxRetriesPerRequest null) instead of failing in a loop.
    const conn = host.client.duplicate({ lazyConnect: true, enableAutoPipelining: false, maxRetriesPerRequest: null });
    conn.on("error", (err: Error) => host.reportError(err));
    let first = true;
    conn.on("ready", () => {
      if (!first) this.redeclare();
      first = false;
    });
    let stopped = false;
    try {
      await conn.connect();
    } catch (err) {
      this.dropRef(queueRef);
      conn.disconnect();
      throw err;
    }
    const loop = (async () => {
      // Redis away: ioredis reconnects; core's backoff spaces the retries.
      const backoff = new Backoff({ initialDelayMs: 50, maxDelayMs: 1000 });
      while (!stopped) {
        try {
          const popped = await conn.brpop(...keys, host.blockTimeoutMs / 1000);
          backoff.reset();
          if (!popped || stopped) continue;
          let delivery: ExchangeDelivery;
          try {
            delivery = readDelivery(popped[1], exchange, "");
          } catch (err) {
            host.reportError(err as Error);
            continue;
          }
          hand(host, onMessage, delivery);
        } catch (err) {
          if (stopped) return;
          host.reportError(err as Error);
          await sleep(backoff.next());
        }
      }
    })();
    let closing: Promise<void> | null = null;
    const handle = {
      close: () =>
        (closing ??= (async () => {
          this.open.delete(handle);
          stopped = true;
          // Unbound first, so publishers stop routing here before the lists go.
          await this.unbind(binding);
          conn.disconnect();
          // The loop ends when its BRPOP fails; a BRPOP queued offline during a reconnect may never
          // settle after disconnect(), and `stopped` keeps it from delivering if it does.
          await this.boundedCleanup(loop);
          // kombu deletes an auto-delete queue's lists with its binding (`_delete`); the last local user does.
          if (this.dropRef(queueRef) === 0) await this.boundedCleanup(host.client.del(...keys));
        })()),
    };
    this.open.add(handle);
    return handle;
  }

  /** Closes every subscription (removing their bindings) and the subscriber connection. */
  async close(): Promise<void> {
    this.closing = true;
    await this.boundedCleanup(Promise.allSettled([...this.subscribing]), 2 * CLEANUP_WAIT_MS);
    await Promise.all([...this.open].map((s) => s.close()));
    const connecting = this.subscriberConnecting;
    this.subscriberConnecting = null;
    const sub = this.subscriber ?? (await connecting?.catch(() => null)) ?? null;
    this.subscriber = null;
    if (sub && sub.status === "ready") await sub.quit().catch(() => sub.disconnect());
    else sub?.disconnect();
  }
}
