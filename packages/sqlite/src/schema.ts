import Database from "better-sqlite3";
import { CeleriacError } from "@celeriac/core";

/**
 * kombu's tables, byte for byte as SQLAlchemy 1.4 creates them for SQLite (checked against
 * `sqlite_master` of a database created by kombu 5.2.4), so a Python worker with
 * `broker_url = "sqla+sqlite:///<file>"` finds what it expects and `metadata.create_all` is a
 * no-op on a file we created first.
 */
const KOMBU_DDL = `
CREATE TABLE IF NOT EXISTS kombu_queue (
	id INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT, 
	name VARCHAR(200), 
	UNIQUE (name)
);
CREATE TABLE IF NOT EXISTS kombu_message (
	id INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT, 
	visible BOOLEAN, 
	timestamp DATETIME, 
	payload TEXT NOT NULL, 
	version SMALLINT NOT NULL, 
	queue_id INTEGER, 
	CONSTRAINT "FK_kombu_message_queue" FOREIGN KEY(queue_id) REFERENCES kombu_queue (id)
);
CREATE INDEX IF NOT EXISTS ix_kombu_message_timestamp_id ON kombu_message (timestamp, id);
CREATE INDEX IF NOT EXISTS ix_kombu_message_visible ON kombu_message (visible);
CREATE INDEX IF NOT EXISTS ix_kombu_message_timestamp ON kombu_message (timestamp);
`;

/**
 * Celeriac's own state lives beside kombu's tables rather than in extra columns, so kombu's ORM
 * (which selects and versions whole rows) never sees anything it did not create.
 *
 * Invariant: `hidden_until` is set exactly when the message row is `visible = 0` because of us
 * (claimed by a consumer, delayed, or nacked with a delay); a sweep turns expired ones visible
 * again. A row hidden by kombu's own consumer has no `hidden_until` and stays hidden, as in kombu.
 */
const CELERIAC_DDL = `
CREATE TABLE IF NOT EXISTS celeriac_message_state (
	message_id INTEGER NOT NULL PRIMARY KEY,
	priority INTEGER NOT NULL DEFAULT 0,
	hidden_until INTEGER,
	deliveries INTEGER NOT NULL DEFAULT 0,
	claim_token TEXT
);
CREATE INDEX IF NOT EXISTS celeriac_ix_state_hidden_until ON celeriac_message_state (hidden_until)
	WHERE hidden_until IS NOT NULL;
CREATE INDEX IF NOT EXISTS celeriac_ix_state_priority ON celeriac_message_state (priority DESC, message_id)
	WHERE priority > 0;
CREATE TABLE IF NOT EXISTS celeriac_dead_letter (
	id INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT,
	message_id INTEGER NOT NULL,
	queue TEXT NOT NULL,
	payload TEXT NOT NULL,
	reason TEXT NOT NULL,
	deliveries INTEGER NOT NULL,
	rejected_at INTEGER NOT NULL
);
`;

const BROKER_TABLES = ["kombu_queue", "kombu_message", "celeriac_message_state", "celeriac_dead_letter"];
const RESULT_TABLES = ["celeriac_taskmeta"];

const RESULT_DDL = `
CREATE TABLE IF NOT EXISTS celeriac_taskmeta (
	task_id TEXT NOT NULL PRIMARY KEY,
	status TEXT NOT NULL,
	meta TEXT NOT NULL,
	date_done TEXT,
	expires_at INTEGER
);
CREATE INDEX IF NOT EXISTS celeriac_ix_taskmeta_expires_at ON celeriac_taskmeta (expires_at)
	WHERE expires_at IS NOT NULL;
`;

export interface OpenOptions {
  path: string;
  busyTimeoutMs: number;
  schema: "broker" | "results";
}

/**
 * Opens a connection ready for several processes: WAL so readers never block the one writer,
 * and a busy timeout so a writer waits for the lock instead of failing at once.
 */
export function openDatabase(options: OpenOptions): Database.Database {
  let db: Database.Database;
  try {
    db = new Database(options.path);
  } catch (err) {
    throw new CeleriacError("connection", `cannot open SQLite database ${options.path}: ${(err as Error).message}`, { cause: err });
  }
  try {
    db.pragma(`busy_timeout = ${Math.max(0, Math.floor(options.busyTimeoutMs))}`);
    // A new file gives pages back (reclaimSpace): auto_vacuum can only be chosen before the
    // first table exists. It is a property of the file that kombu's SQLAlchemy transport
    // neither reads nor changes. A file created without it keeps its size until a VACUUM.
    const empty = (db.prepare("SELECT count(*) AS n FROM sqlite_master").get() as { n: number }).n === 0;
    if (empty && options.schema === "broker") db.pragma("auto_vacuum = INCREMENTAL");
    // After a checkpoint the WAL is cut back to this size instead of keeping its peak.
    db.pragma(`journal_size_limit = ${WAL_SIZE_LIMIT_BYTES}`);
    if (options.path !== ":memory:" && options.path !== "") enableWal(db, options.busyTimeoutMs);
    // WAL + NORMAL stays consistent across crashes; only the last commits may be lost on power
    // loss, the usual trade for a queue that commits per message.
    db.pragma("synchronous = NORMAL");
    // DDL in one IMMEDIATE transaction: two processes starting at once must not race CREATEs.
    // Skipped when every table is there already, so opening a file in use takes no write lock.
    const [ddl, tables] = options.schema === "broker" ? [KOMBU_DDL + CELERIAC_DDL, BROKER_TABLES] : [RESULT_DDL, RESULT_TABLES];
    const present = db
      .prepare(`SELECT count(*) AS n FROM sqlite_master WHERE type = 'table' AND name IN (${tables.map(() => "?").join(", ")})`)
      .get(...tables) as { n: number };
    if (present.n < tables.length) db.transaction(() => db.exec(ddl)).immediate();
  } catch (err) {
    db.close();
    throw new CeleriacError("connection", `cannot prepare SQLite database ${options.path}: ${(err as Error).message}`, { cause: err });
  }
  return db;
}

/**
 * WAL is a property of the file, so it is usually on already (set by the first opener) and nothing
 * needs changing. Switching a file to WAL needs a moment with no other connection in a
 * transaction; a Python worker polling the file (kombu's sqla transport, in rollback-journal mode
 * until someone switches it) can hold one, and SQLite reports that as SQLITE_BUSY at once rather
 * than through the busy timeout. So: retry within the busy timeout, then carry on without WAL,
 * which is slower under contention but still correct (every claim is an IMMEDIATE transaction).
 */
function enableWal(db: Database.Database, busyTimeoutMs: number): void {
  const deadline = Date.now() + busyTimeoutMs;
  for (;;) {
    try {
      if (String(db.pragma("journal_mode", { simple: true })).toLowerCase() === "wal") return;
      db.pragma("journal_mode = WAL");
      return;
    } catch (err) {
      if (!isBusy(err)) throw err;
      if (Date.now() >= deadline) return; // keep the file's current journal mode
      // A synchronous pause: opening is synchronous, like every better-sqlite3 call.
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 20);
    }
  }
}

const WAL_SIZE_LIMIT_BYTES = 4 * 1024 * 1024;
/** Free pages worth giving back: below this a drained queue keeps its space for the next burst. */
const RECLAIM_MIN_FREE_PAGES = 256;

/**
 * Gives the free pages of a drained burst back to the file system: `incremental_vacuum` on a
 * file with `auto_vacuum = INCREMENTAL`, then a checkpoint that truncates the WAL. Returns the
 * pages freed (0 when there was nothing worth it, or the file has no incremental auto_vacuum).
 * It takes the write lock briefly; a busy lock is the caller's to ignore.
 */
export function reclaimSpace(db: Database.Database): number {
  if (Number(db.pragma("auto_vacuum", { simple: true })) !== 2) return 0;
  const free = Number(db.pragma("freelist_count", { simple: true }));
  if (free < RECLAIM_MIN_FREE_PAGES) return 0;
  db.pragma("incremental_vacuum");
  db.pragma("wal_checkpoint(TRUNCATE)");
  return free;
}

/** True for SQLITE_BUSY / SQLITE_LOCKED: another process held the lock past the busy timeout. */
export function isBusy(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === "string" && (code.startsWith("SQLITE_BUSY") || code.startsWith("SQLITE_LOCKED"));
}
