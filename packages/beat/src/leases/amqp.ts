import { CeleriacError } from "@celeriac/core";
import { assertKnownOptions } from "@celeriac/core/transport";
import type { ChannelModel, ConfirmChannel, ConsumeMessage } from "amqplib";
import type { EntryState, LeaderLease, LeaseOptions } from "../lease.js";
import { checkLeaseOptions } from "./common.js";

export interface AmqpLeaseOptions extends LeaseOptions {
  /** amqp:// or amqps:// URL of the broker. */
  url: string;
}

const KNOWN = ["url", "name", "leaseMs", "holder"] as const;
/** Deliveries that arrive this close together are a burst (a requeue); wait for its end before leading. */
const SETTLE_MS = 150;

/** The leader's token: the epoch of whoever holds it, a write counter, and the beat's state. */
interface Token {
  epoch: number;
  seq: number;
  state: Record<string, EntryState>;
}
const newer = (a: Token, b: Token) => a.epoch > b.epoch || (a.epoch === b.epoch && a.seq > b.seq);

/**
 * Leadership on RabbitMQ's single-active-consumer queue `celeriac.beat.<name>.leader`: every replica
 * consumes it, the broker delivers only to the active consumer, and the queue holds one token
 * message that the leader keeps unacknowledged. When the leader's connection ends (crash, SIGKILL,
 * release), the broker requeues the token and makes the next consumer active, which receives it.
 * The token carries the state: a write publishes a new token (publisher-confirmed) with a larger
 * sequence number and acks the old one, so the state survives with the token. If a leader dies
 * between the two, two tokens exist; the next leader keeps the newer and acks the other.
 *
 * The lease here is the connection: a crashed process's socket closes at once; a hung host is
 * detected by AMQP heartbeats, set to leaseMs / 2 so that detection takes about leaseMs.
 */
export async function createAmqpLease(options: AmqpLeaseOptions): Promise<LeaderLease> {
  assertKnownOptions("createAmqpLease", options, KNOWN);
  const { name, leaseMs } = checkLeaseOptions(options);
  if (typeof options.url !== "string" || !/^amqps?:\/\//.test(options.url))
    throw new CeleriacError("invalid_argument", `createAmqpLease: url must be amqp:// or amqps://, got ${JSON.stringify(options.url)}`);
  let amqp: typeof import("amqplib");
  try {
    amqp = await import("amqplib");
  } catch (err) {
    throw new CeleriacError("unsupported", "the RabbitMQ lease needs amqplib: npm install amqplib", { cause: err });
  }
  const queue = `celeriac.beat.${name}.leader`;
  const url = new URL(options.url);
  if (!url.searchParams.has("heartbeat")) url.searchParams.set("heartbeat", String(Math.max(1, Math.round(leaseMs / 2000))));

  let conn: ChannelModel | null = null;
  let ch: ConfirmChannel | null = null;
  let best: { token: Token; msg: ConsumeMessage } | null = null;
  let lastDeliveryAt = 0;
  let myEpoch: number | null = null;
  let closed = false;
  const arrivals = new Set<() => void>();

  const lost = () => {
    conn = null;
    ch = null;
    best = null;
    myEpoch = null;
  };

  const onMessage = (msg: ConsumeMessage | null) => {
    const channel = ch;
    if (!channel) return;
    if (msg === null) {
      lost(); // the queue was deleted: consuming again will recreate it
      return;
    }
    lastDeliveryAt = Date.now();
    let token: Token;
    try {
      token = JSON.parse(msg.content.toString("utf8")) as Token;
      if (!Number.isInteger(token.epoch) || !Number.isInteger(token.seq) || typeof token.state !== "object" || token.state === null)
        throw new Error("not a token");
    } catch {
      channel.ack(msg); // not ours: drop it rather than let it block the queue
      return;
    }
    if (!best || newer(token, best.token)) {
      if (best) channel.ack(best.msg);
      best = { token, msg };
    } else channel.ack(msg);
    for (const a of arrivals) a();
  };

  const open = async () => {
    const c = await amqp.connect(url.toString());
    c.on("error", () => {
      // A closed connection is noticed through "close" and failing calls, which the beat logs.
    });
    c.on("close", () => {
      if (conn === c) lost();
    });
    const channel = await c.createConfirmChannel();
    channel.on("error", () => {});
    channel.on("close", () => {
      if (ch === channel) lost();
    });
    await channel.assertQueue(queue, { durable: true, arguments: { "x-single-active-consumer": true } });
    await channel.prefetch(100);
    const q = await channel.checkQueue(queue);
    conn = c;
    ch = channel;
    // No token waiting and nobody holding one: this is the first replica ever (or all started at
    // once, and the tokens they all publish are merged by whoever becomes active).
    if (q.messageCount === 0 && q.consumerCount === 0) await publish({ epoch: 0, seq: 0, state: {} });
    await channel.consume(queue, onMessage, { noAck: false });
  };

  async function publish(token: Token): Promise<void> {
    const channel = ch;
    if (!channel) throw new CeleriacError("connection", "RabbitMQ lease: not connected");
    channel.sendToQueue(queue, Buffer.from(JSON.stringify(token)), { persistent: true, contentType: "application/json" });
    await channel.waitForConfirms();
  }

  /** Publishes `token` and waits until it came back to us as the held token. */
  async function replaceToken(token: Token): Promise<boolean> {
    await publish(token);
    const deadline = Date.now() + leaseMs;
    while (!(best && best.token.epoch === token.epoch && best.token.seq >= token.seq)) {
      if (!ch || Date.now() > deadline) return false;
      await new Promise<void>((resolve) => {
        const done = () => {
          arrivals.delete(done);
          clearTimeout(timer);
          resolve();
        };
        const timer = setTimeout(done, 50);
        arrivals.add(done);
      });
    }
    return true;
  }

  const holds = (epoch: number) => ch !== null && myEpoch === epoch && best !== null && best.token.epoch === epoch;

  try {
    await open();
  } catch (err) {
    throw new CeleriacError("connection", `cannot connect to RabbitMQ for the beat lease: ${(err as Error).message}`, { cause: err });
  }

  return {
    kind: "rabbitmq",
    leaseMs,
    async tryAcquire() {
      if (closed) return null;
      if (!ch) {
        await open();
        return null;
      }
      if (myEpoch !== null && holds(myEpoch)) return myEpoch;
      if (!best || Date.now() - lastDeliveryAt < SETTLE_MS) return null;
      const epoch = best.token.epoch + 1;
      myEpoch = epoch;
      if (await replaceToken({ epoch, seq: 0, state: best.token.state })) return epoch;
      myEpoch = null;
      return null;
    },
    async renew(epoch) {
      return holds(epoch);
    },
    async release() {
      // Closing the connection requeues the token and lets the broker pick the next consumer.
      closed = true;
      const c = conn;
      lost();
      await c?.close().catch(() => {});
    },
    async loadState() {
      return { ...(best?.token.state ?? {}) };
    },
    async saveState(epoch, entry, state) {
      if (!holds(epoch)) return false;
      const current = best!.token;
      return replaceToken({ epoch, seq: current.seq + 1, state: { ...current.state, [entry]: state } });
    },
    async close() {
      closed = true;
      const c = conn;
      lost();
      await c?.close().catch(() => {});
    },
  };
}
