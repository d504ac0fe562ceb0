import { createRedisResultBackend, type RedisResultBackend, type RedisResultBackendOptions } from "./result-backend.js";
import { createRedisTransport, type RedisTransport, type RedisTransportOptions } from "./transport.js";
import { msParam, parseRedisUrl, rejectRemaining } from "./url.js";

/**
 * A transport from a Celery broker URL. Query parameters, in kombu's names and units:
 * `visibility_timeout` (seconds), `restore_interval_ms`, `batch_size`.
 */
export function redisTransportFromUrl(url: string): RedisTransport {
  const { params } = parseRedisUrl(url);
  const options: RedisTransportOptions = { url: bareUrl(url) };
  const vt = msParam(url, params, "visibility_timeout", 1000);
  if (vt !== undefined) options.visibilityTimeoutMs = vt;
  const ri = msParam(url, params, "restore_interval_ms", 1);
  if (ri !== undefined) options.restoreIntervalMs = ri;
  const bs = msParam(url, params, "batch_size", 1);
  if (bs !== undefined) options.batchSize = bs;
  rejectRemaining(url, params, ["visibility_timeout", "restore_interval_ms", "batch_size"]);
  return createRedisTransport(options);
}

/** A result backend from a Celery `result_backend` URL; `result_expires` (seconds) sets the expiry. */
export function redisResultBackendFromUrl(url: string): RedisResultBackend {
  const { params } = parseRedisUrl(url);
  const options: RedisResultBackendOptions = { url: bareUrl(url) };
  const ex = msParam(url, params, "result_expires", 1000);
  if (ex !== undefined) options.expiresMs = ex;
  rejectRemaining(url, params, ["result_expires"]);
  return createRedisResultBackend(options);
}

/**
 * The URL a factory gets: without the query string (its parameters were mapped to options), but
 * keeping `?db=N`; a `sentinel://` list is passed whole, since its query may sit on any part and
 * the factory reads only `db` and `master_name` from it.
 */
function bareUrl(url: string): string {
  if (/^sentinel:/i.test(url.trim())) return url;
  return url.replace(/\?.*$/, "") + dbSuffix(url);
}

/** Keeps `?db=N` when the query string is dropped. */
function dbSuffix(url: string): string {
  const m = /[?&]db=(\d+)/.exec(url);
  return m && !/\/\d+(\?|$)/.test(url) ? `?db=${m[1]}` : "";
}
