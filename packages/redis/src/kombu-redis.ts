import { createHash } from "node:crypto";
import type { Redis } from "ioredis";

/**
 * kombu's Redis layout, shared by the transport and its tests. Every name here is kombu's
 * (kombu/transport/redis.py), so Python and TypeScript processes read each other's keys.
 */

/** kombu's separator inside priority list names and binding entries. */
export const SEP = "\x06\x16";
/** kombu's default `priority_steps`. */
export const PRIORITY_STEPS = [0, 3, 6, 9] as const;
export const UNACKED_KEY = "unacked";
export const UNACKED_INDEX_KEY = "unacked_index";
export const UNACKED_MUTEX_KEY = "unacked_mutex";

export function bindingKey(exchange: string): string {
  return `_kombu.binding.${exchange}`;
}

/** Celery declares a direct exchange named like the queue, bound with the queue's name. */
export function bindingMember(queue: string): string {
  return `${queue}${SEP}${SEP}${queue}`;
}

/**
 * THE priority mapping, done here and nowhere else. Celeriac's priority is 0..9 with 9 the most
 * urgent (RabbitMQ's sense, see core's `WireProperties.priority`). kombu's Redis transport reads
 * `properties.priority` the other way: 0 is consumed first. So the envelope carries
 * `9 - priority`, and a message without a priority carries 0, as kombu writes for Celery's default
 * (it lands in the first-consumed list, like every Python task sent without a priority).
 */
export function toRedisPriority(celeriac: number | undefined): number {
  if (celeriac === undefined || !Number.isFinite(celeriac)) return 0;
  return 9 - clamp09(celeriac);
}

/** The inverse of {@link toRedisPriority}, for envelopes read from Redis. */
export function fromRedisPriority(redis: number): number {
  return 9 - clamp09(redis);
}

function clamp09(p: number): number {
  return Math.min(9, Math.max(0, Math.round(p)));
}

/** kombu's `Channel.priority(n)`: the largest step not above `n`. */
export function stepOf(redisPriority: number): number {
  const p = clamp09(redisPriority);
  let step: number = PRIORITY_STEPS[0];
  for (const s of PRIORITY_STEPS) if (s <= p) step = s;
  return step;
}

/** kombu's `_q_for_pri`: the bare queue name for step 0, `queue\x06\x16<step>` otherwise. */
export function listKey(queue: string, step: number): string {
  return step === 0 ? queue : `${queue}${SEP}${step}`;
}

export function sha1(text: string): string {
  return createHash("sha1").update(text).digest("hex");
}

/** A Lua script run with EVALSHA, falling back to EVAL when Redis lost its script cache (restart). */
export class Script {
  readonly sha: string;
  constructor(readonly lua: string) {
    this.sha = sha1(lua);
  }

  async run(client: Redis, keys: string[], args: (string | number)[]): Promise<unknown> {
    try {
      return await client.evalsha(this.sha, keys.length, ...keys, ...args);
    } catch (err) {
      if (!String((err as Error).message).includes("NOSCRIPT")) throw err;
      return client.eval(this.lua, keys.length, ...keys, ...args);
    }
  }
}

/**
 * Pops up to ARGV[1] messages, lists in KEYS[3..] order (priority steps outer, queues inner, as
 * kombu's BRPOP), and records each in `unacked` / `unacked_index` in the same script, so no
 * message is ever outside Redis's bookkeeping. The `unacked` value is kombu's
 * `[envelope, exchange, routing_key]` JSON, built from the list item's own bytes. Returns
 * `[listIndex, tag, sha1(unacked value), item, ...]`.
 * ARGV: count, score (unix seconds), fallback tag prefix, then the JSON routing key of each list.
 */
export const CLAIM = new Script(String.raw`
local n = tonumber(ARGV[1])
local out = {}
local got = 0
for i = 3, #KEYS do
  while got < n do
    local item = redis.call('RPOP', KEYS[i])
    if not item then break end
    -- kombu writes delivery_tag last: look near the end first (plain find), then anywhere.
    local tag = nil
    local from = string.find(item, '"delivery_tag": "', math.max(1, #item - 160), true)
    if from then tag = string.match(item, '^([^"\\]+)"', from + 17) end
    if not tag then
      for t in string.gmatch(item, '"delivery_tag": *"([^"\\]+)"') do tag = t end
    end
    if not tag then tag = ARGV[3] .. got end
    local value = '[' .. item .. ', "", ' .. ARGV[i + 1] .. ']'
    redis.call('ZADD', KEYS[2], ARGV[2], tag)
    redis.call('HSET', KEYS[1], tag, value)
    got = got + 1
    out[#out + 1] = i - 3
    out[#out + 1] = tag
    out[#out + 1] = redis.sha1hex(value)
    out[#out + 1] = item
  end
  if got >= n then break end
end
return out
`);

/**
 * Acks: deletes each ARGV pair (tag, sha1 of the value we stored) only if it is still ours.
 * Returns the 0-based pair numbers that were not ours any more (restored meanwhile).
 */
export const ACK = new Script(`
local lost = {}
for i = 1, #ARGV, 2 do
  local cur = redis.call('HGET', KEYS[1], ARGV[i])
  if cur and redis.sha1hex(cur) == ARGV[i + 1] then
    redis.call('HDEL', KEYS[1], ARGV[i])
    redis.call('ZREM', KEYS[2], ARGV[i])
  else
    lost[#lost + 1] = (i - 1) / 2
  end
end
return lost
`);

/** Sets the unacked_index score of ARGV[1] to ARGV[3] if its value still hashes to ARGV[2]. */
export const RESCORE = new Script(`
local cur = redis.call('HGET', KEYS[1], ARGV[1])
if cur and redis.sha1hex(cur) == ARGV[2] then
  redis.call('ZADD', KEYS[2], 'XX', ARGV[3], ARGV[1])
  return 1
end
return 0
`);

/**
 * Restores one unacked message: if the entry for ARGV[1] still hashes to ARGV[2] (or ARGV[2] is
 * empty), removes it from both indices and pushes ARGV[3] on KEYS[3], RPUSH (consumed next, as
 * kombu's visibility restore) or LPUSH when ARGV[4] is 'l' (to the back, as kombu's requeue).
 * An index entry without a hash entry is dropped. Returns 1 if restored.
 */
export const RESTORE = new Script(`
local cur = redis.call('HGET', KEYS[1], ARGV[1])
if not cur then
  redis.call('ZREM', KEYS[2], ARGV[1])
  return 0
end
if ARGV[2] ~= '' and redis.sha1hex(cur) ~= ARGV[2] then return 0 end
redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('ZREM', KEYS[2], ARGV[1])
if ARGV[4] == 'l' then
  redis.call('LPUSH', KEYS[3], ARGV[3])
else
  redis.call('RPUSH', KEYS[3], ARGV[3])
end
return 1
`);

/** redis-py's Lock release, which kombu's `Mutex` uses for `unacked_mutex`. */
export const UNLOCK = new Script(`
local token = redis.call('get', KEYS[1])
if not token or token ~= ARGV[1] then return 0 end
redis.call('del', KEYS[1])
return 1
`);

/** Extends kombu's `unacked_mutex` to ARGV[2] ms if it is still held with our token ARGV[1]. */
export const RENEW = new Script(`
if redis.call('get', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('pexpire', KEYS[1], ARGV[2])
return 1
`);
