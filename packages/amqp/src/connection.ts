import { connect, type ChannelModel } from "amqplib";
import { CeleriacError, ConnectionLifecycle, maskUrl, withEncodedCredentials } from "@celeriac/core/transport";
import { readHeadersExactly } from "./field-table.js";

export interface ConnectionSettings {
  /**
   * The nodes to connect to, tried in turn: one URL, or a cluster's failover list (Celery's
   * `amqp://h1;amqp://h2`, already split and normalised).
   */
  urls: readonly string[];
  /** TLS options for amqps:// (ca, cert, key, servername, rejectUnauthorized ...). */
  tls: Record<string, unknown> | undefined;
  /** Where outages are reported, and whose backoff the reconnect loop uses. */
  lifecycle: ConnectionLifecycle;
  onEvent: ((event: string, detail?: unknown) => void) | undefined;
}

/**
 * One AMQP connection that comes back by itself. After an unexpected close it reconnects through
 * core's lifecycle loop (exponential backoff with jitter, outage events) until `close()`; users
 * of the connection subscribe to `up` and re-open their channels, and `ready()` waits for the
 * next live connection.
 *
 * With several URLs (a cluster) it fails over round-robin, as kombu's `Connection(alternates,
 * failover_strategy="round-robin")` does (kombu/connection.py, `maybe_switch_next` on a
 * connection error): a failed dial or a lost connection moves on to the next node, and the
 * lifecycle's backoff paces the attempts across the whole list.
 */
export class ReconnectingConnection {
  private conn: ChannelModel | null = null;
  private connecting: Promise<ChannelModel> | null = null;
  private waiters: { resolve: (c: ChannelModel) => void; reject: (e: unknown) => void }[] = [];
  private readonly upListeners = new Set<(c: ChannelModel) => void>();
  private closing = false;
  /** The reconnect loop while it runs; aborted by close(). */
  private reconnecting: Promise<unknown> | null = null;
  private readonly stopReconnecting = new AbortController();
  /** The error that made the last connection attempt fail, for error messages. */
  lastError: unknown = null;
  /** The node the next dial goes to (an index into `settings.urls`). */
  private next = 0;

  constructor(private readonly settings: ConnectionSettings) {
    if (settings.urls.length === 0) throw new CeleriacError("invalid_argument", "amqp: no broker URL given");
  }

  /** The URL of the live connection, or of the node the next attempt goes to. */
  get url(): string {
    return this.settings.urls[this.next]!;
  }

  get current(): ChannelModel | null {
    return this.conn;
  }

  get isClosing(): boolean {
    return this.closing;
  }

  onUp(listener: (c: ChannelModel) => void): () => void {
    this.upListeners.add(listener);
    return () => this.upListeners.delete(listener);
  }

  /**
   * The first connection: fails fast (no backoff) so a wrong URL is reported at once; with a
   * failover list each node is tried once before it fails.
   */
  async open(): Promise<ChannelModel> {
    if (this.closing) throw new CeleriacError("closed", "amqp transport is closed");
    if (this.conn) return this.conn;
    this.connecting ??= this.dialEach().finally(() => (this.connecting = null));
    return this.connecting;
  }

  private async dialEach(): Promise<ChannelModel> {
    const n = this.settings.urls.length;
    const errors: string[] = [];
    for (let i = 0; ; i++) {
      try {
        return await this.dial();
      } catch (err) {
        if (n === 1 || (err instanceof CeleriacError && err.code === "closed")) throw err;
        errors.push(describe(err));
        if (i + 1 >= n) {
          throw new CeleriacError("connection", `cannot connect to any of the ${n} AMQP brokers: ${errors.join("; ")}`, { cause: err });
        }
      }
    }
  }

  /** Waits up to `timeoutMs` for a live connection (reconnecting meanwhile). */
  ready(timeoutMs: number): Promise<ChannelModel> {
    if (this.closing) return Promise.reject(new CeleriacError("closed", "amqp transport is closed"));
    if (this.conn) return Promise.resolve(this.conn);
    // Not connected yet and not reconnecting: dial now (a failed first dial retries with backoff).
    if (!this.connecting && !this.reconnecting) this.open().catch(() => this.scheduleReconnect());
    return new Promise((resolve, reject) => {
      const w = {
        resolve: (c: ChannelModel) => {
          clearTimeout(t);
          resolve(c);
        },
        reject: (e: unknown) => {
          clearTimeout(t);
          reject(e);
        },
      };
      const t = setTimeout(() => {
        this.waiters = this.waiters.filter((x) => x !== w);
        reject(
          new CeleriacError("connection", `no connection to the AMQP broker within ${timeoutMs} ms${this.lastError ? `: ${describe(this.lastError)}` : ""}`, {
            cause: this.lastError,
          }),
        );
      }, timeoutMs);
      this.waiters.push(w);
    });
  }

  private async dial(): Promise<ChannelModel> {
    const s = this.settings;
    if (s.lifecycle.state === "idle") s.lifecycle.report({ type: "connecting" });
    let conn: ChannelModel;
    const url = this.url;
    try {
      conn = await connect(withEncodedCredentials(url), { noDelay: true, ...(s.tls ?? {}) } as Parameters<typeof connect>[1]);
    } catch (err) {
      this.lastError = err;
      this.failOver();
      throw new CeleriacError("connection", `cannot connect to the AMQP broker at ${maskUrl(url)}: ${describe(err)}`, { cause: err });
    }
    if (this.closing) {
      await conn.close().catch(() => undefined);
      throw new CeleriacError("closed", "amqp transport is closed");
    }
    // Python's 64-bit header integers (py-amqp's `L` tag) would otherwise close the connection.
    readHeadersExactly(conn.connection);
    coalesceWrites(conn.connection);
    conn.on("error", (err: unknown) => {
      this.lastError = err;
    });
    conn.on("close", () => {
      if (this.conn !== conn) return;
      this.conn = null;
      if (!this.closing) {
        // The node may be the one that went down: the next attempt goes to the next node.
        this.failOver();
        s.onEvent?.("disconnected", this.lastError);
        s.lifecycle.lost(this.lastError ?? new Error("connection closed"));
        this.scheduleReconnect();
      }
    });
    this.conn = conn;
    s.lifecycle.report({ type: "connected" });
    const waiters = this.waiters;
    this.waiters = [];
    for (const w of waiters) w.resolve(conn);
    for (const l of this.upListeners) l(conn);
    return conn;
  }

  private failOver(): void {
    this.next = (this.next + 1) % this.settings.urls.length;
  }

  private scheduleReconnect(): void {
    if (this.closing || this.reconnecting) return;
    const s = this.settings;
    this.reconnecting = s.lifecycle
      .retry(() => this.dial(), { signal: this.stopReconnecting.signal })
      .then(
        (conn) => {
          if (conn) s.onEvent?.("reconnected");
        },
        () => undefined, // nothing is fatal here: retry only returns once connected or closed
      )
      .finally(() => (this.reconnecting = null));
  }

  async close(): Promise<void> {
    this.closing = true;
    this.stopReconnecting.abort();
    const waiters = this.waiters;
    this.waiters = [];
    for (const w of waiters) w.reject(new CeleriacError("closed", "amqp transport is closed"));
    const c = this.conn ?? (await this.connecting?.catch(() => null)) ?? null;
    this.conn = null;
    if (c) await c.close().catch(() => undefined);
  }
}

export function describe(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

interface AmqplibMux {
  out: { cork(): void; uncork(): void };
  _readIncoming(): void;
}

/**
 * One socket write per pass of amqplib's writer instead of one per frame set.
 *
 * amqplib queues each publish, ack or other method on its channel's buffer, and its Mux moves
 * every queued buffer to the socket in one synchronous pass (`_readIncoming`, scheduled with
 * setImmediate), calling `socket.write` once per buffer: a `write` system call per publish.
 * Corking the socket for the pass hands the kernel the whole pass in one `writev`. Nothing waits
 * longer: the pass ends with the uncork. When corked data passes the socket's high-water mark,
 * `write` returns false and the Mux waits for `drain` as it does when the kernel is slow.
 * Measured on bare amqplib, 20,000 publishes with 200 confirms in flight, median of 9 runs: CPU
 * per publish 27 µs without, 22 µs with. Pinned by test/write-coalescing.test.ts.
 */
function coalesceWrites(connection: unknown): void {
  const mux = (connection as { muxer?: Partial<AmqplibMux> }).muxer;
  if (!mux || typeof mux._readIncoming !== "function" || typeof mux.out?.cork !== "function" || typeof mux.out.uncork !== "function") {
    throw new TypeError("amqplib's Connection no longer has muxer._readIncoming/out: coalesceWrites needs updating for this amqplib version");
  }
  const pass = mux._readIncoming;
  const m = mux as AmqplibMux;
  m._readIncoming = function readIncomingCorked(this: AmqplibMux): void {
    this.out.cork();
    try {
      pass.call(this);
    } finally {
      this.out.uncork();
    }
  };
}
