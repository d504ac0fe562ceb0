// For users: the factories and their options.
export { createAmqpTransport, type AmqpTransport, type AmqpTransportOptions, DEFAULT_AMQP_URL, REJECT_REASON_HEADER } from "./transport.js";
export { createRpcResultBackend, RpcResultBackend, type RpcResultBackendOptions } from "./rpc-backend.js";
export { amqpTransportFromUrl, rpcResultBackendFromUrl } from "./url.js";

// For library authors and tests: how header values are typed for py-amqp.
export { typeFieldValue, typeFieldTable, type TypedValue } from "./field-table.js";

// For core's URL resolution (`transportFromUrl("amqp://…")` imports this package by scheme).
export { amqpTransportFromUrl as transportFromUrl, rpcResultBackendFromUrl as resultBackendFromUrl } from "./url.js";
