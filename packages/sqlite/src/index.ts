// For users: the factories and their options.
export { createSqliteTransport, type SqliteTransport, type SqliteTransportOptions } from "./transport.js";
export { createSqliteResultBackend, SqliteResultBackend, type SqliteResultBackendOptions } from "./result-backend.js";
export { sqliteTransportFromUrl, sqliteResultBackendFromUrl, parseSqliteUrl } from "./url.js";

// For core's URL resolution (`transportFromUrl("sqlite:///…")` imports this package by scheme).
export { sqliteTransportFromUrl as transportFromUrl, sqliteResultBackendFromUrl as resultBackendFromUrl } from "./url.js";
