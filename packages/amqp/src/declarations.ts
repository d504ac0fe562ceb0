import type { Channel, ChannelModel } from "amqplib";

/**
 * Declarations (queues, exchanges, bindings) made once per connection: a reconnect is a new
 * connection, which declares again, as the broker may have restarted without them. Each runs on
 * a channel of its own, because a refused declaration (406, 404) closes the channel it ran on.
 * A failed declaration is forgotten, so the next use tries again.
 */
export class Declarations {
  private readonly byConnection = new WeakMap<ChannelModel, Map<string, Promise<void>>>();
  /** Keys whose declaration succeeded (and is remembered), for a check without awaiting. */
  private readonly doneOn = new WeakMap<ChannelModel, Set<string>>();

  /** True when `key` was declared on `conn` and is remembered: a publish may skip awaiting it. */
  isDone(conn: ChannelModel, key: string): boolean {
    return this.doneOn.get(conn)?.has(key) ?? false;
  }

  /**
   * Runs `declare` once for `key` on `conn`; callers in the meantime share its promise. With
   * `cache: false` a success is not remembered either (for things that can vanish by themselves,
   * like an auto-delete exchange).
   */
  once(conn: ChannelModel, key: string, declare: (ch: Channel) => Promise<void>, options: { cache?: boolean } = {}): Promise<void> {
    let map = this.byConnection.get(conn);
    if (!map) this.byConnection.set(conn, (map = new Map()));
    const known = map.get(key);
    if (known) return known;
    const p = onOwnChannel(conn, declare);
    const m = map;
    p.then(
      () => {
        if (options.cache === false) m.delete(key);
        else if (m.get(key) === p) {
          let done = this.doneOn.get(conn);
          if (!done) this.doneOn.set(conn, (done = new Set()));
          done.add(key);
        }
      },
      () => m.delete(key),
    );
    map.set(key, p);
    return p;
  }

  /** Forgets what `conn` declared, so the next use declares again (e.g. after a 404). */
  forget(conn: ChannelModel): void {
    this.byConnection.get(conn)?.clear();
    this.doneOn.get(conn)?.clear();
  }
}

async function onOwnChannel(conn: ChannelModel, declare: (ch: Channel) => Promise<void>): Promise<void> {
  const ch = await conn.createChannel();
  ch.on("error", () => undefined);
  try {
    await declare(ch);
  } finally {
    await ch.close().catch(() => undefined);
  }
}
