import { CeleriacError } from "@celeriac/core";
import { createSqliteTransport, type SqliteTransport, type SqliteTransportOptions } from "./transport.js";

/** Query parameters a URL may carry: Celery's name and unit where Celery has one. */
const PARAMS: Record<string, { option: keyof SqliteTransportOptions; scale: number; unit: string }> = {
  // kombu's transport option is in seconds; keep its meaning so a Celery URL works unchanged.
  visibility_timeout: { option: "visibilityTimeoutMs", scale: 1000, unit: "seconds" },
  busy_timeout_ms: { option: "busyTimeoutMs", scale: 1, unit: "milliseconds" },
  min_poll_interval_ms: { option: "minPollIntervalMs", scale: 1, unit: "milliseconds" },
  max_poll_interval_ms: { option: "maxPollIntervalMs", scale: 1, unit: "milliseconds" },
};

/**
 * Reads a broker URL into transport options. Accepts SQLAlchemy's spelling, as Celery does:
 * `sqlite:///relative/path.db` (three slashes, relative to the working directory),
 * `sqlite:////abs/path.db` (four slashes, absolute), the same with `sqla+` or `sqlalchemy+`
 * in front, and `sqlite://` or `sqlite:///:memory:` for a private in-memory database.
 */
export function parseSqliteUrl(url: string): SqliteTransportOptions {
  const m = /^(?:sqla\+|sqlalchemy\+)?sqlite:\/\/([^?#]*)(?:\?([^#]*))?$/.exec(url);
  if (!m) {
    throw new CeleriacError("invalid_argument", `not a SQLite broker URL: ${JSON.stringify(url)}; expected sqlite:///relative.db, sqlite:////absolute.db or sqla+sqlite:///...`);
  }
  const rest = m[1] ?? "";
  let path: string;
  if (rest === "" || rest === "/:memory:") path = ":memory:";
  else if (rest.startsWith("/")) path = decodeURIComponent(rest.slice(1));
  else throw new CeleriacError("invalid_argument", `SQLite URL ${JSON.stringify(url)} has a host part; use three slashes for a relative path, four for an absolute one`);
  if (path === "") throw new CeleriacError("invalid_argument", `SQLite URL ${JSON.stringify(url)} names no file`);
  const options: SqliteTransportOptions = { path };
  for (const [key, raw] of new URLSearchParams(m[2] ?? "")) {
    const spec = PARAMS[key];
    if (!spec) {
      throw new CeleriacError("invalid_argument", `SQLite URL: unknown parameter ${JSON.stringify(key)}; known parameters are ${Object.keys(PARAMS).join(", ")}`);
    }
    const n = Number(raw);
    if (raw.trim() === "" || !Number.isFinite(n) || n <= 0) {
      throw new CeleriacError("invalid_argument", `SQLite URL: ${key} must be a positive number of ${spec.unit}, got ${JSON.stringify(raw)}`);
    }
    (options as unknown as Record<string, number>)[spec.option] = n * spec.scale;
  }
  return options;
}

/** Creates a transport from a Celery-style broker URL; see {@link parseSqliteUrl}. */
export function sqliteTransportFromUrl(url: string): SqliteTransport {
  return createSqliteTransport(parseSqliteUrl(url));
}
