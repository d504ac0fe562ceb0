// For users: the factories and their options.
export { createSqliteTransport, SqliteTransport, type SqliteTransportOptions } from "./transport.js";
export { sqliteTransportFromUrl, parseSqliteUrl } from "./url.js";
export { createSqliteResultBackend, SqliteResultBackend, type SqliteResultBackendOptions } from "./result-backend.js";
