// Celeriac runs on Node and its public types use Node's (or those of clients that do): keep this
// reference in the .d.ts, since TypeScript 6 projects load no @types/* package unless asked.
/// <reference types="node" preserve="true" />
// ---- For users: define tasks, send them, read results ----------------------------------------
export { defineTask, parseRateLimit, type TaskDefinition, type TaskOptions, type ArgsOf, type ResultOf, type KwargsOf } from "./task.js";
export { Client, createClient, type ClientOptions, type SendOptions } from "./client.js";
export { AsyncResult, resultFromMeta, asExceptionInfo, type GetResultOptions } from "./result.js";
export { signature } from "./signature.js";
export { GroupResult } from "./result.js";
export { chain, group, chord, s, si, withOptions, withKwargs, type Canvas, type CanvasResult, type CanvasHandle, type SignatureOptions } from "./canvas.js";
export type { ApplyOptions, CanvasResultHandle } from "./client.js";
export { CeleriacError, TaskFailedError, Retry, Reject, type CeleriacErrorCode } from "./errors.js";
export { transportFromUrl, resultBackendFromUrl, loadUrlPackage } from "./urls.js";
export { FileResultBackend, createFileResultBackend, fileResultBackendFromUrl, type FileResultBackendOptions } from "./file-backend.js";
export { MemoryTransport, createMemoryTransport, type MemoryTransportOptions } from "./memory-transport.js";
export { MemoryResultBackend, createMemoryResultBackend } from "./memory-backend.js";
export type { TaskEnvelope, TaskHeaders, TaskProperties, TaskEmbed, Signature, TaskState, ResultMeta, ExceptionInfo } from "./envelope.js";
export { createEnvelope, emptyEmbed, READY_STATES } from "./envelope.js";
export { withTraceContext, currentTraceContext, startTrace, childTraceContext, traceContextFromHeaders, traceHeaders, parseTraceparent, formatTraceparent, newTraceId, newSpanId, isSampled, type TraceContext, type Traceparent } from "./trace-context.js";

// ---- Operations: remote control of running workers (celery inspect / celery control) -------
export { createControl, LamportClock, PIDBOX_EXCHANGE, PIDBOX_REPLY_EXCHANGE, CONTROL_QUEUE_TTL_MS, CONTROL_QUEUE_EXPIRES_MS, DEFAULT_CONTROL_TIMEOUT_MS, pidboxQueueName, encodeControlMessage, decodeControlBody, type Control, type ControlOptions, type BroadcastOptions, type Inspect, type RevokeOptions, type ControlRequest, type ControlReply, type ControlOkReply, type ControlErrorReply, type ControlReplies, type TaskInfo, type ScheduledTaskInfo, type WorkerStats } from "./control.js";

// ---- Codecs: Celery JSON (what Python reads) and protobuf ------------------------------------
export { type Codec, celeryJsonCodec, decodeTask, decompressMessage, defaultCodecs } from "./codec/index.js";
export { createCeleryJsonCodec, kombuValueEncoder, reviveKombuTypes, pyIsoformat, type CeleryJsonCodecOptions, type KombuJsonDialect } from "./codec/celery-json.js";
export { protobufCodec, encodeResultMeta, decodeResultMeta, PROTOBUF_CONTENT_TYPE } from "./codec/protobuf.js";

// ---- For transport and backend authors: contracts, framing, helpers --------------------------
export type { Transport, TransportCapabilities, Delivery, Consumer, ConsumeOptions, PublishOptions, NackOptions, ResultBackend } from "./transport.js";
export type { ExchangeMessaging, ExchangeSpec, SubscribeOptions, ExchangeDelivery, ExchangeSubscription } from "./transport.js";
export { toWireProperties, type WireMessage, type WireProperties } from "./wire.js";
export { toKombuEnvelope, fromKombuEnvelope, stringifyKombuEnvelope, parseKombuEnvelope, type KombuEnvelope, type KombuFraming } from "./kombu-envelope.js";
export { pyParse, pyStringify, formatPyFloat, MAX_JSON_DEPTH, type PyStringifyOptions } from "./codec/py-json.js";
export { stringifyCeleryJson, parseCeleryJson, parseResultMeta } from "./result-json.js";
export { assertKnownOptions, assertConsumeArguments, optionKeys } from "./options.js";
export { ChangeSignal } from "./change-signal.js";
export { pollForResult } from "./memory-backend.js";
export { toCeleryIso, toCeleryNaiveUtc, parseCeleryTime } from "./time.js";
export { pyRepr, truncatedRepr } from "./py-repr.js";
export type { ChordPartReturn } from "./transport.js";
export { planCanvas, toWireSignature, fromWireSignature, chordSizeOf, chordOutcome, exceptionRepr, type CanvasPlan, type CanvasContext, type PlannedMessage, type ResultRef, type ChordPart, type WireSignature } from "./canvas.js";
