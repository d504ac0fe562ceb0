import { randomUUID } from "node:crypto";
import type { Channel, ChannelModel, ConfirmChannel } from "amqplib";
import { CeleriacError, READY_STATES, type ResultBackend, type ResultMeta } from "@celeriac/core";
import { ConnectionLifecycle, assertKnownOptions, optionKeys, parseResultMeta, stringifyCeleryJson, type WireMessage } from "@celeriac/core/transport";
import { ReconnectingConnection } from "./connection.js";
import { DEFAULT_AMQP_URL, amqpUrlList, toPublishOptions } from "./transport.js";

export interface RpcResultBackendOptions {
  /** The broker to use, an amqp:// URL or a cluster's failover list (Celery's rpc:// uses the broker connection). */
  url?: string | readonly string[];
  /** TLS socket options for amqps://. */
  tls?: Record<string, unknown>;
  /**
   * Name of this client's reply queue. Default: a new UUID, like Celery's per-process `oid`.
   * The queue is exclusive to this connection, non-durable and deleted when it closes.
   */
  replyQueue?: string;
  /** How long a result publish may wait for the broker (default 30 000 ms). */
  publishTimeoutMs?: number;
}

const OPTION_KEYS = optionKeys<RpcResultBackendOptions>({ url: true, tls: true, replyQueue: true, publishTimeoutMs: true });

/**
 * Celery's `rpc://` result backend. A client receives results on a reply queue of its own (its
 * tasks carry it as `reply_to`); a worker publishes each state to the task's `reply_to` on the
 * default exchange with `correlation_id` = task id. Results are kept in memory for this client
 * only: `get` of a task this client did not send stays null, as in Celery.
 */
export class RpcResultBackend implements ResultBackend {
  readonly name = "rpc";
  readonly replyQueue: string;
  private readonly connection: ReconnectingConnection;
  private readonly publishTimeoutMs: number;
  private readonly results = new Map<string, ResultMeta>();
  private readonly waiters = new Map<string, Set<(m: ResultMeta) => void>>();
  private consuming: Promise<string> | null = null;
  private consumerConn: ChannelModel | null = null;
  private publishCh = new WeakMap<ChannelModel, Promise<Channel>>();
  private closed = false;

  constructor(options: RpcResultBackendOptions = {}) {
    assertKnownOptions("createRpcResultBackend", options, OPTION_KEYS);
    this.replyQueue = options.replyQueue ?? randomUUID();
    this.publishTimeoutMs = options.publishTimeoutMs ?? 30_000;
    this.connection = new ReconnectingConnection({
      urls: amqpUrlList(options.url ?? DEFAULT_AMQP_URL),
      tls: options.tls,
      lifecycle: new ConnectionLifecycle("amqp rpc backend"),
      onEvent: undefined,
    });
    // After a reconnect the exclusive queue is gone with the old connection: declare it again.
    this.connection.onUp((conn) => {
      if (this.consuming && this.consumerConn !== conn) this.consuming = this.listen(conn);
    });
  }

  /** Declares the reply queue and starts consuming it; the client calls this before sending. */
  replyTo(): Promise<string> {
    if (this.closed) return Promise.reject(new CeleriacError("closed", "rpc result backend is closed"));
    this.consuming ??= this.connection.open().then((conn) => this.listen(conn));
    const p = this.consuming;
    p.catch(() => {
      if (this.consuming === p) this.consuming = null;
    });
    return p;
  }

  private async listen(conn: ChannelModel): Promise<string> {
    this.consumerConn = conn;
    const ch = await conn.createChannel();
    ch.on("error", () => undefined);
    // Celery's binding: durable=False, auto_delete=True, x-expires = result_expires (1 day).
    await ch.assertQueue(this.replyQueue, { durable: false, autoDelete: true, exclusive: true, expires: 86_400_000 });
    await ch.consume(
      this.replyQueue,
      (m) => {
        if (!m) return;
        try {
          this.onReply(
            {
              body: new Uint8Array(m.content),
              contentType: m.properties.contentType ?? "application/json",
              contentEncoding: m.properties.contentEncoding ?? "utf-8",
              headers: {},
              properties: {},
            },
            typeof m.properties.correlationId === "string" ? m.properties.correlationId : null,
          );
        } catch {
          // An unreadable reply is skipped, as Celery's result consumer does.
        }
      },
      { noAck: true },
    );
    return this.replyQueue;
  }

  private onReply(message: WireMessage, correlationId: string | null): void {
    if (message.contentType !== "application/json") return;
    const meta = parseResultMeta(new TextDecoder().decode(message.body), "rpc reply");
    const id = typeof meta.task_id === "string" ? meta.task_id : correlationId;
    if (!id) return;
    const previous = this.results.get(id);
    if (previous?.status === "SUCCESS") return;
    this.results.set(id, meta);
    if (READY_STATES.has(meta.status)) {
      const ws = this.waiters.get(id);
      this.waiters.delete(id);
      for (const w of ws ?? []) w(meta);
    }
  }

  private publishChannel(conn: ChannelModel): Promise<Channel> {
    let p = this.publishCh.get(conn);
    if (!p) {
      p = conn.createConfirmChannel().then((ch) => {
        ch.on("error", () => undefined);
        ch.on("close", () => this.publishCh.delete(conn));
        return ch;
      });
      this.publishCh.set(conn, p);
    }
    return p;
  }

  /** Publishes the meta to the task's `reply_to` (a worker calls this). No reply_to: nothing to do. */
  async store(meta: ResultMeta, options: { ttlMs?: number; replyTo?: string } = {}): Promise<void> {
    const replyTo = options.replyTo;
    if (!replyTo) return;
    if (this.closed) throw new CeleriacError("closed", "rpc result backend is closed");
    // Celery's rpc body: task_id, status, result, traceback, children (no date_done).
    const body = { task_id: meta.task_id, status: meta.status, result: meta.result, traceback: meta.traceback, children: meta.children };
    const encoded = new TextEncoder().encode(stringifyCeleryJson(body));
    const message: WireMessage = {
      body: encoded,
      contentType: "application/json",
      contentEncoding: "utf-8",
      headers: {},
      // Celery's rpc backend publishes results transient (persistent=False by default).
      properties: { correlationId: meta.task_id, deliveryMode: 1 },
    };
    const deadline = Date.now() + this.publishTimeoutMs;
    for (;;) {
      const conn = await this.connection.ready(Math.max(1, deadline - Date.now()));
      try {
        const ch = await this.publishChannel(conn);
        await new Promise<void>((resolve, reject) => {
          (ch as ConfirmChannel).publish("", replyTo, Buffer.from(message.body), toPublishOptions(message), (err: unknown) =>
            err ? reject(err instanceof Error ? err : new Error(String(err))) : resolve(),
          );
        });
        return;
      } catch (err) {
        if (Date.now() >= deadline) throw CeleriacError.from(err, "connection");
        await new Promise((r) => setTimeout(r, 100));
      }
    }
  }

  async get(taskId: string): Promise<ResultMeta | null> {
    return this.results.get(taskId) ?? null;
  }

  waitFor(taskId: string, options: { timeoutMs: number; signal?: AbortSignal }): Promise<ResultMeta> {
    const have = this.results.get(taskId);
    if (have && READY_STATES.has(have.status)) return Promise.resolve(have);
    return new Promise((resolve, reject) => {
      let set = this.waiters.get(taskId);
      if (!set) this.waiters.set(taskId, (set = new Set()));
      const s = set;
      const done = (m: ResultMeta) => {
        clearTimeout(timer);
        options.signal?.removeEventListener("abort", onAbort);
        resolve(m);
      };
      const onAbort = () => {
        clearTimeout(timer);
        s.delete(done);
        reject(new CeleriacError("timeout", `waiting for task ${taskId} was aborted`));
      };
      const timer = setTimeout(() => {
        s.delete(done);
        options.signal?.removeEventListener("abort", onAbort);
        reject(new CeleriacError("timeout", `no result for task ${taskId} within ${options.timeoutMs} ms`));
      }, options.timeoutMs);
      s.add(done);
      options.signal?.addEventListener("abort", onAbort, { once: true });
      // Start listening if the task was sent by another client object sharing this backend.
      void this.replyTo().catch(() => undefined);
    });
  }

  async forget(taskId: string): Promise<void> {
    this.results.delete(taskId);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.connection.close();
  }
}

export function createRpcResultBackend(options: RpcResultBackendOptions = {}): RpcResultBackend {
  return new RpcResultBackend(options);
}
