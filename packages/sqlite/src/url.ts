import { CeleriacError } from "@celeriac/core";
import { createSqliteResultBackend, type SqliteResultBackend, type SqliteResultBackendOptions } from "./result-backend.js";
import { createSqliteTransport, type SqliteTransport, type SqliteTransportOptions } from "./transport.js";

interface ParamSpec<O> {
  option: keyof O & string;
  /** Multiplier to milliseconds. */
  scale: number;
  unit: string;
}

/** Transport query parameters: Celery's name and unit where Celery has one. */
const TRANSPORT_PARAMS: Record<string, ParamSpec<SqliteTransportOptions>> = {
  // kombu's transport option is in seconds; keep its meaning so a Celery URL works unchanged.
  visibility_timeout: { option: "visibilityTimeoutMs", scale: 1000, unit: "seconds" },
  busy_timeout_ms: { option: "busyTimeoutMs", scale: 1, unit: "milliseconds" },
  min_poll_interval_ms: { option: "minPollIntervalMs", scale: 1, unit: "milliseconds" },
  max_poll_interval_ms: { option: "maxPollIntervalMs", scale: 1, unit: "milliseconds" },
};

const BACKEND_PARAMS: Record<string, ParamSpec<SqliteResultBackendOptions>> = {
  // Celery's result_expires is in seconds.
  result_expires: { option: "expiresMs", scale: 1000, unit: "seconds" },
  busy_timeout_ms: { option: "busyTimeoutMs", scale: 1, unit: "milliseconds" },
  max_poll_interval_ms: { option: "maxPollIntervalMs", scale: 1, unit: "milliseconds" },
};

function parse<O extends { path: string }>(url: string, params: Record<string, ParamSpec<O>>): O {
  const m = /^(?:sqla\+|sqlalchemy\+)?sqlite:\/\/([^?#]*)(?:\?([^#]*))?$/.exec(url);
  if (!m) {
    throw new CeleriacError(
      "invalid_argument",
      `not a SQLite URL: ${JSON.stringify(url)}; expected sqlite:///relative.db, sqlite:////absolute.db or sqla+sqlite:///...`,
    );
  }
  const rest = m[1] ?? "";
  let path: string;
  if (rest === "" || rest === "/:memory:") path = ":memory:";
  else if (rest.startsWith("/")) path = decodeURIComponent(rest.slice(1));
  else
    throw new CeleriacError(
      "invalid_argument",
      `SQLite URL ${JSON.stringify(url)} has a host part; use three slashes for a relative path, four for an absolute one`,
    );
  const options = { path } as O;
  for (const [key, raw] of new URLSearchParams(m[2] ?? "")) {
    const spec = params[key];
    if (!spec) {
      throw new CeleriacError(
        "invalid_argument",
        `SQLite URL: unknown parameter ${JSON.stringify(key)}; known parameters are ${Object.keys(params).join(", ")}`,
      );
    }
    const n = Number(raw);
    if (raw.trim() === "" || !Number.isFinite(n) || n <= 0) {
      throw new CeleriacError("invalid_argument", `SQLite URL: ${key} must be a positive number of ${spec.unit}, got ${JSON.stringify(raw)}`);
    }
    (options as Record<string, unknown>)[spec.option] = n * spec.scale;
  }
  return options;
}

/**
 * Reads a broker URL into transport options. Accepts SQLAlchemy's spelling, as Celery does:
 * `sqlite:///relative/path.db` (three slashes: relative to the working directory),
 * `sqlite:////abs/path.db` (four: absolute), either with `sqla+` in front (Celery's broker
 * spelling), and `sqlite://` or `sqlite:///:memory:` for a private in-memory database.
 * Query parameters: `visibility_timeout` (seconds, as in kombu), `busy_timeout_ms`,
 * `min_poll_interval_ms`, `max_poll_interval_ms`; anything else is rejected.
 */
export function parseSqliteUrl(url: string): SqliteTransportOptions {
  return parse(url, TRANSPORT_PARAMS);
}

/** Creates a transport from a Celery-style broker URL; see {@link parseSqliteUrl}. */
export function sqliteTransportFromUrl(url: string): SqliteTransport {
  return createSqliteTransport(parseSqliteUrl(url));
}

/**
 * Creates the result backend from `sqlite:///results.db` (same path rules as the broker URL).
 * Query parameters: `result_expires` (seconds, as Celery's setting), `busy_timeout_ms`,
 * `max_poll_interval_ms`.
 */
export function sqliteResultBackendFromUrl(url: string): SqliteResultBackend {
  return createSqliteResultBackend(parse(url, BACKEND_PARAMS));
}
