// Celeriac runs on Node and its public types use Node's (or those of clients that do): keep this
// reference in the .d.ts, since TypeScript 6 projects load no @types/* package unless asked.
/// <reference types="node" preserve="true" />
// For users: the factory, its options and the URL form.
export { createSqsTransport, type SqsTransport, type SqsTransportOptions, type SqsPriorityTier } from "./transport.js";
export { DEAD_LETTER_REASON, DEAD_LETTER_SOURCE, DEAD_LETTER_RECEIVES } from "./transport.js";
export { parseSqsUrl, sqsTransportFromUrl } from "./url.js";
export { sqsQueueName, sqsEntityName } from "./names.js";

// For core's URL resolution (`transportFromUrl("sqs://…")` imports this package by scheme).
export { sqsTransportFromUrl as transportFromUrl } from "./url.js";
