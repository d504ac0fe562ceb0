/** What the leader remembers per entry, in the broker, for whoever leads next. */
export interface EntryState {
  /** The due time (ms) of the last run sent, or the time the entry was first seen. */
  lastDueAt: number;
  /** A run being sent: set before the send, cleared after; a new leader re-sends it with the same id. */
  pendingDueAt?: number;
  /** The entry's schedule when this state was written; a changed schedule starts afresh. */
  schedule: string;
}

/**
 * Leader election plus the leader's state, on what the broker has natively. One holder at a time
 * per beat name; every acquisition gets a larger fencing epoch, and `saveState` only succeeds for
 * the current epoch, so a leader that lost its lease (paused, partitioned) cannot overwrite the
 * state its successor works from.
 */
export interface LeaderLease {
  /** Broker kind, for logs ("sqlite", "redis", ...). */
  readonly kind: string;
  /** A leader that stops renewing loses the lease after this long. */
  readonly leaseMs: number;
  /** Tries once; the fencing epoch when this replica became (or still is) leader, else null. */
  tryAcquire(): Promise<number | null>;
  /** Extends the lease; false when it was lost. */
  renew(epoch: number): Promise<boolean>;
  /** Gives the lease up at once so another replica takes over without waiting for it to expire. */
  release(epoch: number): Promise<void>;
  loadState(): Promise<Record<string, EntryState>>;
  /** Writes one entry's state; false (nothing written) when `epoch` is no longer the current one. */
  saveState(epoch: number, entry: string, state: EntryState): Promise<boolean>;
  close(): Promise<void>;
}

export interface LeaseOptions {
  /** Lease key: replicas with the same name on the same broker elect one leader. Default "celery". */
  name?: string;
  /** Lease duration. Default 10 s: a dead leader is replaced within leaseMs plus one poll (leaseMs / 4). */
  leaseMs?: number;
  /** This replica's id in the lease (logs). Default hostname:pid. */
  holder?: string;
}

export const DEFAULT_LEASE_MS = 10_000;
