import { Redis } from "ioredis";
import { CeleriacError, READY_STATES, assertKnownOptions, pyParse, pyStringify, type ResultBackend, type ResultMeta } from "@celeriac/core";
import { ioredisOptions, parseRedisUrl } from "./url.js";

export interface RedisResultBackendOptions {
  /** `redis://…` or `rediss://…`, as for the transport. Default `redis://localhost:6379/0`. Not with `client`. */
  url?: string;
  /** Your own ioredis client (never closed by the backend). `waitFor` opens one subscriber connection with `duplicate()`. */
  client?: Redis;
  /**
   * Celery's `result_expires`: results are written with `SETEX` and this TTL. Default one day,
   * Celery's default. `null` writes with `SET` and keeps results until `forget`.
   */
  expiresMs?: number | null;
}

const KNOWN = ["url", "client", "expiresMs"] as const;

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

function parseMeta(text: string): ResultMeta {
  const v = pyParse(text);
  if (typeof v !== "object" || v === null || Array.isArray(v) || typeof (v as Record<string, unknown>)["status"] !== "string") {
    throw new CeleriacError("decode_failed", "redis result is not a Celery result meta");
  }
  return v as ResultMeta;
}

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

  constructor(options: RedisResultBackendOptions = {}) {
    assertKnownOptions("createRedisResultBackend", options, KNOWN);
    if (options.url !== undefined && options.client !== undefined) {
      throw new CeleriacError("invalid_argument", "createRedisResultBackend: pass url or client, not both");
    }
    const e = options.expiresMs;
    if (e !== undefined && e !== null && (typeof e !== "number" || !Number.isFinite(e) || e < 1000)) {
      throw new CeleriacError("invalid_argument", `createRedisResultBackend: expiresMs must be at least 1000 (Redis expiries are in seconds) or null, got ${String(e)}`);
    }
    this.expiresMs = e === undefined ? 86_400_000 : e;
    if (options.client) {
      this.client = options.client;
      this.ownsClient = false;
    } else {
      const { connection } = parseRedisUrl(options.url ?? "redis://localhost:6379/0");
      this.client = new Redis(ioredisOptions(connection, { enableAutoPipelining: true }));
      this.ownsClient = true;
    }
    this.client.on("error", () => undefined); // ioredis reconnects by itself; commands report failures
  }

  private open(what: string): void {
    if (this.isClosed) throw new CeleriacError("closed", `redis result backend is closed; cannot ${what}`);
  }

  async store(meta: ResultMeta, options: { ttlMs?: number } = {}): Promise<void> {
    this.open("store");
    const ttlMs = options.ttlMs ?? this.expiresMs;
    const ttl = ttlMs === null ? "" : String(Math.max(1, Math.round(ttlMs / 1000)));
    // Python's json.dumps form, byte for byte what Celery writes.
    const value = pyStringify(meta);
    await this.client.eval(STORE_LUA, 1, TASK_KEY_PREFIX + meta.task_id, value, ttl);
  }

  async get(taskId: string): Promise<ResultMeta | null> {
    this.open("get");
    const text = await this.client.get(TASK_KEY_PREFIX + taskId);
    return text === null ? null : parseMeta(text);
  }

  private ensureSubscriber(): Redis {
    if (this.subscriber) return this.subscriber;
    const sub = this.client.duplicate({ enableAutoPipelining: false });
    sub.on("error", () => undefined);
    sub.on("message", (channel: string, text: string) => {
      const set = this.waiters.get(channel.slice(TASK_KEY_PREFIX.length));
      if (!set) return;
      let meta: ResultMeta;
      try {
        meta = parseMeta(text);
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
      if (first) await sub.subscribe(channel);
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
    await this.client.del(TASK_KEY_PREFIX + taskId);
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
    if (!Array.isArray(tuple) || !Array.isArray(tuple[1])) throw new CeleriacError("decode_failed", `celery-taskset-meta-${groupId} is not a GroupResult tuple`);
    const taskIds = (tuple[1] as unknown[]).map((child) => {
      const id = Array.isArray(child) && Array.isArray(child[0]) ? child[0][0] : undefined;
      if (typeof id !== "string") throw new CeleriacError("decode_failed", `celery-taskset-meta-${groupId} has a child without an id`);
      return id;
    });
    return { groupId, taskIds };
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

/** Creates the Redis result backend; see {@link RedisResultBackendOptions} for the defaults. */
export function createRedisResultBackend(options: RedisResultBackendOptions = {}): RedisResultBackend {
  return new RedisResultBackend(options);
}
