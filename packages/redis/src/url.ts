import { CeleriacError } from "@celeriac/core";
import { pyUnquote } from "@celeriac/core/transport";
import type { RedisOptions } from "ioredis";

/** The connection part of a Redis URL, as ioredis options. */
export interface RedisConnection {
  host: string;
  port: number;
  db: number;
  username?: string;
  password?: string;
  tls: boolean;
}

/**
 * Parses `redis://[[user]:password@]host[:port][/db]` and `rediss://…` (TLS), Celery's and
 * redis-py's spelling. `?db=N` is accepted too, as redis-py does. Other query parameters are
 * returned for the caller to map to its options.
 */
export function parseRedisUrl(url: string): { connection: RedisConnection; params: URLSearchParams } {
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

/** ioredis options for a connection; `extra` wins. */
export function ioredisOptions(c: RedisConnection, extra: RedisOptions = {}): RedisOptions {
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
