import type Database from "better-sqlite3";
import { CeleriacError, type ResultBackend, type ResultMeta } from "@celeriac/core";
import { assertKnownOptions, optionKeys, parseResultMeta, pollForResult, stringifyCeleryJson } from "@celeriac/core/transport";
import { openDatabase } from "./schema.js";

export interface SqliteResultBackendOptions {
  /** Database file; may be the broker's file (results get their own table). */
  path: string;
  /**
   * How long a stored result is kept, per `store` unless it passes `ttlMs`. Default one day,
   * Celery's `result_expires`; `null` keeps results until `forget`.
   */
  expiresMs?: number | null;
  /** Lock wait before a statement fails, as for the transport. Default 5000 ms. */
  busyTimeoutMs?: number;
  /** Longest delay between polls of `waitFor`; polls start at 5 ms and double. Default 200 ms. */
  maxPollIntervalMs?: number;
  /** How often expired rows are deleted, at most (done during `store`). Default 60 000 ms. */
  cleanupIntervalMs?: number;
}

const KNOWN = optionKeys<SqliteResultBackendOptions>({
  path: true,
  expiresMs: true,
  busyTimeoutMs: true,
  maxPollIntervalMs: true,
  cleanupIntervalMs: true,
});

function msOption(name: string, value: number | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== "number" || !Number.isFinite(value) || value <= 0) {
    throw new CeleriacError("invalid_argument", `createSqliteResultBackend: ${name} must be a positive number of milliseconds, got ${String(value)}`);
  }
  return value;
}

/**
 * Results in SQLite, one row per task holding Celery's result meta as JSON. Readers poll: there
 * is no cross-process notification in SQLite.
 */
export class SqliteResultBackend implements ResultBackend {
  readonly name = "sqlite";
  private readonly db: Database.Database;
  private readonly expiresMs: number | null;
  private readonly maxPollMs: number;
  private readonly cleanupMs: number;
  private lastCleanup = 0;
  private isClosed = false;
  private readonly stmt;

  constructor(options: SqliteResultBackendOptions) {
    assertKnownOptions("createSqliteResultBackend", options, KNOWN);
    if (typeof options?.path !== "string") {
      throw new CeleriacError("invalid_argument", "createSqliteResultBackend: path (the database file) is required");
    }
    this.expiresMs = options.expiresMs === null ? null : msOption("expiresMs", options.expiresMs, 86_400_000);
    this.maxPollMs = msOption("maxPollIntervalMs", options.maxPollIntervalMs, 200);
    this.cleanupMs = msOption("cleanupIntervalMs", options.cleanupIntervalMs, 60_000);
    const busy = msOption("busyTimeoutMs", options.busyTimeoutMs, 5000);
    this.db = openDatabase({ path: options.path, busyTimeoutMs: busy, schema: "results" });
    const db = this.db;
    this.stmt = {
      // A SUCCESS is final (as in Celery) unless it has expired, when the id may be reused.
      upsert: db.prepare<[string, string, string, string | null, number | null, number]>(
        `INSERT INTO celeriac_taskmeta (task_id, status, meta, date_done, expires_at) VALUES (?, ?, ?, ?, ?)
         ON CONFLICT (task_id) DO UPDATE SET status = excluded.status, meta = excluded.meta,
           date_done = excluded.date_done, expires_at = excluded.expires_at
         WHERE celeriac_taskmeta.status <> 'SUCCESS'
           OR (celeriac_taskmeta.expires_at IS NOT NULL AND celeriac_taskmeta.expires_at <= ?)`,
      ),
      get: db.prepare<[string, number], { meta: string }>("SELECT meta FROM celeriac_taskmeta WHERE task_id = ? AND (expires_at IS NULL OR expires_at > ?)"),
      forget: db.prepare<[string]>("DELETE FROM celeriac_taskmeta WHERE task_id = ?"),
      cleanup: db.prepare<[number]>("DELETE FROM celeriac_taskmeta WHERE expires_at IS NOT NULL AND expires_at <= ?"),
    };
  }

  private open(what: string): void {
    if (this.isClosed) throw new CeleriacError("closed", `sqlite result backend is closed; cannot ${what}`);
  }

  async store(meta: ResultMeta, options: { ttlMs?: number } = {}): Promise<void> {
    this.open("store");
    const ttl = options.ttlMs !== undefined ? msOption("ttlMs", options.ttlMs, 0) : this.expiresMs;
    const now = Date.now();
    this.stmt.upsert.run(meta.task_id, meta.status, stringifyCeleryJson(meta), meta.date_done ?? null, ttl === null ? null : now + ttl, now);
    if (now - this.lastCleanup >= this.cleanupMs) {
      this.lastCleanup = now;
      this.stmt.cleanup.run(now);
    }
  }

  async get(taskId: string): Promise<ResultMeta | null> {
    this.open("get");
    const row = this.stmt.get.get(taskId, Date.now());
    return row ? parseResultMeta(row.meta, `sqlite result of ${taskId}`) : null;
  }

  waitFor(taskId: string, options: { timeoutMs: number; signal?: AbortSignal }): Promise<ResultMeta> {
    return pollForResult((id) => this.get(id), taskId, { ...options, maxIntervalMs: this.maxPollMs });
  }

  async forget(taskId: string): Promise<void> {
    this.open("forget");
    this.stmt.forget.run(taskId);
  }

  /** Deletes expired results now; returns how many. Runs by itself at most every `cleanupIntervalMs`. */
  async cleanup(): Promise<number> {
    this.open("cleanup");
    this.lastCleanup = Date.now();
    return this.stmt.cleanup.run(this.lastCleanup).changes;
  }

  async close(): Promise<void> {
    if (this.isClosed) return;
    this.isClosed = true;
    this.db.close();
  }
}

/** Creates the SQLite result backend; see {@link SqliteResultBackendOptions} for the defaults. */
export function createSqliteResultBackend(options: SqliteResultBackendOptions): SqliteResultBackend {
  return new SqliteResultBackend(options);
}
