// Celeriac runs on Node and its public types use Node's (or those of clients that do): keep this
// reference in the .d.ts, since TypeScript 6 projects load no @types/* package unless asked.
/// <reference types="node" preserve="true" />
// For users: the factories and their options.
export { createSqliteTransport, type SqliteTransport, type SqliteTransportOptions } from "./transport.js";
export { createSqliteResultBackend, SqliteResultBackend, type SqliteResultBackendOptions } from "./result-backend.js";
export { sqliteTransportFromUrl, sqliteResultBackendFromUrl, parseSqliteUrl } from "./url.js";

// For core's URL resolution (`transportFromUrl("sqlite:///…")` imports this package by scheme).
export { sqliteTransportFromUrl as transportFromUrl, sqliteResultBackendFromUrl as resultBackendFromUrl } from "./url.js";
