import { CeleriacError } from "@celeriac/core";
import type { FleetState, TaskRecord } from "./state.js";

/**
 * Task history in a SQLite file (better-sqlite3, as @celeriac/sqlite uses), so a restart of the
 * dashboard keeps what it saw. Tasks changed since the last save are written in one transaction
 * every `intervalMs`; the table is trimmed to the state's task cap, so the file is bounded too.
 */
export interface TaskStore {
  /** Writes what changed now. */
  flush(): void;
  close(): Promise<void>;
}

interface Db {
  pragma(s: string): unknown;
  exec(sql: string): unknown;
  prepare(sql: string): { run(...a: unknown[]): unknown; all(...a: unknown[]): unknown[] };
  transaction<T extends (...a: never[]) => unknown>(fn: T): T;
  close(): void;
}

const SCHEMA = `
CREATE TABLE IF NOT EXISTS dashboard_task (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  uuid TEXT NOT NULL UNIQUE,
  task TEXT NOT NULL
);`;

export async function openTaskStore(
  path: string,
  state: FleetState,
  options: { intervalMs: number; log: (level: "info" | "warn" | "error", message: string) => void },
): Promise<TaskStore> {
  let Database: new (file: string) => Db;
  try {
    Database = ((await import("better-sqlite3")) as { default: new (file: string) => Db }).default;
  } catch (err) {
    throw new CeleriacError("unsupported", `--persist needs better-sqlite3: npm install better-sqlite3 (${err instanceof Error ? err.message : String(err)})`);
  }
  const db = new Database(path);
  db.pragma("journal_mode = WAL");
  db.exec(SCHEMA);
  const rows = db.prepare("SELECT task FROM (SELECT seq, task FROM dashboard_task ORDER BY seq DESC LIMIT ?) ORDER BY seq").all(state.maxTasks) as {
    task: string;
  }[];
  let restored = 0;
  for (const row of rows) {
    try {
      state.restoreTask(JSON.parse(row.task) as TaskRecord);
      restored++;
    } catch {
      // a row we cannot read is skipped, not fatal: the rest of the history still loads
    }
  }
  if (restored > 0) options.log("info", `restored ${restored} tasks from ${path}`);

  // A task seen again keeps its first position (ON CONFLICT updates the row in place).
  const upsert = db.prepare("INSERT INTO dashboard_task (uuid, task) VALUES (?, ?) ON CONFLICT(uuid) DO UPDATE SET task = excluded.task");
  const trim = db.prepare("DELETE FROM dashboard_task WHERE seq <= (SELECT seq FROM dashboard_task ORDER BY seq DESC LIMIT 1 OFFSET ?)");
  const dirty = new Map<string, TaskRecord>();
  const unsubscribe = state.subscribe((c) => {
    if (c.kind === "task") dirty.set(c.task.uuid, c.task);
  });
  const save = db.transaction(() => {
    for (const t of dirty.values()) upsert.run(t.uuid, JSON.stringify(t));
    dirty.clear();
    trim.run(state.maxTasks);
  });
  const flush = (): void => {
    if (dirty.size === 0) return;
    try {
      save();
    } catch (err) {
      options.log("error", `could not save task history to ${path}: ${err instanceof Error ? err.message : String(err)}`);
    }
  };
  const timer = setInterval(flush, options.intervalMs);
  timer.unref();
  return {
    flush,
    async close() {
      clearInterval(timer);
      unsubscribe();
      flush();
      db.close();
    },
  };
}
