import { CeleriacError, type Client, type SendOptions } from "@celeriac/core";
import { assertKnownOptions } from "@celeriac/core/transport";
import type { EntryState, LeaderLease } from "./lease.js";
import type { BeatSchedule, ResolvedEntry } from "./schedule.js";
import { beatTaskId } from "./task-id.js";
import type { Zone } from "./zone.js";

export interface BeatOptions {
  schedule: BeatSchedule;
  /** Sends the runs; the beat never closes it (whoever creates a connection closes it). */
  client: Client;
  /** Leader election and state; the beat releases it on stop but never closes it. */
  lease: LeaderLease;
  /** Name in the task ids (use the lease's name). Default "celery". */
  name?: string;
  /** Longest sleep between two looks at the schedule (Celery's beat_max_loop_interval). Default 300 s. */
  maxIntervalMs?: number;
  /** One line per event (sent run, leadership, missed runs, errors). Default: stderr. */
  log?: (line: string) => void;
}

const KNOWN_OPTIONS = ["schedule", "client", "lease", "name", "maxIntervalMs", "log"] as const;
/** Headers every run carries: which entry and which due time it is (ISO, UTC). */
export const BEAT_ENTRY_HEADER = "celeriac_beat_entry";
export const BEAT_DUE_HEADER = "celeriac_beat_due";

export type BeatEvent =
  | { type: "sent"; entry: string; task: string; taskId: string; dueAt: number; late: boolean }
  | { type: "missed"; entry: string; dueAts: number[] }
  | { type: "leader"; leader: boolean; epoch: number | null }
  | { type: "error"; error: CeleriacError };

export interface Beat {
  readonly name: string;
  readonly schedule: BeatSchedule;
  readonly isLeader: boolean;
  /** Runs until stop(); rejects only on a programming error, broker errors are logged and retried. */
  run(): Promise<void>;
  /** Stops and, when leading, releases the lease at once so another replica takes over. */
  stop(): Promise<void>;
  subscribe(listener: (event: BeatEvent) => void): () => void;
}

/** The instant as ISO 8601 with the zone's offset, e.g. 2026-03-08T03:00:00-04:00. */
export function formatInZone(ms: number, zone: Zone): string {
  const offset = zone.offsetMs(ms);
  const wall = new Date(ms + offset)
    .toISOString()
    .replace(/\.000Z$/, "")
    .replace(/Z$/, "");
  if (offset === 0 && zone.name.toUpperCase().includes("UTC")) return `${wall}Z`;
  const abs = Math.abs(offset) / 60_000;
  return `${wall}${offset < 0 ? "-" : "+"}${String(Math.floor(abs / 60)).padStart(2, "0")}:${String(abs % 60).padStart(2, "0")}`;
}

/** The next `count` due times of an entry after `fromMs` (what `celeriac beat --dry-run` prints). */
export function nextRuns(entry: ResolvedEntry, zone: Zone, fromMs: number, count: number): number[] {
  const out: number[] = [];
  let t = fromMs;
  for (let i = 0; i < count; i++) {
    t = entry.schedule.nextAfter(t, zone);
    out.push(t);
  }
  return out;
}

class LeaseLost extends Error {}

/** Due times looked at per entry and tick (a 1-second schedule's 28 hours). */
const MAX_DUES_PER_TICK = 100_000;

export function createBeat(options: BeatOptions): Beat {
  if (options === null || typeof options !== "object") throw new CeleriacError("invalid_argument", "createBeat: options are required");
  assertKnownOptions("createBeat", options, KNOWN_OPTIONS);
  const { schedule, client, lease, name = "celery", maxIntervalMs = 300_000 } = options;
  const log = options.log ?? ((line: string) => process.stderr.write(`${line}\n`));
  if (!(maxIntervalMs > 0)) throw new CeleriacError("invalid_argument", "createBeat: maxIntervalMs must be positive");
  const zone = schedule.zone;
  const listeners = new Set<(e: BeatEvent) => void>();
  const emit = (e: BeatEvent) => {
    for (const l of listeners) l(e);
  };
  // Renew well before expiry; a follower looks four times per lease.
  const renewEveryMs = lease.leaseMs / 3;
  const pollMs = lease.leaseMs / 4;
  // A send needs this much lease left, so a slow send cannot outlive the lease.
  const marginMs = Math.min(1000, lease.leaseMs / 5);

  let epoch: number | null = null;
  let validUntil = 0;
  let renewAt = 0;
  let state: Record<string, EntryState> = {};
  let stopping = false;
  let wake: (() => void) | null = null;
  let running: Promise<void> | null = null;

  const becomeFollower = (why: string) => {
    if (epoch === null) return;
    log(`beat: no longer leader (epoch ${epoch}): ${why}`);
    epoch = null;
    emit({ type: "leader", leader: false, epoch: null });
  };

  const save = async (entry: string, s: EntryState) => {
    if (epoch === null || !(await lease.saveState(epoch, entry, s))) throw new LeaseLost("another replica holds the lease now (fenced state write refused)");
    state[entry] = s;
  };

  const send = async (entry: ResolvedEntry, dueAt: number, late: boolean) => {
    if (Date.now() >= validUntil - marginMs) throw new LeaseLost("the lease is about to expire before the send");
    const taskId = beatTaskId(name, entry.name, dueAt);
    const o = entry.options;
    const send: SendOptions = {
      taskId,
      headers: { ...o.headers, [BEAT_ENTRY_HEADER]: entry.name, [BEAT_DUE_HEADER]: new Date(dueAt).toISOString() },
    };
    if (o.queue !== undefined) send.queue = o.queue;
    if (o.routingKey !== undefined) send.routingKey = o.routingKey;
    if (o.priority !== undefined) send.priority = o.priority;
    if (o.expiresMs !== undefined) send.expires = o.expiresMs;
    await client.sendTask(entry.taskName, { ...send, args: [...entry.args], kwargs: { ...entry.kwargs } });
    log(
      `beat: sent ${entry.taskName}[${taskId}] entry=${JSON.stringify(entry.name)} due=${formatInZone(dueAt, zone)}${late ? ` (late by ${Math.round((Date.now() - dueAt) / 1000)} s)` : ""}`,
    );
    emit({ type: "sent", entry: entry.name, task: entry.taskName, taskId, dueAt, late });
  };

  /** Sends what is due; returns the next due time over all entries. */
  const tick = async (): Promise<number> => {
    let next = Infinity;
    for (const entry of schedule.entries) {
      const now = Date.now();
      const desc = entry.schedule.toString();
      let st = state[entry.name];
      if (!st || st.schedule !== desc) {
        // First sight of this entry (or its schedule changed): runs count from now, as in Celery.
        await save(entry.name, { lastDueAt: now, schedule: desc });
        next = Math.min(next, entry.schedule.nextAfter(now, zone));
        continue;
      }
      if (st.pendingDueAt !== undefined) {
        // A leader (a previous one, or this one before a broker error) stopped between deciding to
        // send this run and recording it: it may or may not have gone out. Re-send it with the
        // same task id so a receiver can tell.
        log(
          `beat: re-sending the run of ${JSON.stringify(entry.name)} due ${formatInZone(st.pendingDueAt, zone)} whose earlier send may not have completed (same task id)`,
        );
        await send(entry, st.pendingDueAt, true);
        st = { lastDueAt: st.pendingDueAt, schedule: desc };
        await save(entry.name, st);
      }
      const dues: number[] = [];
      const advance = (after: number) => {
        const d = entry.schedule.nextAfter(after, zone);
        // A schedule that does not move forward would send the same run forever.
        if (!(d > after))
          throw new CeleriacError("internal", `schedule of ${JSON.stringify(entry.name)} does not advance after ${new Date(after).toISOString()}`);
        return d;
      };
      for (let d = advance(st.lastDueAt); d <= now && dues.length < MAX_DUES_PER_TICK; d = advance(d)) dues.push(d);
      let toSend: number[];
      // After a very long gap the due times are walked in batches; only the batch that reaches
      // "now" may send, so a policy still sends at most what it promises.
      if (dues.length === MAX_DUES_PER_TICK) toSend = [];
      else if (entry.missed === "all") toSend = dues.slice(-1000);
      else if (entry.missed === "skip") toSend = dues.slice(-1).filter((d) => now - d <= entry.graceMs);
      else toSend = dues.slice(-1);
      const missed = dues.filter((d) => !toSend.includes(d));
      if (missed.length > 0) {
        log(
          `beat: ${missed.length} run${missed.length > 1 ? "s" : ""} of ${JSON.stringify(entry.name)} missed (${formatInZone(missed[0]!, zone)}${missed.length > 1 ? ` .. ${formatInZone(missed[missed.length - 1]!, zone)}` : ""}), not sent (missed: ${JSON.stringify(entry.missed)})`,
        );
        emit({ type: "missed", entry: entry.name, dueAts: missed });
      }
      for (const d of toSend) {
        await save(entry.name, { lastDueAt: st.lastDueAt, pendingDueAt: d, schedule: desc });
        await send(entry, d, now - d > 1000 || dues.length > 1);
        st = { lastDueAt: d, schedule: desc };
        await save(entry.name, st);
      }
      if (toSend.length === 0 && dues.length > 0) {
        st = { lastDueAt: dues[dues.length - 1]!, schedule: desc };
        await save(entry.name, st);
      }
      next = Math.min(next, entry.schedule.nextAfter(st.lastDueAt, zone));
    }
    return next;
  };

  const sleep = (ms: number) =>
    new Promise<void>((resolve) => {
      const timer = setTimeout(done, Math.max(0, ms));
      function done() {
        clearTimeout(timer);
        wake = null;
        resolve();
      }
      wake = done;
    });

  const loop = async () => {
    while (!stopping) {
      let nextDue = Infinity;
      try {
        if (epoch === null) {
          const t0 = Date.now();
          const won = await lease.tryAcquire();
          if (won !== null && !stopping) {
            epoch = won;
            validUntil = t0 + lease.leaseMs;
            renewAt = t0 + renewEveryMs;
            state = await lease.loadState();
            log(`beat: leader now (epoch ${won}, ${lease.kind} lease of ${lease.leaseMs} ms)`);
            emit({ type: "leader", leader: true, epoch: won });
          }
        } else if (Date.now() >= renewAt) {
          const t0 = Date.now();
          if (await lease.renew(epoch)) {
            validUntil = t0 + lease.leaseMs;
            renewAt = t0 + renewEveryMs;
          } else becomeFollower("the lease was lost (not renewed in time)");
        }
        if (epoch !== null && !stopping) nextDue = await tick();
      } catch (err) {
        if (err instanceof LeaseLost) becomeFollower(err.message);
        else {
          const e = CeleriacError.from(err, "connection");
          log(`beat: error: ${e.message}`);
          emit({ type: "error", error: e });
          if (epoch !== null && Date.now() >= validUntil) becomeFollower("the lease expired while the broker was failing");
        }
      }
      if (stopping) break;
      const now = Date.now();
      const wait = epoch === null ? pollMs : Math.min(nextDue - now, renewAt - now, maxIntervalMs);
      await sleep(Math.max(wait, 5));
    }
    if (epoch !== null) {
      const e = epoch;
      epoch = null;
      try {
        await lease.release(e);
        log(`beat: released the lease (epoch ${e}) for another replica to take over`);
      } catch (err) {
        log(`beat: could not release the lease, it expires in at most ${lease.leaseMs} ms: ${CeleriacError.from(err).message}`);
      }
      emit({ type: "leader", leader: false, epoch: null });
    }
  };

  return {
    name,
    schedule,
    get isLeader() {
      return epoch !== null;
    },
    run() {
      running ??= loop();
      return running;
    },
    async stop() {
      stopping = true;
      wake?.();
      await running;
    },
    subscribe(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
  };
}
