import { CeleriacError } from "@celeriac/core";
import { assertKnownOptions } from "@celeriac/core/transport";
import type Database from "better-sqlite3";
import { type EntryState, type LeaderLease, type LeaseOptions } from "../lease.js";
import { checkLeaseOptions } from "./common.js";

export interface SqliteLeaseOptions extends LeaseOptions {
  /** The broker's SQLite file: the lease row and the state live in the same file as the queue. */
  path: string;
  /** How long a write waits for the file's lock. Default 5 s. */
  busyTimeoutMs?: number;
}

const KNOWN = ["path", "busyTimeoutMs", "name", "leaseMs", "holder"] as const;

/**
 * A lease row in the broker's SQLite file. Replicas share the file, hence the machine and its
 * clock, so expiry is compared with Date.now(); every check-and-set runs in one IMMEDIATE
 * transaction, which SQLite serialises across processes.
 */
export async function createSqliteLease(options: SqliteLeaseOptions): Promise<LeaderLease> {
  assertKnownOptions("createSqliteLease", options, KNOWN);
  const { name, leaseMs, holder } = checkLeaseOptions(options);
  let Driver: typeof Database;
  try {
    Driver = (await import("better-sqlite3")).default;
  } catch (err) {
    throw new CeleriacError("unsupported", "the SQLite lease needs better-sqlite3: npm install better-sqlite3", { cause: err });
  }
  const db = new Driver(options.path, { timeout: options.busyTimeoutMs ?? 5000 });
  db.exec(`
    CREATE TABLE IF NOT EXISTS celeriac_beat_lease (
      name TEXT PRIMARY KEY, holder TEXT NOT NULL, epoch INTEGER NOT NULL, expires_at INTEGER NOT NULL);
    CREATE TABLE IF NOT EXISTS celeriac_beat_state (
      name TEXT NOT NULL, entry TEXT NOT NULL, state TEXT NOT NULL, PRIMARY KEY (name, entry));
  `);
  type Row = { holder: string; epoch: number; expires_at: number };
  const get = db.prepare<[string], Row>("SELECT holder, epoch, expires_at FROM celeriac_beat_lease WHERE name = ?");
  const insert = db.prepare("INSERT INTO celeriac_beat_lease (name, holder, epoch, expires_at) VALUES (?, ?, 1, ?)");
  const take = db.prepare("UPDATE celeriac_beat_lease SET holder = ?, epoch = epoch + 1, expires_at = ? WHERE name = ?");
  const extend = db.prepare("UPDATE celeriac_beat_lease SET expires_at = ? WHERE name = ? AND holder = ? AND epoch = ?");
  const drop = db.prepare("UPDATE celeriac_beat_lease SET expires_at = 0 WHERE name = ? AND holder = ? AND epoch = ?");
  const states = db.prepare<[string], { entry: string; state: string }>("SELECT entry, state FROM celeriac_beat_state WHERE name = ?");
  const upsert = db.prepare(
    "INSERT INTO celeriac_beat_state (name, entry, state) VALUES (?, ?, ?) ON CONFLICT (name, entry) DO UPDATE SET state = excluded.state",
  );

  const acquire = db.transaction((): number | null => {
    const now = Date.now();
    const row = get.get(name);
    if (!row) {
      insert.run(name, holder, now + leaseMs);
      return 1;
    }
    if (row.holder === holder && row.expires_at > now) {
      extend.run(now + leaseMs, name, holder, row.epoch);
      return row.epoch;
    }
    if (row.expires_at > now) return null;
    take.run(holder, now + leaseMs, name);
    return row.epoch + 1;
  });
  const write = db.transaction((epoch: number, entry: string, state: EntryState): boolean => {
    const row = get.get(name);
    if (!row || row.epoch !== epoch || row.holder !== holder) return false;
    upsert.run(name, entry, JSON.stringify(state));
    return true;
  });

  return {
    kind: "sqlite",
    leaseMs,
    async tryAcquire() {
      return acquire.immediate();
    },
    async renew(epoch) {
      return extend.run(Date.now() + leaseMs, name, holder, epoch).changes === 1;
    },
    async release(epoch) {
      drop.run(name, holder, epoch);
    },
    async loadState() {
      const out: Record<string, EntryState> = {};
      for (const r of states.all(name)) out[r.entry] = JSON.parse(r.state) as EntryState;
      return out;
    },
    async saveState(epoch, entry, state) {
      return write.immediate(epoch, entry, state);
    },
    async close() {
      db.close();
    },
  };
}
