// Celeriac runs on Node and its public types use Node's (or those of clients that do): keep this
// reference in the .d.ts, since TypeScript 6 projects load no @types/* package unless asked.
/// <reference types="node" preserve="true" />
// `@celeriac/core`: what users need to define tasks, send them, read their results and operate
// workers. Transport, result-backend and runtime authors import `@celeriac/core/transport`.

// ---- Define tasks, send them, read results ----------------------------------------------------
export { defineTask, parseRateLimit, type TaskDefinition, type TaskOptions, type ArgsOf, type ResultOf, type KwargsOf } from "./task.js";
export { Client, createClient, type ClientOptions, type SendOptions, type ApplyOptions, type CanvasResultHandle } from "./client.js";
export { AsyncResult, GroupResult, type GetResultOptions } from "./result.js";
export { signature } from "./signature.js";
export { chain, group, chord, s, si, withOptions, withKwargs, type Canvas, type CanvasResult, type CanvasHandle, type SignatureOptions } from "./canvas.js";
export { CeleriacError, TaskFailedError, Retry, Reject, type CeleriacErrorCode } from "./errors.js";
export type { TaskEnvelope, Signature, TaskState, ResultMeta, ExceptionInfo } from "./envelope.js";
export { createEnvelope, READY_STATES } from "./envelope.js";
export { withTraceContext, currentTraceContext, startTrace, type TraceContext } from "./trace-context.js";

// ---- Connections: from URLs, or the built-in ones ------------------------------------------
export { transportFromUrl, resultBackendFromUrl, loadUrlPackage } from "./urls.js";
export { maskUrl } from "./url-credentials.js";
export { createFileResultBackend, fileResultBackendFromUrl, type FileResultBackend, type FileResultBackendOptions } from "./file-backend.js";
export { createMemoryTransport, type MemoryTransport, type MemoryTransportOptions } from "./memory-transport.js";
export { createMemoryResultBackend, type MemoryResultBackend } from "./memory-backend.js";
// The contracts, as types: what a transport or backend passed around is.
export type { Transport, TransportCapabilities, ResultBackend, DeadLetter } from "./transport.js";
export type { ConnectionEvent, ConnectionEvents } from "./lifecycle.js";

// ---- Operations: remote control of running workers (celery inspect / celery control) -------
export {
  createControl,
  DEFAULT_CONTROL_TIMEOUT_MS,
  type Control,
  type ControlOptions,
  type BroadcastOptions,
  type Inspect,
  type RevokeOptions,
  type ControlReplies,
  type TaskInfo,
  type ScheduledTaskInfo,
  type WorkerStats,
} from "./control.js";

// ---- Codecs: Celery JSON (what Python reads) and protobuf ------------------------------------
export { type Codec, celeryJsonCodec, protobufCodec, decodeTask } from "./codec/index.js";
