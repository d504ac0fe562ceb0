import { connect, type ChannelModel } from "amqplib";
import { CeleriacError, ConnectionLifecycle, maskUrl, withEncodedCredentials } from "@celeriac/core/transport";
import { readHeadersExactly } from "./field-table.js";

export interface ConnectionSettings {
  url: string;
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

  constructor(private readonly settings: ConnectionSettings) {}

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

  /** The first connection: fails fast (no retry) so a wrong URL is reported at once. */
  async open(): Promise<ChannelModel> {
    if (this.closing) throw new CeleriacError("closed", "amqp transport is closed");
    if (this.conn) return this.conn;
    this.connecting ??= this.dial().finally(() => (this.connecting = null));
    return this.connecting;
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
    try {
      conn = await connect(withEncodedCredentials(s.url), { noDelay: true, ...(s.tls ?? {}) } as Parameters<typeof connect>[1]);
    } catch (err) {
      this.lastError = err;
      throw new CeleriacError("connection", `cannot connect to the AMQP broker at ${maskUrl(s.url)}: ${describe(err)}`, { cause: err });
    }
    if (this.closing) {
      await conn.close().catch(() => undefined);
      throw new CeleriacError("closed", "amqp transport is closed");
    }
    // Python's 64-bit header integers (py-amqp's `L` tag) would otherwise close the connection.
    readHeadersExactly(conn.connection);
    conn.on("error", (err: unknown) => {
      this.lastError = err;
    });
    conn.on("close", () => {
      if (this.conn !== conn) return;
      this.conn = null;
      if (!this.closing) {
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
