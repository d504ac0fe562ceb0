import { Redis } from "ioredis";
import { CeleriacError, READY_STATES, type ResultBackend, type ResultMeta, type TaskState } from "@celeriac/core";
import {
  assertKnownOptions,
  optionKeys,
  pyParse,
  parseResultMeta,
  pyStringify,
  stringifyCeleryJson,
  type ChordPart,
  type ChordPartReturn,
} from "@celeriac/core/transport";
import { connectionOf, describeConnection, ioredisOptions } from "./url.js";

export interface RedisResultBackendOptions {
  /**
   * `redis://…`, `rediss://…` or `sentinel://host:26379;sentinel://host2:26379?master_name=…`,
   * as for the transport (Celery's `SentinelBackend` URL). Default `redis://localhost:6379/0`. Not with `client`.
   */
  url?: string;
  /** With a `sentinel://` URL: the master's name (Celery's `result_backend_transport_options={'master_name': …}`). */
  masterName?: string;
  /** Your own ioredis client (never closed by the backend). `waitFor` opens one subscriber connection with `duplicate()`. */
  client?: Redis;
  /**
   * Celery's `result_expires`: results are written with `SETEX` and this TTL. Default one day,
   * Celery's default. `null` writes with `SET` and keeps results until `forget`.
   */
  expiresMs?: number | null;
}

const KNOWN = optionKeys<RedisResultBackendOptions>({ url: true, masterName: true, client: true, expiresMs: true });

export const TASK_KEY_PREFIX = "celery-task-meta-";
export const GROUP_KEY_PREFIX = "celery-taskset-meta-";

/**
 * Stores only if the current value is not a SUCCESS (Celery reads before writing; doing it in
 * one script closes the race between two workers). SETEX or SET, then PUBLISH on the key's name.
 * KEYS[1] key; ARGV: value, ttl seconds ('' for none).
 */
const STORE_LUA = `
local cur = redis.call('GET', KEYS[1])
if cur then
  local ok, m = pcall(cjson.decode, cur)
  if ok and type(m) == 'table' and m['status'] == 'SUCCESS' then return 0 end
end
if ARGV[2] ~= '' then
  redis.call('SETEX', KEYS[1], ARGV[2], ARGV[1])
else
  redis.call('SET', KEYS[1], ARGV[1])
end
redis.call('PUBLISH', KEYS[1], ARGV[1])
return 1
`;

interface Waiter {
  resolve: (m: ResultMeta) => void;
}

/**
 * Celery's Redis result backend: `celery-task-meta-<id>` with SETEX plus a PUBLISH on a channel
 * of the same name; `waitFor` subscribes first and then GETs, so a result stored in between is
 * not missed. Works with any transport.
 */
export class RedisResultBackend implements ResultBackend {
  readonly name = "redis";
  readonly client: Redis;
  private readonly ownsClient: boolean;
  private readonly expiresMs: number | null;
  private subscriber: Redis | null = null;
  private readonly waiters = new Map<string, Set<Waiter>>();
  private isClosed = false;
  /** Where results are stored, password masked, for errors. */
  private readonly where: string;
  /** The last connection error ioredis reported: a command that fails during an outage says why. */
  private lastError: Error | null = null;

  constructor(options: RedisResultBackendOptions = {}) {
    assertKnownOptions("createRedisResultBackend", options, KNOWN);
    if (options.url !== undefined && options.client !== undefined) {
      throw new CeleriacError("invalid_argument", "createRedisResultBackend: pass url or client, not both");
    }
    const e = options.expiresMs;
    if (e !== undefined && e !== null && (typeof e !== "number" || !Number.isFinite(e) || e < 1000)) {
      throw new CeleriacError(
        "invalid_argument",
        `createRedisResultBackend: expiresMs must be at least 1000 (Redis expiries are in seconds) or null, got ${String(e)}`,
      );
    }
    this.expiresMs = e === undefined ? 86_400_000 : e;
    if (options.client) {
      if (options.masterName !== undefined)
        throw new CeleriacError("invalid_argument", "createRedisResultBackend: masterName goes with a sentinel:// url, not with client");
      this.client = options.client;
      this.ownsClient = false;
      this.where = `redis://${options.client.options.host ?? "localhost"}:${options.client.options.port ?? 6379}/${options.client.options.db ?? 0}`;
    } else {
      const connection = connectionOf("createRedisResultBackend", options.url, options.masterName);
      this.client = new Redis(ioredisOptions(connection, { enableAutoPipelining: true }));
      this.ownsClient = true;
      this.where = describeConnection(connection);
    }
    // ioredis reconnects by itself; commands report failures, with the reason kept here.
    this.client.on("error", (err: Error) => (this.lastError = err));
  }

  private open(what: string): void {
    if (this.isClosed) throw new CeleriacError("closed", `redis result backend is closed; cannot ${what}`);
  }

  /**
   * Runs a command, turning a driver failure into one clear line: which backend (password
   * masked), what we tried, and why (during an outage the connection's error, e.g. ECONNREFUSED,
   * rather than ioredis's "max retries per request").
   */
  private async run<T>(what: string, op: () => Promise<T>): Promise<T> {
    try {
      return await op();
    } catch (err) {
      if (err instanceof CeleriacError) throw err;
      const reason = this.client.status !== "ready" && this.lastError ? this.lastError.message : (err as Error).message;
      throw new CeleriacError("connection", `redis result backend ${this.where}: cannot ${what}: ${reason}`, { cause: err });
    }
  }

  async store(meta: ResultMeta, options: { ttlMs?: number } = {}): Promise<void> {
    this.open("store");
    const ttlMs = options.ttlMs ?? this.expiresMs;
    const ttl = ttlMs === null ? "" : String(Math.max(1, Math.round(ttlMs / 1000)));
    // Python's json.dumps form, byte for byte what Celery writes.
    const value = stringifyCeleryJson(meta);
    await this.run("store a result", () => this.client.eval(STORE_LUA, 1, TASK_KEY_PREFIX + meta.task_id, value, ttl));
  }

  async get(taskId: string): Promise<ResultMeta | null> {
    this.open("get");
    const text = await this.run("read a result", () => this.client.get(TASK_KEY_PREFIX + taskId));
    return text === null ? null : parseResultMeta(text, "redis result");
  }

  private ensureSubscriber(): Redis {
    if (this.subscriber) return this.subscriber;
    const sub = this.client.duplicate({ enableAutoPipelining: false });
    sub.on("error", (err: Error) => (this.lastError = err));
    sub.on("message", (channel: string, text: string) => {
      const set = this.waiters.get(channel.slice(TASK_KEY_PREFIX.length));
      if (!set) return;
      let meta: ResultMeta;
      try {
        meta = parseResultMeta(text, "redis result");
      } catch {
        return;
      }
      if (!READY_STATES.has(meta.status)) return;
      for (const w of [...set]) w.resolve(meta);
    });
    this.subscriber = sub;
    return sub;
  }

  async waitFor(taskId: string, options: { timeoutMs: number; signal?: AbortSignal }): Promise<ResultMeta> {
    this.open("wait");
    const channel = TASK_KEY_PREFIX + taskId;
    const sub = this.ensureSubscriber();
    let set = this.waiters.get(taskId);
    const first = !set;
    if (!set) this.waiters.set(taskId, (set = new Set()));
    const waiters = set;
    let waiter!: Waiter;
    let timer: ReturnType<typeof setTimeout> | undefined;
    let onAbort: (() => void) | undefined;
    const result = new Promise<ResultMeta>((resolve, reject) => {
      waiter = { resolve };
      timer = setTimeout(() => reject(new CeleriacError("timeout", `task ${taskId} not ready after ${options.timeoutMs} ms`)), options.timeoutMs);
      onAbort = () => reject(new CeleriacError("timeout", `waiting for task ${taskId} was aborted`));
      options.signal?.addEventListener("abort", onAbort, { once: true });
    });
    waiters.add(waiter);
    const cleanup = () => {
      clearTimeout(timer);
      if (onAbort) options.signal?.removeEventListener("abort", onAbort);
      waiters.delete(waiter);
      if (waiters.size === 0 && this.waiters.get(taskId) === waiters) {
        this.waiters.delete(taskId);
        void sub.unsubscribe(channel).catch(() => undefined);
      }
    };
    try {
      if (options.signal?.aborted) throw new CeleriacError("timeout", `waiting for task ${taskId} was aborted`);
      // Subscribe first, then GET: a result stored in between is seen by one or the other.
      if (first) await this.run("subscribe to a result", () => sub.subscribe(channel));
      const now = await this.get(taskId);
      if (now && READY_STATES.has(now.status)) return now;
      return await result;
    } finally {
      cleanup();
      result.catch(() => undefined);
    }
  }

  async forget(taskId: string): Promise<void> {
    this.open("forget");
    await this.run("forget a result", () => this.client.del(TASK_KEY_PREFIX + taskId));
  }

  /**
   * Celery's `GroupResult.save()`: `celery-taskset-meta-<groupId>` holding
   * `{"result": [[groupId, null], [[[taskId, null], null], ...]]}` (GroupResult.as_tuple), with
   * the same expiry as results, so Python's `GroupResult.restore(groupId)` finds it.
   */
  async saveGroup(groupId: string, taskIds: readonly string[]): Promise<void> {
    this.open("save group");
    const value = pyStringify({ result: [[groupId, null], taskIds.map((id) => [[id, null], null])] });
    const key = GROUP_KEY_PREFIX + groupId;
    const pipe = this.client.multi();
    if (this.expiresMs === null) pipe.set(key, value);
    else pipe.setex(key, Math.max(1, Math.round(this.expiresMs / 1000)), value);
    await pipe.publish(key, value).exec();
  }

  /** Reads a group saved by Celery (`GroupResult.save()`) or by `saveGroup`: its task ids, in order. */
  async restoreGroup(groupId: string): Promise<{ groupId: string; taskIds: string[] } | null> {
    this.open("restore group");
    const text = await this.client.get(GROUP_KEY_PREFIX + groupId);
    if (text === null) return null;
    const v = pyParse(text) as { result?: unknown };
    const tuple = v?.result;
    if (!Array.isArray(tuple) || !Array.isArray(tuple[1]))
      throw new CeleriacError("decode_failed", `celery-taskset-meta-${groupId} is not a GroupResult tuple`);
    const taskIds = (tuple[1] as unknown[]).map((child) => {
      const id = Array.isArray(child) && Array.isArray(child[0]) ? child[0][0] : undefined;
      if (typeof id !== "string") throw new CeleriacError("decode_failed", `celery-taskset-meta-${groupId} has a child without an id`);
      return id;
    });
    return { groupId, taskIds };
  }

  private expirySeconds(): number | null {
    return this.expiresMs === null ? null : Math.max(1, Math.round(this.expiresMs / 1000));
  }

  /**
   * celery/backends/redis.py `set_chord_size`: the header's size under
   * `celery-taskset-meta-<groupId>.s`, written like any value (SETEX with the result expiry, plus
   * a PUBLISH on the key).
   */
  async setChordSize(groupId: string, size: number): Promise<void> {
    this.open("set chord size");
    if (!Number.isInteger(size) || size < 0)
      throw new CeleriacError("invalid_argument", `setChordSize: size must be a non-negative integer, got ${String(size)}`);
    const key = `${GROUP_KEY_PREFIX}${groupId}.s`;
    const ttl = this.expirySeconds();
    const pipe = this.client.multi();
    if (ttl === null) pipe.set(key, String(size));
    else pipe.setex(key, ttl, String(size));
    await pipe.publish(key, String(size)).exec();
  }

  /**
   * celery/backends/redis.py `on_chord_part_return` with Celery's default
   * `result_chord_ordered=True`: the part `[1, task_id, state, result]` goes into the sorted set
   * `celery-taskset-meta-<gid>.j` scored by its group_index (`+inf` without one), and in the same
   * MULTI the set's size, `.t` (parts added by `add_to_chord`) and `.s` (the chord size) are read
   * and the three keys get the result expiry. The call that brings the count to size + `.t` is
   * the one that completes the chord: it reads the parts in index order and deletes the keys, so
   * exactly one worker, Python or Celeriac, sends the body.
   */
  async onChordPartReturn(part: ChordPartReturn): Promise<ChordPart[] | null> {
    this.open("count a chord part");
    const base = GROUP_KEY_PREFIX + part.groupId;
    const jkey = `${base}.j`;
    const tkey = `${base}.t`;
    const skey = `${base}.s`;
    const encoded = stringifyCeleryJson([1, part.taskId, part.state, part.result]);
    const score = part.groupIndex === null ? "+inf" : String(part.groupIndex);
    const pipe = this.client.multi().zadd(jkey, score, encoded).zcount(jkey, "-inf", "+inf").get(tkey).get(skey);
    const ttl = this.expirySeconds();
    if (ttl !== null) pipe.expire(jkey, ttl).expire(tkey, ttl).expire(skey, ttl);
    const replies = await pipe.exec();
    if (!replies) throw new CeleriacError("connection", `chord ${part.groupId}: the MULTI was discarded`);
    for (const [err] of replies) if (err) throw CeleriacError.from(err, "connection");
    const readyCount = Number(replies[1]![1]);
    const totalDiff = Number(replies[2]![1] ?? 0) || 0;
    const sizeText = replies[3]![1] as string | null;
    // No size yet: Celery does nothing either (the sender sets it before the header is published).
    if (!sizeText) return null;
    const total = Number(sizeText) + totalDiff;
    if (readyCount !== total) return null;
    const members = await this.client.zrange(jkey, 0, -1);
    await this.client.multi().del(jkey).del(tkey).del(skey).exec();
    return members.map((m) => unpackChordPart(m, part.groupId));
  }

  async deleteGroup(groupId: string): Promise<void> {
    this.open("delete group");
    await this.client.del(GROUP_KEY_PREFIX + groupId);
  }

  async close(): Promise<void> {
    if (this.isClosed) return;
    this.isClosed = true;
    this.subscriber?.disconnect();
    this.subscriber = null;
    if (this.ownsClient) await this.client.quit().catch(() => this.client.disconnect());
  }
}

/** One `[1, task_id, state, result]` entry of a chord's `.j` set. */
function unpackChordPart(text: string, groupId: string): ChordPart {
  const v = pyParse(text);
  if (!Array.isArray(v) || v.length < 4 || typeof v[1] !== "string" || typeof v[2] !== "string") {
    throw new CeleriacError("decode_failed", `chord ${groupId}: a part is not [1, task_id, state, result]`);
  }
  return { taskId: v[1], state: v[2] as TaskState, result: v[3] };
}

/** Creates the Redis result backend; see {@link RedisResultBackendOptions} for the defaults. */
export function createRedisResultBackend(options: RedisResultBackendOptions = {}): RedisResultBackend {
  return new RedisResultBackend(options);
}
