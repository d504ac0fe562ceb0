// Celeriac runs on Node and its public types use Node's (or those of clients that do): keep this
// reference in the .d.ts, since TypeScript 6 projects load no @types/* package unless asked.
/// <reference types="node" preserve="true" />
// For users: the factories and their options.
export { createAmqpTransport, type AmqpTransport, type AmqpTransportOptions, DEFAULT_AMQP_URL, REJECT_REASON_HEADER } from "./transport.js";
export { createRpcResultBackend, RpcResultBackend, type RpcResultBackendOptions } from "./rpc-backend.js";
export { amqpTransportFromUrl, rpcResultBackendFromUrl } from "./url.js";

// For library authors and tests: how header values are typed for py-amqp.
export { typeFieldValue, typeFieldTable, decodeFieldTable, type TypedValue } from "./field-table.js";

// For core's URL resolution (`transportFromUrl("amqp://…")` imports this package by scheme).
export { amqpTransportFromUrl as transportFromUrl, rpcResultBackendFromUrl as resultBackendFromUrl } from "./url.js";
