// Celeriac runs on Node and its public types use Node's (or those of clients that do): keep this
// reference in the .d.ts, since TypeScript 6 projects load no @types/* package unless asked.
/// <reference types="node" preserve="true" />
// For users: the factories and their options.
export { createRedisTransport, type RedisTransport, type RedisTransportOptions } from "./transport.js";
export { createRedisResultBackend, RedisResultBackend, type RedisResultBackendOptions } from "./result-backend.js";
export { redisTransportFromUrl, redisResultBackendFromUrl } from "./from-url.js";
export { parseRedisUrl, type RedisConnection } from "./url.js";
export { toRedisPriority, fromRedisPriority } from "./kombu-redis.js";

// For core's URL resolution (`transportFromUrl("redis://…")` imports this package by scheme).
export { redisTransportFromUrl as transportFromUrl, redisResultBackendFromUrl as resultBackendFromUrl } from "./from-url.js";
