import { CeleriacError } from "@celeriac/core";
import { assertKnownOptions } from "@celeriac/core/transport";
import type { Redis } from "ioredis";
import type { EntryState, LeaderLease, LeaseOptions } from "../lease.js";
import { checkLeaseOptions } from "./common.js";

export interface RedisLeaseOptions extends LeaseOptions {
  /** redis:// or rediss:// URL of the broker (query parameters are ignored here). */
  url: string;
}

const KNOWN = ["url", "name", "leaseMs", "holder"] as const;

// KEYS: lease, epoch counter. ARGV: holder, leaseMs. SET NX PX takes a free lease; the epoch is
// incremented in the same script, so epochs grow in the order leases were won (fencing).
const ACQUIRE = `
local cur = redis.call('GET', KEYS[1])
local mine = ARGV[1] .. '|'
if cur then
  if string.sub(cur, 1, #mine) == mine then
    redis.call('PEXPIRE', KEYS[1], ARGV[2])
    return tonumber(string.sub(cur, #mine + 1))
  end
  return false
end
local epoch = redis.call('INCR', KEYS[2])
if redis.call('SET', KEYS[1], mine .. epoch, 'NX', 'PX', ARGV[2]) then return epoch end
return false`;
// KEYS: lease. ARGV: holder|epoch, leaseMs.
const RENEW = `if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end return 0`;
const RELEASE = `if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0`;
// KEYS: lease, state hash. ARGV: holder|epoch, entry, state. The fenced write.
const SAVE = `if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('HSET', KEYS[2], ARGV[2], ARGV[3]) return 1 end return 0`;

/**
 * A Redis lease: `celeriac-beat:<name>:lease` holds "holder|epoch" with a PX expiry set by the
 * server (no clock shared between replicas is needed), renewed by the holder every leaseMs / 3;
 * the leader's state is the hash `celeriac-beat:<name>:state`, written only while the lease key
 * still names the writer's epoch.
 */
export async function createRedisLease(options: RedisLeaseOptions): Promise<LeaderLease> {
  assertKnownOptions("createRedisLease", options, KNOWN);
  const { name, leaseMs, holder } = checkLeaseOptions(options);
  if (typeof options.url !== "string" || !/^rediss?:\/\//.test(options.url))
    throw new CeleriacError("invalid_argument", `createRedisLease: url must be redis:// or rediss://, got ${JSON.stringify(options.url)}`);
  let RedisClass: typeof Redis;
  try {
    RedisClass = (await import("ioredis")).Redis;
  } catch (err) {
    throw new CeleriacError("unsupported", "the Redis lease needs ioredis: npm install ioredis", { cause: err });
  }
  const redis = new RedisClass(options.url.replace(/\?.*$/, ""), { lazyConnect: true, maxRetriesPerRequest: 2, enableOfflineQueue: true });
  redis.on("error", () => {
    // Failures surface as rejected commands, which the beat logs; this only keeps ioredis quiet.
  });
  try {
    await redis.connect();
  } catch (err) {
    redis.disconnect();
    throw new CeleriacError("connection", `cannot connect to Redis for the beat lease: ${(err as Error).message}`, { cause: err });
  }
  const key = (k: string) => `celeriac-beat:${name}:${k}`;
  const value = (epoch: number) => `${holder}|${epoch}`;
  return {
    kind: "redis",
    leaseMs,
    async tryAcquire() {
      const r = await redis.eval(ACQUIRE, 2, key("lease"), key("epoch"), holder, String(leaseMs));
      return typeof r === "number" ? r : null;
    },
    async renew(epoch) {
      return (await redis.eval(RENEW, 1, key("lease"), value(epoch), String(leaseMs))) === 1;
    },
    async release(epoch) {
      await redis.eval(RELEASE, 1, key("lease"), value(epoch));
    },
    async loadState() {
      const out: Record<string, EntryState> = {};
      for (const [entry, json] of Object.entries(await redis.hgetall(key("state")))) out[entry] = JSON.parse(json) as EntryState;
      return out;
    },
    async saveState(epoch, entry, state) {
      return (await redis.eval(SAVE, 2, key("lease"), key("state"), value(epoch), entry, JSON.stringify(state))) === 1;
    },
    async close() {
      await redis.quit().catch(() => redis.disconnect());
    },
  };
}
