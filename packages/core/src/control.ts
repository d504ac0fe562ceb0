import { randomUUID } from "node:crypto";
import { pyParse, pyStringify } from "./codec/py-json.js";
import { CeleriacError } from "./errors.js";
import { assertKnownOptions, optionKeys } from "./options.js";
import type { ExchangeDelivery, ExchangeMessaging, ExchangeSpec, ExchangeSubscription, Transport } from "./transport.js";
import type { WireMessage } from "./wire.js";

/*
 * Celery's remote control ("pidbox") on the wire, as kombu 5.2 `kombu/pidbox.py` (Mailbox, Node)
 * and Celery 5.2 `celery/app/control.py` (Control, Inspect) define it. Requests go to a fanout
 * exchange every worker's mailbox queue is bound to; each worker that the request names answers
 * `{hostname: reply}` on a direct reply exchange, routed to the asking client's own queue and
 * tagged with the request's ticket.
 */

/** Where requests go: kombu `Mailbox._get_exchange("celery", "fanout")`, not durable. */
export const PIDBOX_EXCHANGE: ExchangeSpec = { name: "celery.pidbox", type: "fanout", durable: false, autoDelete: false };
/** Where replies go: kombu `Mailbox._get_reply_exchange`, direct, not durable. */
export const PIDBOX_REPLY_EXCHANGE: ExchangeSpec = { name: "reply.celery.pidbox", type: "direct", durable: false, autoDelete: false };
/** Celery's `control_queue_ttl` (300 s): requests and replies nobody read by then are dropped. */
export const CONTROL_QUEUE_TTL_MS = 300_000;
/** Celery's `control_queue_expires` (10 s): a mailbox queue outlives its consumer this long. */
export const CONTROL_QUEUE_EXPIRES_MS = 10_000;
/** Celery's default inspect/control timeout (`celery inspect -t`, `Inspect(timeout=1.0)`). */
export const DEFAULT_CONTROL_TIMEOUT_MS = 1_000;

/** A worker's mailbox queue: kombu `Mailbox.get_queue(hostname)`. */
export function pidboxQueueName(hostname: string): string {
  return `${hostname}.celery.pidbox`;
}

/** The body of a request, key for key as kombu `Mailbox._publish` writes it. */
export interface ControlRequest {
  method: string;
  arguments: Record<string, unknown>;
  /** Hostnames the request is for; null means every worker. */
  destination: string[] | null;
  /** With `matcher`: a hostname pattern instead of a destination list. */
  pattern: string | null;
  /** kombu matcher name: "glob" (fnmatch) or "pcre" (Python `re.match`). */
  matcher: string | null;
  /** Present when a reply is wanted: the reply carries it in its `ticket` header. */
  ticket?: string;
  reply_to?: { exchange: string; routing_key: string };
}

/** Most control commands answer one of these (`celery/worker/control.py` `ok()` / `nok()`). */
export type ControlOkReply = { ok: string };
export type ControlErrorReply = { error: string };
export type ControlReply = ControlOkReply | ControlErrorReply;

/** A task a worker holds, as Celery's `Request.info()` reports it (`inspect active/reserved`). */
export interface TaskInfo {
  id: string;
  name: string;
  args: unknown;
  kwargs: unknown;
  type: string;
  hostname: string;
  /** Epoch seconds the task started running; null while it waits. */
  time_start: number | null;
  acknowledged: boolean;
  delivery_info: { exchange: string | null; routing_key: string | null; priority: number | null; redelivered: boolean | null };
  worker_pid: number | null;
}

/** An entry of `inspect scheduled`: a task waiting for its ETA (`_iter_schedule_requests`). */
export interface ScheduledTaskInfo {
  eta: string | null;
  priority: number;
  request: TaskInfo;
}

/** `inspect stats`, the keys Celery's worker `stats()` reports and tools such as Flower read. */
export interface WorkerStats {
  /** Tasks started since the worker started, per task name. */
  total: Record<string, number>;
  pid: number;
  /** The worker's Lamport clock; Celery sends it as a string. */
  clock: string;
  /** Seconds since the worker started. */
  uptime: number;
  pool: Record<string, unknown> & { "max-concurrency": number; processes: number[] };
  prefetch_count: number | string;
  broker: Record<string, unknown> & { transport: string };
  rusage: Record<string, number> | "N/A";
  [key: string]: unknown;
}

/** Replies by hostname, as Celery's `Inspect` returns them (`flatten_reply`). */
export type ControlReplies<R = unknown> = Record<string, R>;

export interface ControlOptions {
  /** Default time to wait for the next reply (kombu resets it after each one). Default 1 s. */
  timeoutMs?: number;
}

export interface BroadcastOptions {
  /** Only these workers act on the request (and the wait ends once all of them answered). */
  destination?: readonly string[];
  /** A hostname pattern, with `matcher`, instead of a destination list. */
  pattern?: string;
  /** "glob" or "pcre", kombu's matchers. Default "glob" when `pattern` is given. */
  matcher?: "glob" | "pcre";
  /**
   * Wait for replies: collection ends when no reply came for this long (kombu waits `timeout`
   * for each next reply) or `limit` replies arrived. Default: the control's `timeoutMs`.
   */
  timeoutMs?: number;
  /** Stop after this many replies. Default: the number of destinations, if given. */
  limit?: number;
  /** Ask for replies. Default true; false publishes and resolves with `{}` at once. */
  reply?: boolean;
  /** Called for each reply as it arrives (the CLI prints them as they come, as Celery's does). */
  onReply?: (hostname: string, reply: unknown) => void;
}

type TargetOptions = Pick<BroadcastOptions, "destination" | "pattern" | "matcher" | "timeoutMs" | "limit" | "onReply">;
type ShutdownOptions = Pick<BroadcastOptions, "destination" | "pattern" | "matcher">;

export interface Inspect {
  ping(options?: TargetOptions): Promise<ControlReplies<ControlOkReply>>;
  stats(options?: TargetOptions): Promise<ControlReplies<WorkerStats>>;
  active(options?: TargetOptions): Promise<ControlReplies<TaskInfo[]>>;
  reserved(options?: TargetOptions): Promise<ControlReplies<TaskInfo[]>>;
  scheduled(options?: TargetOptions): Promise<ControlReplies<ScheduledTaskInfo[]>>;
  registered(options?: TargetOptions): Promise<ControlReplies<string[]>>;
  clock(options?: TargetOptions): Promise<ControlReplies<{ clock: number }>>;
}

export interface RevokeOptions extends TargetOptions {
  /** Also stop the task if it is running (a TypeScript worker aborts its signal). */
  terminate?: boolean;
  /** Signal name for terminate on Python workers. Default "SIGTERM" as Celery's. */
  signal?: string;
  /** Wait for the workers' answers. Default true. */
  reply?: boolean;
}

/** A client for Celery's remote control, for Python and TypeScript workers alike. */
export interface Control {
  /** Sends `method(args)` to the workers and collects `{hostname: reply}`. */
  broadcast<R = unknown>(method: string, args?: Record<string, unknown>, options?: BroadcastOptions): Promise<ControlReplies<R>>;
  readonly inspect: Inspect;
  /** Celery's `control.revoke`: the workers will not run these ids (`terminate` stops running ones). */
  revoke(taskIds: string | readonly string[], options?: RevokeOptions): Promise<ControlReplies<ControlReply>>;
  /** Asks workers to shut down (warm). Workers do not reply to it, as in Celery, so nothing is awaited. */
  shutdown(options?: ShutdownOptions): Promise<void>;
  /** Stops listening for replies. The transport stays open: whoever created it closes it. */
  close(): Promise<void>;
}

/** Celery's logical clock (kombu `LamportClock`): max of ours and theirs on receipt, +1 on send. */
export class LamportClock {
  value = 0;
  adjust(other: unknown): number {
    const n = typeof other === "number" ? other : typeof other === "string" ? Number(other) : NaN;
    if (Number.isFinite(n) && n > this.value) this.value = Math.floor(n);
    return ++this.value;
  }
  forward(): number {
    return ++this.value;
  }
}

/** A control message as kombu frames it: JSON body, its headers, persistent or transient. */
export function encodeControlMessage(body: unknown, headers: Record<string, unknown>, deliveryMode: 1 | 2): WireMessage {
  return {
    body: new TextEncoder().encode(pyStringify(body)),
    contentType: "application/json",
    contentEncoding: "utf-8",
    headers,
    properties: { deliveryMode },
  };
}

/** The JSON body of a control message. The mailbox accepts JSON only, as kombu's `accept=['json']`. */
export function decodeControlBody(message: WireMessage): unknown {
  if (message.contentType !== "application/json") {
    throw new CeleriacError("decode_failed", `control message of content type ${JSON.stringify(message.contentType)}; only application/json is accepted`);
  }
  return pyParse(new TextDecoder().decode(message.body));
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

interface Collector {
  add(hostname: string, reply: unknown): void;
}

const BROADCAST_KEYS = optionKeys<BroadcastOptions>({
  destination: true,
  pattern: true,
  matcher: true,
  timeoutMs: true,
  limit: true,
  reply: true,
  onReply: true,
});
const TARGET_KEYS = optionKeys<TargetOptions>({ destination: true, pattern: true, matcher: true, timeoutMs: true, limit: true, onReply: true });
const REVOKE_KEYS = optionKeys<RevokeOptions>({
  destination: true,
  pattern: true,
  matcher: true,
  timeoutMs: true,
  limit: true,
  onReply: true,
  terminate: true,
  signal: true,
  reply: true,
});
const SHUTDOWN_KEYS = optionKeys<ShutdownOptions>({ destination: true, pattern: true, matcher: true });

/**
 * A remote-control client on a connected transport with exchanges (AMQP, Redis). Replies come to
 * one queue per client, `<oid>.reply.celery.pidbox` bound with routing key `<oid>`, as kombu's
 * `Mailbox.reply_queue`; it is declared on first use and removed by `close()`.
 */
export function createControl(transport: Transport, options: ControlOptions = {}): Control {
  assertKnownOptions("createControl", options, optionKeys<ControlOptions>({ timeoutMs: true }));
  const maybeExchanges = transport.exchanges;
  if (!maybeExchanges) {
    throw new CeleriacError("unsupported", `remote control needs a transport with exchanges (AMQP, Redis); ${transport.name} has none`);
  }
  const exchanges: ExchangeMessaging = maybeExchanges;
  const defaultTimeoutMs = options.timeoutMs ?? DEFAULT_CONTROL_TIMEOUT_MS;
  checkTimeout("createControl", defaultTimeoutMs);
  // kombu's oid is a uuid3 of node, pid, thread and object; any id unique to this client works.
  const oid = randomUUID();
  const clock = new LamportClock();
  const collectors = new Map<string, Collector>();
  let subscription: Promise<ExchangeSubscription> | null = null;
  let closed = false;

  const onReply = (delivery: ExchangeDelivery): void => {
    const { message } = delivery;
    clock.adjust(message.headers["clock"]);
    // kombu `Mailbox._collect`: a reply whose `expires` header passed is dropped.
    const expires = message.headers["expires"];
    if (typeof expires === "number" && expires > 0 && Date.now() / 1000 > expires) return;
    const ticket = message.headers["ticket"];
    const collector = typeof ticket === "string" ? collectors.get(ticket) : undefined;
    if (!collector) return; // a late reply to a finished broadcast
    let body: unknown;
    try {
      body = decodeControlBody(message);
    } catch {
      return; // a reply nobody can read is no reply
    }
    if (!isRecord(body)) return;
    for (const [hostname, reply] of Object.entries(body)) collector.add(hostname, reply);
  };

  const replyQueue = (): Promise<ExchangeSubscription> => {
    subscription ??= exchanges
      .subscribe(
        PIDBOX_REPLY_EXCHANGE,
        { bindingKey: oid, queue: `${oid}.${PIDBOX_REPLY_EXCHANGE.name}`, messageTtlMs: CONTROL_QUEUE_TTL_MS, queueExpiresMs: CONTROL_QUEUE_EXPIRES_MS },
        onReply,
      )
      .catch((err: unknown) => {
        subscription = null;
        throw CeleriacError.from(err, "connection");
      });
    return subscription;
  };

  async function broadcast<R>(method: string, args: Record<string, unknown> = {}, bo: BroadcastOptions = {}): Promise<ControlReplies<R>> {
    assertKnownOptions("broadcast", bo, BROADCAST_KEYS);
    if (closed) throw new CeleriacError("closed", "broadcast: this control client is closed");
    if (typeof method !== "string" || method === "") throw new CeleriacError("invalid_argument", "broadcast: method must be a non-empty string");
    if (!isRecord(args)) throw new CeleriacError("invalid_argument", "broadcast: args must be an object of keyword arguments");
    const destination = bo.destination === undefined ? null : [...bo.destination];
    if (destination && destination.some((d) => typeof d !== "string"))
      throw new CeleriacError("invalid_argument", "broadcast: destination must be a list of hostnames");
    if (bo.matcher !== undefined && bo.matcher !== "glob" && bo.matcher !== "pcre")
      throw new CeleriacError("invalid_argument", 'broadcast: matcher must be "glob" or "pcre"');
    const timeoutMs = bo.timeoutMs ?? defaultTimeoutMs;
    checkTimeout("broadcast", timeoutMs);
    // kombu `_broadcast`: with destinations and no limit, stop once each of them answered.
    const limit = bo.limit ?? (destination && destination.length > 0 ? destination.length : null);
    if (limit !== null && (!Number.isInteger(limit) || limit < 1)) throw new CeleriacError("invalid_argument", "broadcast: limit must be a positive integer");
    const wantReply = bo.reply ?? true;

    const request: ControlRequest = {
      method,
      arguments: args,
      destination,
      pattern: bo.pattern ?? null,
      matcher: bo.pattern !== undefined ? (bo.matcher ?? "glob") : null,
    };
    const headers = { clock: clock.forward(), expires: (Date.now() + timeoutMs) / 1000 };
    if (!wantReply) {
      await exchanges.publishToExchange(PIDBOX_EXCHANGE, "", encodeControlMessage(request, headers, 2));
      return {};
    }

    await replyQueue();
    const ticket = randomUUID();
    request.ticket = ticket;
    request.reply_to = { exchange: PIDBOX_REPLY_EXCHANGE.name, routing_key: oid };
    const replies: ControlReplies<R> = {};
    let count = 0;
    let finish!: () => void;
    const done = new Promise<void>((resolve) => (finish = resolve));
    let timer = setTimeout(finish, timeoutMs);
    collectors.set(ticket, {
      add(hostname, reply) {
        if (count === limit) return;
        count++;
        replies[hostname] = reply as R;
        try {
          bo.onReply?.(hostname, reply);
        } catch {
          // a throwing callback must not lose the other replies
        }
        clearTimeout(timer);
        if (count === limit) finish();
        else timer = setTimeout(finish, timeoutMs);
      },
    });
    try {
      await exchanges.publishToExchange(PIDBOX_EXCHANGE, "", encodeControlMessage(request, headers, 2));
      await done;
    } finally {
      clearTimeout(timer);
      collectors.delete(ticket);
    }
    return replies;
  }

  const target = (name: string, o: TargetOptions | undefined): TargetOptions => {
    assertKnownOptions(name, o, TARGET_KEYS);
    return o ?? {};
  };

  const inspect: Inspect = {
    ping: (o) => broadcast("ping", {}, target("inspect.ping", o)),
    stats: (o) => broadcast("stats", {}, target("inspect.stats", o)),
    active: (o) => broadcast("active", {}, target("inspect.active", o)),
    reserved: (o) => broadcast("reserved", {}, target("inspect.reserved", o)),
    scheduled: (o) => broadcast("scheduled", {}, target("inspect.scheduled", o)),
    registered: (o) => broadcast("registered", {}, target("inspect.registered", o)),
    clock: (o) => broadcast("clock", {}, target("inspect.clock", o)),
  };

  return {
    broadcast,
    inspect,
    async revoke(taskIds, ro = {}) {
      assertKnownOptions("revoke", ro, REVOKE_KEYS);
      const ids = typeof taskIds === "string" ? [taskIds] : [...taskIds];
      if (ids.length === 0 || ids.some((id) => typeof id !== "string" || id === "")) {
        throw new CeleriacError("invalid_argument", "revoke: task ids must be non-empty strings");
      }
      const { terminate, signal, ...rest } = ro;
      // Celery `Control.revoke` sends a list or a single id as given, plus terminate and signal.
      return broadcast("revoke", { task_id: typeof taskIds === "string" ? taskIds : ids, terminate: terminate ?? false, signal: signal ?? "SIGTERM" }, rest);
    },
    async shutdown(so = {}) {
      assertKnownOptions("shutdown", so, SHUTDOWN_KEYS);
      await broadcast("shutdown", {}, { ...so, reply: false });
    },
    async close() {
      if (closed) return;
      closed = true;
      const sub = subscription;
      subscription = null;
      if (sub) await (await sub.catch(() => null))?.close();
    },
  };
}

function checkTimeout(where: string, ms: number): void {
  if (typeof ms !== "number" || !Number.isFinite(ms) || ms <= 0)
    throw new CeleriacError("invalid_argument", `${where}: timeoutMs must be a positive number of milliseconds`);
}
