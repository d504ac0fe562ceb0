/// <reference types="node" preserve="true" />
// `@celeriac/core/transport`: what transport, result-backend and runtime authors build on (the
// Celeriac transports, the worker). Users define tasks and send them with `@celeriac/core`;
// nothing here is needed for that.

// ---- Contracts ------------------------------------------------------------------------------
export type {
  Transport,
  TransportCapabilities,
  Delivery,
  Consumer,
  ConsumeOptions,
  PublishOptions,
  NackOptions,
  ResultBackend,
  ChordPartReturn,
  DeadLetter,
  ExchangeMessaging,
  ExchangeSpec,
  SubscribeOptions,
  ExchangeDelivery,
  ExchangeSubscription,
} from "./transport.js";
export { CeleriacError, type CeleriacErrorCode } from "./errors.js";
export { toWireProperties, type WireMessage, type WireProperties } from "./wire.js";

// ---- The plumbing every transport shares, written once ------------------------------------------
export { createDelivery, type DeliveryInit, type DeliveryOps } from "./delivery.js";
export { DeliveryQueue, type DeliveryQueueOptions } from "./delivery-queue.js";
export { SettleBatch } from "./settle-batch.js";
export { ConnectionLifecycle, Backoff, sleep, type BackoffOptions, type ConnectionEvent, type ConnectionEvents } from "./lifecycle.js";
export { assertPublishable } from "./publish-check.js";
export { assertKnownOptions, assertConsumeArguments, optionKeys } from "./options.js";
export { stringifyCeleryJson, parseCeleryJson, parseResultMeta } from "./result-json.js";
export { ChangeSignal } from "./change-signal.js";
export { pollForResult } from "./memory-backend.js";

// ---- Framing: kombu's virtual-transport envelope, Python's JSON, Celery's times and reprs ----
export {
  toKombuEnvelope,
  fromKombuEnvelope,
  stringifyKombuEnvelope,
  parseKombuEnvelope,
  notKombuMessage,
  NOT_KOMBU_CONTENT_TYPE,
  type KombuEnvelope,
  type KombuFraming,
  type KombuReading,
} from "./kombu-envelope.js";
export {
  maskUrl,
  pyUnquote,
  rawDelimiterInPassword,
  splitUrlCredentials,
  withEncodedCredentials,
  URL_PASSWORD_MASK,
  type UrlCredentials,
} from "./url-credentials.js";
export { pyParse, pyStringify, formatPyFloat, MAX_JSON_DEPTH, type PyStringifyOptions } from "./codec/py-json.js";
export {
  createCeleryJsonCodec,
  kombuValueEncoder,
  reviveKombuTypes,
  pyIsoformat,
  type CeleryJsonCodecOptions,
  type KombuJsonDialect,
} from "./codec/celery-json.js";
export { encodeResultMeta, decodeResultMeta, PROTOBUF_CONTENT_TYPE } from "./codec/protobuf.js";
export { decompressMessage, defaultCodecs } from "./codec/index.js";
export { toCeleryIso, toCeleryNaiveUtc, parseCeleryTime } from "./time.js";
export { pyRepr, truncatedRepr } from "./py-repr.js";
export type { TaskHeaders, TaskProperties, TaskEmbed, ResultMeta, TaskState, ExceptionInfo } from "./envelope.js";
export { emptyEmbed, READY_STATES } from "./envelope.js";

// ---- For runtimes (the worker): canvas planning and the remote-control wire ------------------
export {
  planCanvas,
  toWireSignature,
  fromWireSignature,
  chordSizeOf,
  chordOutcome,
  exceptionRepr,
  type CanvasPlan,
  type CanvasContext,
  type PlannedMessage,
  type ResultRef,
  type ChordPart,
  type WireSignature,
} from "./canvas.js";
export {
  LamportClock,
  PIDBOX_EXCHANGE,
  PIDBOX_REPLY_EXCHANGE,
  CONTROL_QUEUE_TTL_MS,
  CONTROL_QUEUE_EXPIRES_MS,
  pidboxQueueName,
  encodeControlMessage,
  decodeControlBody,
  type ControlRequest,
  type ControlReply,
  type ControlOkReply,
  type ControlErrorReply,
} from "./control.js";
export {
  traceContextFromHeaders,
  traceHeaders,
  parseTraceparent,
  formatTraceparent,
  newTraceId,
  newSpanId,
  isSampled,
  childTraceContext,
  type Traceparent,
} from "./trace-context.js";
export { resultFromMeta, asExceptionInfo } from "./result.js";
