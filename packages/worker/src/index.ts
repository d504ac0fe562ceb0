// Celeriac runs on Node and its public types use Node's (or those of clients that do): keep this
// reference in the .d.ts, since TypeScript 6 projects load no @types/* package unless asked.
/// <reference types="node" preserve="true" />
// For users.
export { createWorker, type Worker, type WorkerState, type TaskHandler, type StopOptions, type CreateWorkerOptions } from "./worker.js";
export type { WorkerOptions } from "./options.js";
export type { TaskContext, RetryOptions, DeliveryInfo } from "./context.js";
export type { WorkerEvent, WorkerEventListener, WorkerCounters, HeldTask } from "./events.js";
export type { Logger, LogRecord, LogLevel } from "./logger.js";
export { jsonLinesLogger } from "./logger.js";
export { installSignalHandlers } from "./signals.js";
export { SoftTimeLimitExceeded, TimeLimitExceeded, WorkerShutdownError, TaskRevokedError } from "./errors.js";

// For tooling built on the worker.
export { retryDelayMs } from "./retry.js";
