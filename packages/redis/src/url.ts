import { CeleriacError } from "@celeriac/core";
import { pyUnquote, URL_PASSWORD_MASK } from "@celeriac/core/transport";
import type { RedisOptions } from "ioredis";

/** The connection part of a Redis URL, as ioredis options. */
export interface RedisConnection {
  host: string;
  port: number;
  db: number;
  username?: string;
  password?: string;
  tls: boolean;
  /**
   * Set for `sentinel://` URLs: the Sentinels asked for the current master (`host`/`port` above
   * are then the first Sentinel's), and the master's name (`?master_name=`, or the caller's option).
   */
  sentinels?: { host: string; port: number }[];
  masterName?: string;
}

/**
 * Parses `redis://[[user]:password@]host[:port][/db]` and `rediss://…` (TLS), Celery's and
 * redis-py's spelling. `?db=N` is accepted too, as redis-py does. Other query parameters are
 * returned for the caller to map to its options.
 */
export function parseRedisUrl(url: string): { connection: RedisConnection; params: URLSearchParams } {
  if (/^sentinel:\/\//i.test(url.trim())) return parseSentinelUrl(url);
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new CeleriacError("invalid_argument", `not a Redis URL: ${JSON.stringify(url)}; expected redis://host:6379/0 or rediss://…`);
  }
  const scheme = u.protocol.replace(/:$/, "").toLowerCase();
  if (scheme !== "redis" && scheme !== "rediss") {
    throw new CeleriacError("invalid_argument", `not a Redis URL: ${JSON.stringify(url)}; the scheme must be redis:// or rediss://`);
  }
  const params = new URLSearchParams(u.search);
  let dbText = u.pathname.replace(/^\//, "");
  const dbParam = params.get("db");
  params.delete("db");
  if (dbText === "" && dbParam !== null) dbText = dbParam;
  if (dbText !== "" && !/^\d+$/.test(dbText)) {
    throw new CeleriacError("invalid_argument", `Redis URL ${JSON.stringify(url)}: the path must be a database number, got ${JSON.stringify(dbText)}`);
  }
  const port = u.port === "" ? 6379 : Number(u.port);
  const connection: RedisConnection = {
    host: u.hostname.replace(/^\[(.*)\]$/, "$1") || "localhost",
    port,
    db: dbText === "" ? 0 : Number(dbText),
    tls: scheme === "rediss",
  };
  // WHATWG's URL splits at the last `@` as Python's urlsplit does (a raw `@` in a password is
  // kept, as %40); undo the escapes as Python's unquote does, which never throws.
  if (u.username !== "") connection.username = pyUnquote(u.username);
  if (u.password !== "") connection.password = pyUnquote(u.password);
  return { connection, params };
}

/**
 * kombu's and Celery's Sentinel URL: `sentinel://[:password@]host[:port][/db]` chunks joined by
 * `;`, one per Sentinel (kombu/transport/redis.py `SentinelChannel._sentinel_managed_pool` reads
 * every `sentinel://` alternative as a Sentinel address; celery/backends/redis.py
 * `SentinelBackend._params_from_url` splits on `;` and takes db and password from the first
 * chunk). The password is the master's, as in both. Python takes `master_name` from the
 * transport options only; Celeriac also reads `?master_name=` from the URL, so that one string
 * (a CLI flag, an environment variable) is enough. Query parameters may sit on any chunk.
 */
function parseSentinelUrl(url: string): { connection: RedisConnection; params: URLSearchParams } {
  const chunks = url
    .split(";")
    .map((c) => c.trim())
    .filter((c) => c !== "");
  const params = new URLSearchParams();
  const sentinels: { host: string; port: number }[] = [];
  let first: RedisConnection | undefined;
  for (const chunk of chunks) {
    if (!/^sentinel:\/\//i.test(chunk)) {
      throw new CeleriacError("invalid_argument", `Sentinel URL ${JSON.stringify(url)}: every part must start with sentinel://, got ${JSON.stringify(chunk)}`);
    }
    const parsed = parseRedisUrl(chunk.replace(/^sentinel:/i, "redis:"));
    for (const [k, v] of parsed.params) {
      const seen = params.get(k);
      if (seen !== null && seen !== v)
        throw new CeleriacError("invalid_argument", `Sentinel URL ${JSON.stringify(url)}: ${k} is given twice with different values`);
      if (seen === null) params.set(k, v);
    }
    // A port-less chunk is a Sentinel on kombu's default Redis port; say 26379 explicitly in URLs.
    sentinels.push({ host: parsed.connection.host, port: parsed.connection.port });
    first ??= parsed.connection;
  }
  if (!first) throw new CeleriacError("invalid_argument", `not a Sentinel URL: ${JSON.stringify(url)}; expected sentinel://host:26379;sentinel://host2:26379`);
  if (first.tls) throw new CeleriacError("invalid_argument", `Sentinel URL ${JSON.stringify(url)}: TLS is not supported with Sentinel`);
  const connection: RedisConnection = { ...first, sentinels };
  const name = params.get("master_name");
  params.delete("master_name");
  if (name !== null) {
    if (name === "") throw new CeleriacError("invalid_argument", `Sentinel URL ${JSON.stringify(url)}: master_name is empty`);
    connection.masterName = name;
  }
  return { connection, params };
}

/**
 * The connection of a factory's `url` (default `redis://localhost:6379/0`) with its `masterName`
 * option applied: the option wins over `?master_name=`, and is refused for a URL that is not
 * `sentinel://`, where it would mean nothing.
 */
export function connectionOf(factory: string, url: string | undefined, masterName: string | undefined): RedisConnection {
  const { connection } = parseRedisUrl(url ?? "redis://localhost:6379/0");
  if (masterName === undefined) return connection;
  if (typeof masterName !== "string" || masterName === "") {
    throw new CeleriacError("invalid_argument", `${factory}: masterName must be a non-empty string, got ${JSON.stringify(masterName)}`);
  }
  if (!connection.sentinels) throw new CeleriacError("invalid_argument", `${factory}: masterName is for sentinel:// URLs only`);
  return { ...connection, masterName };
}

/** `client.options` of an ioredis client: Sentinel mode when `sentinels` is set. */
function sentinelOptions(c: RedisConnection, masterName: string): RedisOptions {
  return {
    sentinels: c.sentinels!,
    name: masterName,
    db: c.db,
    ...(c.username !== undefined ? { username: c.username } : {}),
    ...(c.password !== undefined ? { password: c.password } : {}),
    // Reconnect at once when the Sentinels announce +switch-master (instead of on the next error).
    failoverDetector: true,
    // A master demoted while our connection stayed up answers writes with READONLY: reconnect
    // (asking the Sentinels again) and resend the command (2), as a client of a failover must.
    reconnectOnError: (err: Error) => (err.message.startsWith("READONLY") ? 2 : false),
  };
}

/**
 * A connection for log lines and errors, rebuilt from its parts so no password can appear
 * however the URL was written: `redis://user:**@host:6379/0`,
 * `sentinel://h1:26379;sentinel://h2:26379/0 (master mymaster)`.
 */
export function describeConnection(c: RedisConnection): string {
  const auth = c.password !== undefined ? `${c.username ?? ""}:${URL_PASSWORD_MASK}@` : c.username !== undefined ? `${c.username}@` : "";
  const host = (h: string) => (h.includes(":") ? `[${h}]` : h);
  if (c.sentinels) {
    const list = c.sentinels.map((s, i) => `sentinel://${i === 0 ? auth : ""}${host(s.host)}:${s.port}`).join(";");
    return `${list}/${c.db}${c.masterName !== undefined ? ` (master ${c.masterName})` : ""}`;
  }
  return `${c.tls ? "rediss" : "redis"}://${auth}${host(c.host)}:${c.port}/${c.db}`;
}

/**
 * A refusal no reconnect can fix: a wrong password (WRONGPASS), none given to a server that wants
 * one (NOAUTH), a password refused by an old server ("ERR invalid password").
 */
export function isAuthError(err: unknown): boolean {
  const m = err instanceof Error ? err.message : String(err);
  return /^(WRONGPASS|NOAUTH)\b|^ERR invalid password/.test(m);
}

/** ioredis options for a connection; `extra` wins. */
export function ioredisOptions(c: RedisConnection, extra: RedisOptions = {}): RedisOptions {
  if (c.sentinels) {
    if (c.masterName === undefined) {
      throw new CeleriacError(
        "invalid_argument",
        "a sentinel:// URL needs the master's name: add ?master_name=<name> to the URL (kombu's master_name transport option) or pass masterName",
      );
    }
    return { ...sentinelOptions(c, c.masterName), ...extra };
  }
  return {
    host: c.host,
    port: c.port,
    db: c.db,
    ...(c.username !== undefined ? { username: c.username } : {}),
    ...(c.password !== undefined ? { password: c.password } : {}),
    ...(c.tls ? { tls: { servername: c.host } } : {}),
    ...extra,
  };
}

/** Reads a positive number of `scale`-units from a query parameter, in milliseconds. */
export function msParam(url: string, params: URLSearchParams, name: string, scale: number): number | undefined {
  const raw = params.get(name);
  params.delete(name);
  if (raw === null) return undefined;
  const n = Number(raw);
  if (!Number.isFinite(n) || n <= 0) {
    throw new CeleriacError("invalid_argument", `Redis URL ${JSON.stringify(url)}: ${name} must be a positive number, got ${JSON.stringify(raw)}`);
  }
  return n * scale;
}

export function rejectRemaining(url: string, params: URLSearchParams, known: string[]): void {
  const left = [...params.keys()];
  if (left.length > 0) {
    throw new CeleriacError(
      "invalid_argument",
      `Redis URL ${JSON.stringify(url)}: unknown parameter${left.length > 1 ? "s" : ""} ${left.join(", ")}; known: db, ${known.join(", ")}`,
    );
  }
}
