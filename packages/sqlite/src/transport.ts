import { randomUUID } from "node:crypto";
import type Database from "better-sqlite3";
import {
  CeleriacError,
  ChangeSignal,
  ConnectionLifecycle,
  DeliveryQueue,
  assertKnownOptions,
  optionKeys,
  assertPublishable,
  createDelivery,
  parseKombuEnvelope,
  stringifyKombuEnvelope,
  toKombuEnvelope,
  type ConnectionEvents,
  type ConsumeOptions,
  type Consumer,
  type DeadLetter,
  type Delivery,
  type PublishOptions,
  type Transport,
  type TransportCapabilities,
  type WireMessage,
} from "@celeriac/core/transport";
import { isBusy, openDatabase, reclaimSpace } from "./schema.js";

export interface SqliteTransportOptions {
  /**
   * Database file, shared by every process that publishes or consumes (`":memory:"` for a
   * private in-process queue). Created with kombu's tables when missing.
   */
  path: string;
  /**
   * How long a received, unsettled message stays hidden before any consumer may receive it
   * again. Default 30 minutes: long enough for most tasks, short enough that a crashed worker's
   * messages come back the same half hour. Long-running tasks should call `extend`.
   */
  visibilityTimeoutMs?: number;
  /**
   * How long a statement waits for another process's write lock before failing. Default 5000 ms.
   * better-sqlite3 waits synchronously, so this also bounds how long a contended claim can block
   * the event loop; claims are single short transactions, so real waits are milliseconds.
   */
  busyTimeoutMs?: number;
  /** First poll delay of an idle consumer, doubled on each empty poll. Default 5 ms. */
  minPollIntervalMs?: number;
  /**
   * Longest poll delay of an idle consumer: bounds the latency of a message published by another
   * process. Default 100 ms; messages published in this process wake consumers at once.
   */
  maxPollIntervalMs?: number;
}

const KNOWN_OPTIONS = optionKeys<SqliteTransportOptions>({
  path: true,
  visibilityTimeoutMs: true,
  busyTimeoutMs: true,
  minPollIntervalMs: true,
  maxPollIntervalMs: true,
});

/** Most rows claimed in one transaction, so one claim never holds the write lock for long. */
const MAX_BATCH = 200;

interface ClaimedRow {
  id: number;
  queue: string;
  payload: string;
  deliveries: number;
  token: string;
}

interface MessageRow {
  id: number;
  payload: string;
  queue_id: number;
}

function positive(where: string, name: string, value: number | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== "number" || !Number.isFinite(value) || value <= 0) {
    throw new CeleriacError("invalid_argument", `${where}: ${name} must be a positive number of milliseconds, got ${String(value)}`);
  }
  return value;
}

function readPayload(payload: string): WireMessage | null {
  try {
    return parseKombuEnvelope(payload).message;
  } catch {
    return null;
  }
}

function clampPriority(p: number | undefined): number {
  if (p === undefined || !Number.isFinite(p)) return 0;
  return Math.min(9, Math.max(0, Math.round(p)));
}

/**
 * The embedded broker: kombu's SQLAlchemy tables in one SQLite file, with a real ack on top.
 * See README.md for how this coexists with Python Celery on the same file.
 */
/**
 * What `createSqliteTransport` returns: the transport contract, plus what only an SQLite file has.
 * The class behind it is not public: its claim, sweep and statement machinery is not API.
 */
export interface SqliteTransport extends Transport {
  /** The database file (or ":memory:"). */
  readonly path: string;
  /** Deletes the rows Python's kombu consumer has received (kombu never does); returns how many. */
  pruneKombuConsumed(): Promise<number>;
  readDeadLetters(queue: string, options?: { limit?: number }): Promise<DeadLetter[]>;
}

class SqliteTransportImpl implements SqliteTransport {
  readonly name = "sqlite";
  readonly capabilities: TransportCapabilities = {
    // Ordered by our claim query, not by SQLite; Python's kombu consumer ignores it.
    priority: "emulated",
    delayedDelivery: true,
    visibilityExtension: true,
    deadLetter: true,
    maxMessageBytes: null,
  };
  readonly closed: Promise<void>;
  readonly path: string;
  private readonly db: Database.Database;
  private readonly visibilityTimeoutMs: number;
  private readonly minPollMs: number;
  private readonly maxPollMs: number;
  private readonly queueIds = new Map<string, number>();
  private readonly changes = new ChangeSignal();
  /** Claims received by this transport and not settled: put back on close. */
  private readonly unsettled = new Map<string, number>();
  private readonly consumers = new Set<Consumer>();
  private readonly events = new ConnectionLifecycle("sqlite");
  /** An embedded file has no outages: `connected` on connect; failures end the consumer itself. */
  readonly lifecycle: ConnectionEvents = this.events;
  /** Unique per transport so claim tokens never collide across processes. */
  private readonly instance = randomUUID();
  private tokenSeq = 0;
  /** Highest kombu_message id whose payload priority has been copied into our state table. */
  private indexedUpTo = 0;
  private isClosed = false;
  private resolveClosed!: () => void;
  private readonly stmt: ReturnType<SqliteTransportImpl["prepare"]>;

  constructor(options: SqliteTransportOptions) {
    assertKnownOptions("createSqliteTransport", options, KNOWN_OPTIONS);
    if (typeof options?.path !== "string") {
      throw new CeleriacError("invalid_argument", "createSqliteTransport: path (the database file) is required");
    }
    const where = "createSqliteTransport";
    this.path = options.path;
    this.visibilityTimeoutMs = positive(where, "visibilityTimeoutMs", options.visibilityTimeoutMs, 30 * 60_000);
    const busy = options.busyTimeoutMs === 0 ? 0 : positive(where, "busyTimeoutMs", options.busyTimeoutMs, 5000);
    this.minPollMs = positive(where, "minPollIntervalMs", options.minPollIntervalMs, 5);
    this.maxPollMs = positive(where, "maxPollIntervalMs", options.maxPollIntervalMs, 100);
    if (this.maxPollMs < this.minPollMs) {
      throw new CeleriacError("invalid_argument", `${where}: maxPollIntervalMs (${this.maxPollMs}) is below minPollIntervalMs (${this.minPollMs})`);
    }
    this.closed = new Promise((r) => (this.resolveClosed = r));
    this.db = openDatabase({ path: options.path, busyTimeoutMs: busy, schema: "broker" });
    this.stmt = this.prepare();
  }

  private prepare() {
    const db = this.db;
    return {
      queueId: db.prepare<[string], { id: number }>("SELECT id FROM kombu_queue WHERE name = ?"),
      queueName: db.prepare<[number], { name: string }>("SELECT name FROM kombu_queue WHERE id = ?"),
      insertQueue: db.prepare<[string]>("INSERT OR IGNORE INTO kombu_queue (name) VALUES (?)"),
      // timestamp stays NULL on insert, as kombu's ORM leaves it (it only sets it on update).
      insertMessage: db.prepare<[number, string, number]>(
        "INSERT INTO kombu_message (visible, timestamp, payload, version, queue_id) VALUES (?, NULL, ?, 1, ?)",
      ),
      insertState: db.prepare<[number, number, number | null]>(
        "INSERT INTO celeriac_message_state (message_id, priority, hidden_until, deliveries) VALUES (?, ?, ?, 0)",
      ),
      // Expired claims and elapsed delays become visible again. Uses the partial index.
      sweepMessages: db.prepare<[number]>(
        "UPDATE kombu_message SET visible = 1, version = version + 1 WHERE id IN (SELECT message_id FROM celeriac_message_state WHERE hidden_until IS NOT NULL AND hidden_until <= ?)",
      ),
      sweepState: db.prepare<[number]>(
        "UPDATE celeriac_message_state SET hidden_until = NULL, claim_token = NULL WHERE hidden_until IS NOT NULL AND hidden_until <= ?",
      ),
      // Rows written by someone else (Python's kombu) carry their priority only in the payload:
      // copy it into our state once, so every producer's priority orders the same way.
      indexPriorities: db.prepare<[number]>(
        `INSERT INTO celeriac_message_state (message_id, priority, deliveries)
         SELECT id, MIN(9, CAST(json_extract(payload, '$.properties.priority') AS INTEGER)), 0 FROM kombu_message
         WHERE id > ? AND visible = 1 AND json_valid(payload)
           AND CAST(json_extract(payload, '$.properties.priority') AS INTEGER) > 0
         ON CONFLICT (message_id) DO NOTHING`,
      ),
      maxMessageId: db.prepare<[], { id: number | null }>("SELECT MAX(id) AS id FROM kombu_message"),
      nextHidden: db.prepare<[], { t: number | null }>("SELECT MIN(hidden_until) AS t FROM celeriac_message_state WHERE hidden_until IS NOT NULL"),
      hide: db.prepare<[number]>("UPDATE kombu_message SET visible = 0, version = version + 1 WHERE id = ? AND visible = 1"),
      claimState: db.prepare<[number, number, string], { deliveries: number }>(
        `INSERT INTO celeriac_message_state (message_id, priority, hidden_until, deliveries, claim_token) VALUES (?, 0, ?, 1, ?)
         ON CONFLICT (message_id) DO UPDATE SET hidden_until = excluded.hidden_until, claim_token = excluded.claim_token,
           deliveries = deliveries + 1
         RETURNING deliveries`,
      ),
      deleteMessage: db.prepare<[number]>("DELETE FROM kombu_message WHERE id = ?"),
      deleteState: db.prepare<[number]>("DELETE FROM celeriac_message_state WHERE message_id = ?"),
      ownedState: db.prepare<[number, string], { deliveries: number }>(
        "SELECT deliveries FROM celeriac_message_state WHERE message_id = ? AND claim_token = ?",
      ),
      extend: db.prepare<[number, number, string]>("UPDATE celeriac_message_state SET hidden_until = ? WHERE message_id = ? AND claim_token = ?"),
      release: db.prepare<[number | null, number, number, string]>(
        "UPDATE celeriac_message_state SET hidden_until = ?, claim_token = NULL, deliveries = deliveries - ? WHERE message_id = ? AND claim_token = ?",
      ),
      show: db.prepare<[number]>("UPDATE kombu_message SET visible = 1, version = version + 1 WHERE id = ?"),
      deadLetter: db.prepare<[string, string, number, number]>(
        `INSERT INTO celeriac_dead_letter (message_id, queue, payload, reason, deliveries, rejected_at)
         SELECT m.id, ?, m.payload, ?, COALESCE(s.deliveries, 0), ? FROM kombu_message m
         LEFT JOIN celeriac_message_state s ON s.message_id = m.id WHERE m.id = ?`,
      ),
      // Waiting = visible, or hidden by us with no consumer holding it (delayed / nacked with delay).
      purgeMessages: db.prepare<[number]>(
        `DELETE FROM kombu_message WHERE queue_id = ? AND (visible = 1 OR id IN
           (SELECT message_id FROM celeriac_message_state WHERE hidden_until IS NOT NULL AND claim_token IS NULL))`,
      ),
      pruneKombuConsumed: db.prepare(
        `DELETE FROM kombu_message WHERE visible = 0 AND id NOT IN
           (SELECT message_id FROM celeriac_message_state WHERE hidden_until IS NOT NULL)`,
      ),
      orphanState: db.prepare("DELETE FROM celeriac_message_state WHERE message_id NOT IN (SELECT id FROM kombu_message)"),
    };
  }

  async connect(): Promise<void> {
    if (this.isClosed) throw new CeleriacError("closed", "sqlite transport is closed");
    this.events.report({ type: "connected" });
  }

  /** Id of `queue` in kombu_queue, created like kombu's `_get_or_create`. */
  private queueId(queue: string): number {
    const cached = this.queueIds.get(queue);
    if (cached !== undefined) return cached;
    let row = this.stmt.queueId.get(queue);
    if (!row) {
      this.stmt.insertQueue.run(queue);
      row = this.stmt.queueId.get(queue);
    }
    if (!row) throw new CeleriacError("internal", `could not create queue ${queue}`);
    this.queueIds.set(queue, row.id);
    return row.id;
  }

  private guard<T>(what: string, fn: () => T): T {
    if (this.isClosed) throw new CeleriacError("closed", `sqlite transport is closed; cannot ${what}`);
    try {
      return fn();
    } catch (err) {
      if (err instanceof CeleriacError) throw err;
      throw new CeleriacError(isBusy(err) ? "connection" : "internal", `sqlite ${what} failed: ${(err as Error).message}`, { cause: err });
    }
  }

  async publish(queue: string, message: WireMessage, options: PublishOptions = {}): Promise<void> {
    assertPublishable(this, queue, message, options);
    const delayMs = options.delayMs ?? 0;
    const priority = clampPriority(message.properties.priority);
    // Python's json.dumps form, so rows look the same whoever wrote them.
    const payload = stringifyKombuEnvelope(toKombuEnvelope(message, { exchange: "", routingKey: queue, deliveryTag: randomUUID() }));
    this.guard("publish", () =>
      this.db
        .transaction(() => {
          const queueId = this.queueId(queue);
          const delayed = delayMs > 0;
          const id = Number(this.stmt.insertMessage.run(delayed ? 0 : 1, payload, queueId).lastInsertRowid);
          // Plain messages get no state row: kombu-compatible rows with nothing extra to say.
          if (delayed || priority > 0) this.stmt.insertState.run(id, priority, delayed ? Date.now() + delayMs : null);
        })
        .immediate(),
    );
    this.wake();
  }

  async purge(queue: string): Promise<number> {
    return this.guard("purge", () =>
      this.db
        .transaction(() => {
          const n = this.stmt.purgeMessages.run(this.queueId(queue)).changes;
          this.stmt.orphanState.run();
          return n;
        })
        .immediate(),
    );
  }

  /**
   * Deletes the rows Python's kombu consumer has received: kombu hides a row on receipt and never
   * deletes it, acked or not, so a file shared with Python workers grows without bound. Safe at
   * any time, since kombu never reads a row again after receiving it (a requeue inserts a new
   * row). Celeriac's own hidden rows (claimed or delayed) are not touched. Returns how many.
   */
  async pruneKombuConsumed(): Promise<number> {
    return this.guard("prune", () =>
      this.db
        .transaction(() => {
          const n = this.stmt.pruneKombuConsumed.run().changes;
          this.stmt.orphanState.run();
          return n;
        })
        .immediate(),
    );
  }

  /** Messages dead-lettered by `reject` (or for an unreadable payload), oldest first, left in place. */
  async readDeadLetters(queue: string, options: { limit?: number } = {}): Promise<DeadLetter[]> {
    const rows = this.guard("read dead letters", () =>
      this.db
        .prepare<[string, number], { queue: string; payload: string; reason: string; deliveries: number }>(
          "SELECT queue, payload, reason, deliveries FROM celeriac_dead_letter WHERE queue = ? ORDER BY id LIMIT ?",
        )
        .all(queue, options.limit ?? -1),
    );
    return rows.map((r) => ({ queue: r.queue, message: readPayload(r.payload), reason: r.reason, deliveryCount: r.deliveries, raw: r.payload }));
  }

  private claimStatements = new Map<
    string,
    {
      probe: Database.Statement<unknown[], { work: number }>;
      prioritized: Database.Statement<unknown[], MessageRow>;
      plain: Database.Statement<unknown[], MessageRow>;
    }
  >();

  private claimStatementsFor(queueIds: number[]) {
    const key = queueIds.join(",");
    let s = this.claimStatements.get(key);
    if (!s) {
      const marks = queueIds.map(() => "?").join(", ");
      s = {
        // Read-only, so idle consumers in many processes do not queue up for the write lock.
        probe: this.db.prepare<unknown[], { work: number }>(
          `SELECT EXISTS (SELECT 1 FROM kombu_message WHERE visible = 1 AND queue_id IN (${marks}))
             OR EXISTS (SELECT 1 FROM celeriac_message_state WHERE hidden_until IS NOT NULL AND hidden_until <= ?) AS work`,
        ),
        prioritized: this.db.prepare<unknown[], MessageRow>(
          `SELECT m.id, m.payload, m.queue_id FROM celeriac_message_state s JOIN kombu_message m ON m.id = s.message_id
           WHERE s.priority > 0 AND m.visible = 1 AND m.queue_id IN (${marks}) ORDER BY s.priority DESC, s.message_id LIMIT ?`,
        ),
        // Only reached once no prioritized visible row is left, so plain id order is correct.
        plain: this.db.prepare<unknown[], MessageRow>(
          `SELECT id, payload, queue_id FROM kombu_message WHERE visible = 1 AND queue_id IN (${marks}) ORDER BY id LIMIT ?`,
        ),
      };
      this.claimStatements.set(key, s);
    }
    return s;
  }

  /**
   * A read-only probe, then (only when there is something to do) one IMMEDIATE transaction:
   * restore expired claims, then take up to `limit` rows, highest priority first, then oldest.
   * IMMEDIATE takes the write lock before reading, so two processes never select the same row.
   */
  private claim(queues: readonly string[], limit: number): ClaimedRow[] {
    const ids = queues.map((q) => this.queueId(q));
    const s = this.claimStatementsFor(ids);
    if (!s.probe.get(...ids, Date.now())?.work) return [];
    return this.db
      .transaction(() => {
        const now = Date.now();
        this.sweep(now);
        this.indexForeignPriorities();
        const rows = s.prioritized.all(...ids, limit);
        if (rows.length < limit) rows.push(...s.plain.all(...ids, limit - rows.length));
        const hiddenUntil = now + this.visibilityTimeoutMs;
        const out: ClaimedRow[] = [];
        for (const row of rows) {
          if (this.stmt.hide.run(row.id).changes === 0) continue;
          const token = `${this.instance}:${++this.tokenSeq}`;
          const state = this.stmt.claimState.get(row.id, hiddenUntil, token);
          out.push({ id: row.id, payload: row.payload, queue: this.queueName(row.queue_id), deliveries: state?.deliveries ?? 1, token });
        }
        return out;
      })
      .immediate();
  }

  /**
   * Ids are AUTOINCREMENT and inserts are serialised by the write lock we hold, so every row not
   * yet looked at has an id above the highest one seen before.
   */
  private indexForeignPriorities(): void {
    const max = this.stmt.maxMessageId.get()?.id ?? 0;
    if (max <= this.indexedUpTo) return;
    this.stmt.indexPriorities.run(this.indexedUpTo);
    this.indexedUpTo = max;
  }

  private queueName(id: number): string {
    for (const [name, qid] of this.queueIds) if (qid === id) return name;
    return this.stmt.queueName.get(id)?.name ?? String(id);
  }

  private sweep(now: number): void {
    this.stmt.sweepMessages.run(now);
    this.stmt.sweepState.run(now);
  }

  /** Milliseconds until the next delayed or expiring message, to shorten an idle wait. */
  private nextHiddenIn(): number {
    const t = this.stmt.nextHidden.get()?.t;
    return t === null || t === undefined ? Infinity : t - Date.now();
  }

  /** Gives a claim back: visible now (or after `delayMs`), and `uncount` un-does its delivery count. */
  private release(id: number, token: string, delayMs: number, uncount: 0 | 1): boolean {
    return this.db
      .transaction(() => {
        const hiddenUntil = delayMs > 0 ? Date.now() + delayMs : null;
        if (this.stmt.release.run(hiddenUntil, uncount, id, token).changes === 0) return false;
        if (hiddenUntil === null) this.stmt.show.run(id);
        return true;
      })
      .immediate();
  }

  consume(queues: readonly string[], options: ConsumeOptions): Consumer {
    if (this.isClosed) throw new CeleriacError("closed", "sqlite transport is closed; cannot consume");
    const q: DeliveryQueue<ClaimedRow> = new DeliveryQueue({
      queues,
      consume: options,
      toDelivery: (row, release) => this.makeDelivery(row, release),
      giveBack: (rows) => {
        if (this.isClosed) return;
        for (const row of rows) {
          this.unsettled.delete(row.token);
          try {
            this.release(row.id, row.token, 0, 1);
          } catch {
            // Lock contention on shutdown: the visibility timeout returns it instead.
          }
        }
      },
      onStop: () => {
        this.consumers.delete(q);
        this.wake();
      },
    });
    this.consumers.add(q);
    void this.pump(queues, q);
    return q;
  }

  /**
   * Claims rows while the buffer is empty and the prefetch window has room (a visibility timeout
   * does not reopen the window, so an idle consumer never re-claims what it already holds),
   * backing off while the queues are empty. A failure other than another process's lock ends the
   * consumer with that error.
   */
  private async pump(queues: readonly string[], q: DeliveryQueue<ClaimedRow>): Promise<void> {
    let interval = this.minPollMs;
    // Set by a claim that found work; the first empty claim after it gives the burst's space back.
    let busySinceReclaim = false;
    while (!q.stopped && !this.isClosed) {
      if (q.room <= 0 || q.buffered > 0) {
        await q.changed();
        continue;
      }
      let claimed: ClaimedRow[];
      try {
        claimed = this.claim(queues, Math.min(q.room, MAX_BATCH));
      } catch (err) {
        if (this.isClosed || q.stopped) return;
        if (!isBusy(err)) {
          q.fail(new CeleriacError("connection", `sqlite claim failed: ${(err as Error).message}`, { cause: err }));
          return;
        }
        claimed = []; // another process held the lock past busy_timeout: poll again later
      }
      // claim() is synchronous, so stop() cannot have run in between.
      if (claimed.length > 0) {
        for (const c of claimed) this.unsettled.set(c.token, c.id);
        q.push(...claimed);
        interval = this.minPollMs;
        busySinceReclaim = true;
        continue;
      }
      if (busySinceReclaim && this.unsettled.size === 0) {
        busySinceReclaim = false;
        try {
          reclaimSpace(this.db);
        } catch {
          // Another process holds the lock: the next drained burst tries again.
        }
      }
      await this.waitForChange(Math.min(interval, Math.max(1, this.nextHiddenIn())));
      interval = Math.min(interval * 2, this.maxPollMs);
    }
  }

  /** A Delivery for a claimed row; null (after dead-lettering it) when the payload is unreadable. */
  private makeDelivery(row: ClaimedRow, release: () => void): Delivery | null {
    let message: WireMessage;
    try {
      message = parseKombuEnvelope(row.payload).message;
    } catch (err) {
      // Nothing could ever consume it; keep it for inspection rather than loop on it.
      this.unsettled.delete(row.token);
      this.guard("dead-letter", () => this.deadLetterRow(row, `decode_failed: ${(err as Error).message}`));
      return null;
    }
    const deleteRow = () => {
      this.stmt.deleteMessage.run(row.id);
      this.stmt.deleteState.run(row.id);
    };
    return createDelivery({
      transport: this.name,
      message,
      queue: row.queue,
      redelivered: row.deliveries > 1,
      deliveryCount: row.deliveries,
      visibilityTimeoutMs: this.visibilityTimeoutMs,
      isClosed: () => this.isClosed,
      onSettled: () => {
        this.unsettled.delete(row.token);
        release();
        this.wake();
      },
      ops: {
        // Deleted even if the claim expired meanwhile: the work is done, and a duplicate
        // delivery elsewhere then finds nothing left to ack.
        ack: () => this.guard("ack", () => this.db.transaction(deleteRow).immediate()),
        nack: ({ requeue, delayMs }) => {
          if (requeue) {
            this.guard("nack", () => this.release(row.id, row.token, delayMs, 0));
            this.wake();
            return;
          }
          this.guard("nack", () =>
            this.db
              .transaction(() => {
                if (this.stmt.ownedState.get(row.id, row.token)) deleteRow();
              })
              .immediate(),
          );
        },
        // No change when the claim already expired and someone else holds the message: extending
        // their claim would hide it on their behalf.
        extend: (ms) => void this.guard("extend", () => this.stmt.extend.run(Date.now() + ms, row.id, row.token)),
        reject: (reason) => this.guard("reject", () => this.deadLetterRow(row, reason)),
      },
    });
  }

  private deadLetterRow(row: ClaimedRow, reason: string): void {
    this.db
      .transaction(() => {
        this.stmt.deadLetter.run(row.queue, reason, Date.now(), row.id);
        this.stmt.deleteMessage.run(row.id);
        this.stmt.deleteState.run(row.id);
      })
      .immediate();
  }

  private wake(): void {
    this.changes.notify();
  }

  private waitForChange(maxMs: number): Promise<void> {
    return this.changes.wait(Math.min(maxMs, this.maxPollMs));
  }

  /**
   * Stops consumers (their prefetched messages go back), puts back every message received here
   * and not settled, and closes the file. Publishes are synchronous inside, so there is nothing
   * in flight to drain; `drainMs` is accepted for the contract.
   */
  async close(_options?: { drainMs?: number }): Promise<void> {
    if (this.isClosed) return this.closed;
    for (const c of [...this.consumers]) await c.stop();
    try {
      this.db
        .transaction(() => {
          for (const [token, id] of this.unsettled) {
            if (this.stmt.release.run(null, 0, id, token).changes > 0) this.stmt.show.run(id);
          }
        })
        .immediate();
    } catch {
      // Could not get the lock: the visibility timeout returns them instead.
    }
    this.unsettled.clear();
    this.isClosed = true;
    this.wake();
    this.db.close();
    this.resolveClosed();
  }
}

/** Creates the embedded SQLite transport; see {@link SqliteTransportOptions} for the defaults. */
export function createSqliteTransport(options: SqliteTransportOptions): SqliteTransport {
  return new SqliteTransportImpl(options);
}
