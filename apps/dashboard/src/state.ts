/**
 * The fleet as seen through Celery's event stream: workers and tasks, kept in memory within a
 * fixed bound. The merge rules follow Celery's own `celery/events/state.py` (`State`, `Task.event`)
 * so that a task's state reads the same here as in Flower or `celery events`:
 * - an event whose state logically happens before the task's current one (by
 *   `celery/states.py` precedence) only fills in the fields it owns (`Task.merge_rules`), it does not
 *   move the state back; RETRY always applies, because a retried task goes round again;
 * - a worker is alive while its last heartbeat is younger than `freq * 2` (Celery's
 *   `HEARTBEAT_EXPIRE_WINDOW` of 200 %), and goes offline at `worker-offline`.
 */

/** celery/states.py `PRECEDENCE`, most final first. Unknown states rank with `None`. */
const PRECEDENCE = ["SUCCESS", "FAILURE", null, "REVOKED", "STARTED", "RECEIVED", "REJECTED", "RETRY", "PENDING"] as const;
const NONE_RANK = PRECEDENCE.indexOf(null);

function precedence(state: string): number {
  const i = (PRECEDENCE as readonly (string | null)[]).indexOf(state);
  return i < 0 ? NONE_RANK : i;
}

/** States after which nothing more happens to a task (Celery's READY_STATES, plus REJECTED). */
const FINISHED = new Set(["SUCCESS", "FAILURE", "REVOKED", "REJECTED"]);

export const TASK_STATES = ["PENDING", "RECEIVED", "STARTED", "SUCCESS", "FAILURE", "RETRY", "REVOKED", "REJECTED"] as const;

const EVENT_STATE: Record<string, string> = {
  "task-sent": "PENDING",
  "task-received": "RECEIVED",
  "task-started": "STARTED",
  "task-succeeded": "SUCCESS",
  "task-failed": "FAILURE",
  "task-retried": "RETRY",
  "task-revoked": "REVOKED",
  "task-rejected": "REJECTED",
};

/** The time field each event sets on the task (Celery's Task has one per event). */
const EVENT_TIME_FIELD: Record<string, keyof TaskTimes> = {
  "task-sent": "sent",
  "task-received": "received",
  "task-started": "started",
  "task-succeeded": "succeeded",
  "task-failed": "failed",
  "task-retried": "retried",
  "task-revoked": "revoked",
  "task-rejected": "rejected",
};

/** celery/events/state.py `Task.merge_rules`: what an out-of-order event may still fill in. */
const MERGE_FIELDS: Record<string, readonly string[]> = {
  RECEIVED: ["name", "args", "kwargs", "parent_id", "root_id", "retries", "eta", "expires"],
  PENDING: ["name", "args", "kwargs", "parent_id", "root_id", "retries", "eta", "expires"],
};

/** Fields a task event may carry, copied onto the task as they come. */
const TASK_FIELDS = [
  "name",
  "args",
  "kwargs",
  "result",
  "exception",
  "traceback",
  "runtime",
  "retries",
  "eta",
  "expires",
  "root_id",
  "parent_id",
  "exchange",
  "routing_key",
  "client",
] as const;

export interface TaskTimes {
  sent: number | null;
  received: number | null;
  started: number | null;
  succeeded: number | null;
  failed: number | null;
  retried: number | null;
  revoked: number | null;
  rejected: number | null;
}

/** One entry of a task's timeline: every event seen for it, in arrival order. */
export interface TimelineEntry {
  type: string;
  timestamp: number;
  hostname: string;
}

/** A task as Flower's `tasks.as_dict` reports it (plus the timeline), times in epoch seconds. */
export interface TaskRecord extends TaskTimes {
  uuid: string;
  name: string | null;
  state: string;
  args: string | null;
  kwargs: string | null;
  result: string | null;
  exception: string | null;
  traceback: string | null;
  runtime: number | null;
  retries: number | null;
  eta: string | null;
  expires: string | null;
  root_id: string | null;
  parent_id: string | null;
  exchange: string | null;
  routing_key: string | null;
  client: string | null;
  /** Hostname of the worker that last reported on the task. */
  worker: string | null;
  /** Time of the latest event. */
  timestamp: number;
  clock: number;
  timeline: TimelineEntry[];
}

export interface WorkerRecord {
  hostname: string;
  /** "python" for Celery's `py-celery`, "typescript" for `celeriac`, else the sw_ident as sent. */
  language: string;
  sw_ident: string | null;
  sw_ver: string | null;
  sw_sys: string | null;
  pid: number | null;
  freq: number;
  loadavg: number[] | null;
  /** From heartbeats: tasks running now, and tasks accepted since the worker started. */
  active: number;
  processed: number;
  /** Counted here from task events. */
  succeeded: number;
  failed: number;
  /** Epoch seconds of the last few heartbeats, newest last. */
  heartbeats: number[];
  lastHeartbeat: number | null;
  offlineAt: number | null;
  clock: number;
  /** Filled by remote control (`inspect`), null until a reply came. */
  concurrency: number | null;
  registered: string[] | null;
  activeTasks: unknown[] | null;
  reserved: unknown[] | null;
  queues: string[] | null;
  stats: Record<string, unknown> | null;
  /** When the last remote-control reply came (epoch s). */
  inspectedAt: number | null;
}

/** Celery's `HEARTBEAT_EXPIRE_WINDOW`: a worker is gone after 200 % of its heartbeat interval. */
const HEARTBEAT_EXPIRE_WINDOW = 2;
const TIMELINE_MAX = 64;
const HEARTBEATS_KEPT = 5;
/** Seconds of throughput kept for the chart. */
export const THROUGHPUT_SECONDS = 600;

export interface TaskFilter {
  state?: string | undefined;
  name?: string | undefined;
  worker?: string | undefined;
  /** Epoch seconds, on the received (else first seen) time. */
  receivedFrom?: number | undefined;
  receivedTo?: number | undefined;
  /** A substring of the id, args or kwargs. */
  search?: string | undefined;
}

export interface TaskPage {
  total: number;
  tasks: TaskRecord[];
}

export interface FleetStateOptions {
  /**
   * Most tasks kept. Beyond it the oldest finished tasks are evicted (then the oldest of any
   * state, so the bound holds even when every task is stuck). Default 100,000, about Flower's
   * `max_tasks` order of magnitude (10,000) times ten, at a few hundred bytes per task.
   */
  maxTasks?: number;
  /** Clock for liveness and the chart, epoch ms; tests pass their own. */
  now?: () => number;
  /**
   * A worker that answered remote control this recently counts as online even without
   * heartbeats (a worker started without -E). Default 15 s, three of the dashboard's polls.
   */
  inspectAliveMs?: number;
}

/**
 * Marks a record dropped by eviction. Lists walk the order array and skip marked records with a
 * property read instead of a Map lookup per task (which cost 200 ns a task at 100,000 tasks).
 * A symbol key stays out of JSON (the API, the SQLite file).
 */
const GONE: unique symbol = Symbol("evicted");
type Kept = TaskRecord & { [GONE]?: boolean };

export type StateChange = { kind: "task"; task: TaskRecord } | { kind: "worker"; worker: WorkerRecord };

function str(v: unknown): string | null {
  return typeof v === "string" ? v : v === null || v === undefined ? null : String(v);
}

function num(v: unknown): number | null {
  const n = typeof v === "number" ? v : typeof v === "string" ? Number(v) : NaN;
  return Number.isFinite(n) ? n : null;
}

export function languageOf(swIdent: string | null): string {
  if (swIdent === "py-celery") return "python";
  if (swIdent === "celeriac") return "typescript";
  return swIdent ?? "unknown";
}

export function emptyWorker(hostname: string): WorkerRecord {
  return {
    hostname,
    language: "unknown",
    sw_ident: null,
    sw_ver: null,
    sw_sys: null,
    pid: null,
    freq: 2,
    loadavg: null,
    active: 0,
    processed: 0,
    succeeded: 0,
    failed: 0,
    heartbeats: [],
    lastHeartbeat: null,
    offlineAt: null,
    clock: 0,
    concurrency: null,
    registered: null,
    activeTasks: null,
    reserved: null,
    queues: null,
    stats: null,
    inspectedAt: null,
  };
}

export function emptyTask(uuid: string, timestamp: number): TaskRecord {
  return {
    uuid,
    name: null,
    state: "PENDING",
    sent: null,
    received: null,
    started: null,
    succeeded: null,
    failed: null,
    retried: null,
    revoked: null,
    rejected: null,
    args: null,
    kwargs: null,
    result: null,
    exception: null,
    traceback: null,
    runtime: null,
    retries: null,
    eta: null,
    expires: null,
    root_id: null,
    parent_id: null,
    exchange: null,
    routing_key: null,
    client: null,
    worker: null,
    timestamp,
    clock: 0,
    timeline: [],
  };
}

/**
 * Workers and tasks from events. Tasks live in a Map (lookup by id) and in an array in order of
 * first sight (newest-first pages walk it from the end and stop once the page is full, so the
 * first pages cost the same at 100 tasks or 100,000).
 */
export class FleetState {
  readonly maxTasks: number;
  private readonly now: () => number;
  private readonly inspectAliveMs: number;
  private readonly tasks = new Map<string, TaskRecord>();
  /** Tasks in order of first sight; evicted ones are dropped at the next compaction. */
  private order: Kept[] = [];
  /** Entries before it are all evicted. */
  private head = 0;
  private readonly workers = new Map<string, WorkerRecord>();
  private readonly listeners = new Set<(change: StateChange) => void>();
  /** succeeded/failed per second, a ring indexed by epoch second. */
  private readonly tpSucceeded = new Uint32Array(THROUGHPUT_SECONDS);
  private readonly tpFailed = new Uint32Array(THROUGHPUT_SECONDS);
  private readonly tpSecond = new Float64Array(THROUGHPUT_SECONDS);
  /** Events taken in since start, by type; tasks evicted. */
  readonly eventCounts = new Map<string, number>();
  evicted = 0;

  constructor(options: FleetStateOptions = {}) {
    this.maxTasks = options.maxTasks ?? 100_000;
    if (!Number.isInteger(this.maxTasks) || this.maxTasks < 1) throw new RangeError("maxTasks must be a positive integer");
    this.now = options.now ?? Date.now;
    this.inspectAliveMs = options.inspectAliveMs ?? 15_000;
  }

  get taskCount(): number {
    return this.tasks.size;
  }

  subscribe(listener: (change: StateChange) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  private emit(change: StateChange): void {
    for (const l of this.listeners) {
      try {
        l(change);
      } catch {
        // a failing listener (a closed SSE stream) must not stop ingestion
      }
    }
  }

  /** Takes in one Celery event (a flat object with `type`). Unknown or malformed ones are counted and ignored. */
  ingest(event: Record<string, unknown>): void {
    const type = event["type"];
    if (typeof type !== "string") return;
    this.eventCounts.set(type, (this.eventCounts.get(type) ?? 0) + 1);
    if (type.startsWith("task-")) this.taskEvent(type, event);
    else if (type.startsWith("worker-")) this.workerEvent(type, event);
  }

  private worker(hostname: string): WorkerRecord {
    let w = this.workers.get(hostname);
    if (!w) {
      w = emptyWorker(hostname);
      this.workers.set(hostname, w);
    }
    return w;
  }

  private workerEvent(type: string, e: Record<string, unknown>): void {
    const hostname = str(e["hostname"]);
    if (!hostname) return;
    const w = this.worker(hostname);
    const ts = num(e["timestamp"]) ?? this.now() / 1000;
    if (type === "worker-online" || type === "worker-heartbeat" || type === "worker-offline") {
      w.sw_ident = str(e["sw_ident"]) ?? w.sw_ident;
      w.sw_ver = str(e["sw_ver"]) ?? w.sw_ver;
      w.sw_sys = str(e["sw_sys"]) ?? w.sw_sys;
      w.language = languageOf(w.sw_ident);
      w.pid = num(e["pid"]) ?? w.pid;
      w.freq = num(e["freq"]) ?? w.freq;
      w.active = num(e["active"]) ?? w.active;
      w.processed = num(e["processed"]) ?? w.processed;
      w.clock = num(e["clock"]) ?? w.clock;
      const load = e["loadavg"];
      if (Array.isArray(load)) w.loadavg = load.map((x) => num(x) ?? 0);
    }
    if (type === "worker-offline") {
      w.offlineAt = ts;
    } else {
      w.offlineAt = null;
      // Use our receipt time for liveness: worker clocks may be skewed (Celery uses local_received too).
      const received = this.now() / 1000;
      w.lastHeartbeat = received;
      w.heartbeats.push(received);
      if (w.heartbeats.length > HEARTBEATS_KEPT) w.heartbeats.shift();
    }
    this.emit({ kind: "worker", worker: w });
  }

  /**
   * One copy of each hostname and task name: every event brings its own copy of the same few
   * strings, and each task keeps several (worker, timeline, name). Bounded, so a flood of
   * distinct names cannot grow it.
   */
  private readonly interned = new Map<string, string>();
  private intern(v: string | null): string | null {
    if (v === null) return null;
    const known = this.interned.get(v);
    if (known !== undefined) return known;
    if (this.interned.size < 10_000) this.interned.set(v, v);
    return v;
  }

  private taskEvent(type: string, e: Record<string, unknown>): void {
    const uuid = str(e["uuid"]);
    if (!uuid) return;
    const ts = num(e["timestamp"]) ?? this.now() / 1000;
    const hostname = this.intern(str(e["hostname"]));
    let t = this.tasks.get(uuid);
    if (!t) {
      t = emptyTask(uuid, ts);
      (t as Kept)[GONE] = false;
      this.tasks.set(uuid, t);
      this.order.push(t);
      if (this.tasks.size > this.maxTasks) this.evict();
    }
    const state = EVENT_STATE[type];
    const timeField = EVENT_TIME_FIELD[type];
    if (timeField) t[timeField] = ts;
    if (t.timeline.length < TIMELINE_MAX) t.timeline.push({ type, timestamp: ts, hostname: hostname ?? "" });
    const fields =
      state !== undefined && state !== "RETRY" && t.state !== "RETRY" && t.timeline.length > 1 && precedence(state) > precedence(t.state)
        ? (MERGE_FIELDS[state] ?? [])
        : null;
    if (fields === null) {
      if (state !== undefined) t.state = state;
      for (const f of TASK_FIELDS) if (f in e) this.setField(t, f, e[f]);
      if (hostname && type !== "task-sent") t.worker = hostname;
      t.timestamp = Math.max(t.timestamp, ts);
      t.clock = num(e["clock"]) ?? t.clock;
    } else {
      // Happened before the current state: only fill in what that event owns and is still unset.
      for (const f of fields as readonly (typeof TASK_FIELDS)[number][])
        if (f in e && (t as unknown as Record<string, unknown>)[f] == null) this.setField(t, f, e[f]);
      if (hostname && t.worker === null) t.worker = hostname;
    }
    if (hostname && (type === "task-succeeded" || type === "task-failed")) {
      const w = this.worker(hostname);
      if (type === "task-succeeded") w.succeeded++;
      else w.failed++;
      this.countThroughput(type === "task-succeeded", ts);
    }
    if (this.listeners.size > 0) this.emit({ kind: "task", task: t });
  }

  private setField(t: TaskRecord, field: (typeof TASK_FIELDS)[number], value: unknown): void {
    const rec = t as unknown as Record<string, unknown>;
    if (field === "runtime" || field === "retries") rec[field] = num(value);
    else if (field === "name") rec[field] = this.intern(str(value));
    else rec[field] = str(value);
  }

  private countThroughput(succeeded: boolean, ts: number): void {
    const second = Math.floor(ts);
    const i = second % THROUGHPUT_SECONDS;
    if (this.tpSecond[i] !== second) {
      this.tpSecond[i] = second;
      this.tpSucceeded[i] = 0;
      this.tpFailed[i] = 0;
    }
    if (succeeded) this.tpSucceeded[i]!++;
    else this.tpFailed[i]!++;
  }

  /** Succeeded and failed per second for the last `seconds` whole seconds, oldest first. */
  throughput(seconds = 120): { t: number[]; succeeded: number[]; failed: number[] } {
    const n = Math.min(Math.max(1, Math.floor(seconds)), THROUGHPUT_SECONDS);
    const end = Math.floor(this.now() / 1000);
    const out = { t: [] as number[], succeeded: [] as number[], failed: [] as number[] };
    for (let s = end - n + 1; s <= end; s++) {
      const i = ((s % THROUGHPUT_SECONDS) + THROUGHPUT_SECONDS) % THROUGHPUT_SECONDS;
      const hit = this.tpSecond[i] === s;
      out.t.push(s);
      out.succeeded.push(hit ? this.tpSucceeded[i]! : 0);
      out.failed.push(hit ? this.tpFailed[i]! : 0);
    }
    return out;
  }

  /**
   * Drops tasks until 1 % under the cap: the oldest finished ones first, then (if everything left
   * is unfinished) the oldest of any state. Evicting in a batch keeps the cost per event O(1)
   * on average instead of a walk per task.
   */
  private evict(): void {
    const target = Math.max(0, this.maxTasks - Math.max(1, Math.floor(this.maxTasks / 100)));
    for (const finishedOnly of [true, false]) {
      for (let i = this.head; i < this.order.length && this.tasks.size > target; i++) {
        const t = this.order[i]!;
        if (t[GONE] || (finishedOnly && !FINISHED.has(t.state))) continue;
        t[GONE] = true;
        this.tasks.delete(t.uuid);
        this.evicted++;
      }
      if (this.tasks.size <= target) break;
    }
    while (this.head < this.order.length && this.order[this.head]![GONE]) this.head++;
    // Copy the array only when dead entries are most of it: a copy per eviction was most of the
    // ingestion time at 100,000 tasks.
    if (this.head > this.order.length / 2 || this.order.length - this.head > 2 * this.tasks.size) {
      this.order = this.order.slice(this.head).filter((t) => !t[GONE]);
      this.head = 0;
    }
  }

  /** Kept tasks in order of first sight (the order array from its live head). */
  private live(): Kept[] {
    return this.order.slice(this.head).filter((t) => !t[GONE]);
  }

  task(uuid: string): TaskRecord | undefined {
    return this.tasks.get(uuid);
  }

  /** Tasks whose parent is `uuid` (canvas callbacks, subtasks), oldest first. */
  children(uuid: string): TaskRecord[] {
    const out: TaskRecord[] = [];
    for (let i = this.head; i < this.order.length; i++) {
      const t = this.order[i]!;
      if (t.parent_id === uuid && !t[GONE]) out.push(t);
    }
    return out;
  }

  /** A page of tasks, newest first (or by `sortBy`), and how many match in all. */
  listTasks(filter: TaskFilter = {}, offset = 0, limit: number | null = 50, sortBy?: string): TaskPage {
    const search = filter.search?.toLowerCase();
    const match = (t: Kept): boolean => {
      if (t[GONE]) return false;
      if (filter.state && t.state !== filter.state) return false;
      if (filter.name && t.name !== filter.name) return false;
      if (filter.worker && t.worker !== filter.worker) return false;
      const when = t.received ?? t.timestamp;
      if (filter.receivedFrom !== undefined && when < filter.receivedFrom) return false;
      if (filter.receivedTo !== undefined && when > filter.receivedTo) return false;
      if (search && !(t.uuid.includes(search) || (t.args?.toLowerCase().includes(search) ?? false) || (t.kwargs?.toLowerCase().includes(search) ?? false)))
        return false;
      return true;
    };
    if (sortBy) {
      const all = this.live().filter(match);
      const desc = sortBy.startsWith("-");
      const key = (desc ? sortBy.slice(1) : sortBy) as keyof TaskRecord;
      all.sort((a, b) => {
        const x = a[key] as unknown;
        const y = b[key] as unknown;
        if (x === y) return 0;
        if (x === null || x === undefined) return 1;
        if (y === null || y === undefined) return -1;
        return (x < y ? -1 : 1) * (desc ? -1 : 1);
      });
      return { total: all.length, tasks: all.slice(offset, limit === null ? undefined : offset + limit) };
    }
    const page: TaskRecord[] = [];
    // Unfiltered, the total is known: stop once the page is full, so paging costs offset + limit.
    const unfiltered = !filter.state && !filter.name && !filter.worker && filter.receivedFrom === undefined && filter.receivedTo === undefined && !search;
    let total = 0;
    for (let i = this.order.length - 1; i >= this.head; i--) {
      const t = this.order[i]!;
      if (!match(t)) continue;
      if (total >= offset && (limit === null || page.length < limit)) page.push(t);
      total++;
      if (unfiltered && limit !== null && page.length === limit) return { total: this.tasks.size, tasks: page };
    }
    return { total, tasks: page };
  }

  /** Task names seen, sorted (Flower's `/api/task/types`). */
  taskTypes(): string[] {
    const names = new Set<string>();
    for (const t of this.tasks.values()) if (t.name) names.add(t.name);
    return [...names].sort();
  }

  /** Count of kept tasks per state. */
  stateCounts(): Record<string, number> {
    const counts: Record<string, number> = {};
    for (const t of this.tasks.values()) counts[t.state] = (counts[t.state] ?? 0) + 1;
    return counts;
  }

  isAlive(w: WorkerRecord): boolean {
    if (w.offlineAt !== null) return false;
    const now = this.now() / 1000;
    if (w.lastHeartbeat !== null && now - w.lastHeartbeat <= w.freq * HEARTBEAT_EXPIRE_WINDOW) return true;
    return w.inspectedAt !== null && now - w.inspectedAt <= this.inspectAliveMs / 1000;
  }

  listWorkers(): WorkerRecord[] {
    return [...this.workers.values()].sort((a, b) => a.hostname.localeCompare(b.hostname));
  }

  workerRecord(hostname: string): WorkerRecord | undefined {
    return this.workers.get(hostname);
  }

  /**
   * What remote control told about a worker (`inspect stats/registered/active/reserved/
   * active_queues`). A worker that answers but sends no events (no `-E`) appears this way too.
   */
  updateFromInspect(
    hostname: string,
    info: { stats?: Record<string, unknown>; registered?: string[]; active?: unknown[]; reserved?: unknown[]; queues?: string[] },
  ): void {
    const w = this.worker(hostname);
    if (info.stats) {
      w.stats = info.stats;
      const pool = info.stats["pool"] as Record<string, unknown> | undefined;
      w.concurrency = num(pool?.["max-concurrency"]) ?? w.concurrency;
      w.pid = w.pid ?? num(info.stats["pid"]);
    }
    if (info.registered) w.registered = info.registered;
    if (info.active) w.activeTasks = info.active;
    if (info.reserved) w.reserved = info.reserved;
    if (info.queues) w.queues = info.queues;
    w.inspectedAt = this.now() / 1000;
    // It answers, so it is back (a restart under the same name, maybe without -E).
    if (w.offlineAt !== null && w.inspectedAt > w.offlineAt + 1) w.offlineAt = null;
    this.emit({ kind: "worker", worker: w });
  }

  /** For persistence: put back a task saved earlier, without emitting or counting. */
  restoreTask(t: TaskRecord): void {
    if (this.tasks.has(t.uuid)) return;
    (t as Kept)[GONE] = false;
    this.tasks.set(t.uuid, t);
    this.order.push(t);
    if (this.tasks.size > this.maxTasks) this.evict();
  }

  /** Every kept task, oldest first. */
  *allTasks(): IterableIterator<TaskRecord> {
    for (let i = this.head; i < this.order.length; i++) if (!this.order[i]![GONE]) yield this.order[i]!;
  }
}
