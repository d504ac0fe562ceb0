import { AsyncLocalStorage } from "node:async_hooks";
import { randomBytes } from "node:crypto";
import { CeleriacError } from "./errors.js";

/**
 * W3C Trace Context (https://www.w3.org/TR/trace-context/): which trace a piece of work belongs
 * to and which span it is. Celeriac records no spans itself; it carries these ids from producer
 * to worker in the `traceparent`/`tracestate` message headers, the header names OpenTelemetry's
 * Celery instrumentation injects and extracts, so a trace continues across TS and Python.
 */
export interface TraceContext {
  /** 32 lowercase hex digits, not all zero. */
  readonly traceId: string;
  /** 16 lowercase hex digits, not all zero: the current span, sent as `parent-id` to children. */
  readonly spanId: string;
  /** The span this one is a child of, when known (null for a root or a context read off a message). */
  readonly parentSpanId: string | null;
  /** The trace-flags byte; bit 0 is `sampled`. Other bits are carried as received. */
  readonly traceFlags: number;
  /** The `tracestate` header, passed through unchanged; null when there is none. */
  readonly traceState: string | null;
}

/** A `traceparent` header, parsed. */
export interface Traceparent {
  version: number;
  traceId: string;
  parentId: string;
  traceFlags: number;
}

const HEX2 = /^[0-9a-f]{2}$/;
const TRACE_ID = /^[0-9a-f]{32}$/;
const SPAN_ID = /^[0-9a-f]{16}$/;
const ZERO_TRACE_ID = "0".repeat(32);
const ZERO_SPAN_ID = "0".repeat(16);
// A version-00 traceparent is exactly this long: 2 + 1 + 32 + 1 + 16 + 1 + 2.
const V00_LENGTH = 55;
// The spec asks vendors to propagate at least 512 characters of tracestate; beyond a sane bound a
// header is more likely garbage (or an attack on log sizes) than a real list of 32 members.
const MAX_TRACESTATE_LENGTH = 8192;

/**
 * Parses a `traceparent` header as the spec's "Version-format" and "Versioning of traceparent"
 * sections say: version 00 must be exactly 55 characters; version ff is invalid; a later version
 * is read by its first four fields and must have a `-` (or nothing) after the flags. Hex must be
 * lowercase, and the all-zero trace id and parent id are invalid. Returns null for anything
 * invalid: the spec says to start a new trace then, not to fail.
 */
export function parseTraceparent(value: unknown): Traceparent | null {
  if (typeof value !== "string") return null;
  // Header values may carry optional whitespace around them (RFC 7230 OWS).
  const s = value.trim();
  if (s.length < V00_LENGTH) return null;
  const version = s.slice(0, 2);
  if (!HEX2.test(version) || version === "ff") return null;
  if (version === "00" && s.length !== V00_LENGTH) return null;
  if (s.length > V00_LENGTH && s[V00_LENGTH] !== "-") return null;
  if (s[2] !== "-" || s[35] !== "-" || s[52] !== "-") return null;
  const traceId = s.slice(3, 35);
  const parentId = s.slice(36, 52);
  const flags = s.slice(53, 55);
  if (!TRACE_ID.test(traceId) || traceId === ZERO_TRACE_ID) return null;
  if (!SPAN_ID.test(parentId) || parentId === ZERO_SPAN_ID) return null;
  if (!HEX2.test(flags)) return null;
  return { version: Number.parseInt(version, 16), traceId, parentId, traceFlags: Number.parseInt(flags, 16) };
}

/** Formats a version-00 `traceparent` for the span `spanId` of trace `traceId`. */
export function formatTraceparent(ctx: Pick<TraceContext, "traceId" | "spanId" | "traceFlags">): string {
  if (!TRACE_ID.test(ctx.traceId) || ctx.traceId === ZERO_TRACE_ID) {
    throw new CeleriacError("invalid_argument", `traceparent: traceId must be 32 lowercase hex digits, not all zero, got ${JSON.stringify(ctx.traceId)}`);
  }
  if (!SPAN_ID.test(ctx.spanId) || ctx.spanId === ZERO_SPAN_ID) {
    throw new CeleriacError("invalid_argument", `traceparent: spanId must be 16 lowercase hex digits, not all zero, got ${JSON.stringify(ctx.spanId)}`);
  }
  if (!Number.isInteger(ctx.traceFlags) || ctx.traceFlags < 0 || ctx.traceFlags > 0xff) {
    throw new CeleriacError("invalid_argument", `traceparent: traceFlags must be an integer 0..255, got ${String(ctx.traceFlags)}`);
  }
  return `00-${ctx.traceId}-${ctx.spanId}-${ctx.traceFlags.toString(16).padStart(2, "0")}`;
}

/** `tracestate` is passed through verbatim when it is a printable ASCII string of sane length. */
function cleanTraceState(value: unknown): string | null {
  if (typeof value !== "string") return null;
  const s = value.trim();
  if (s === "" || s.length > MAX_TRACESTATE_LENGTH || !/^[\x20-\x7e]*$/.test(s)) return null;
  return s;
}

/**
 * The trace context a message carries (its `traceparent`, and `tracestate` when valid), or null.
 * The returned context's `spanId` is the sender's span; continue it with `childTraceContext`.
 */
export function traceContextFromHeaders(headers: Readonly<Record<string, unknown>>): TraceContext | null {
  const parsed = parseTraceparent(headers["traceparent"]);
  if (!parsed) return null;
  return {
    traceId: parsed.traceId,
    spanId: parsed.parentId,
    parentSpanId: null,
    traceFlags: parsed.traceFlags,
    // The spec: a tracestate without a valid traceparent is discarded (handled by returning above).
    traceState: cleanTraceState(headers["tracestate"]),
  };
}

/** The headers to put on a message sent from within `ctx`: the message's parent is `ctx`'s span. */
export function traceHeaders(ctx: TraceContext): { traceparent: string; tracestate?: string } {
  const traceparent = formatTraceparent(ctx);
  return ctx.traceState !== null ? { traceparent, tracestate: ctx.traceState } : { traceparent };
}

function randomHexId(bytes: number): string {
  for (;;) {
    const id = randomBytes(bytes).toString("hex");
    // All zeros is the spec's "invalid"; astronomically unlikely, but cheap to rule out.
    if (!/^0+$/.test(id)) return id;
  }
}

/** A new span id: 16 lowercase hex digits, not all zero. */
export function newSpanId(): string {
  return randomHexId(8);
}

/** A new trace id: 32 lowercase hex digits, not all zero. */
export function newTraceId(): string {
  return randomHexId(16);
}

/** Starts a new trace: a root span with a fresh trace id. Sampled unless told otherwise. */
export function startTrace(options: { sampled?: boolean; traceState?: string } = {}): TraceContext {
  return {
    traceId: newTraceId(),
    spanId: newSpanId(),
    parentSpanId: null,
    traceFlags: options.sampled === false ? 0 : 1,
    traceState: cleanTraceState(options.traceState),
  };
}

/** A new span in `parent`'s trace, its child: same trace id, flags and tracestate, a fresh span id. */
export function childTraceContext(parent: TraceContext): TraceContext {
  return { traceId: parent.traceId, spanId: newSpanId(), parentSpanId: parent.spanId, traceFlags: parent.traceFlags, traceState: parent.traceState };
}

/** True when the sampled bit of the trace flags is set. */
export function isSampled(ctx: TraceContext): boolean {
  return (ctx.traceFlags & 1) === 1;
}

const current = new AsyncLocalStorage<TraceContext | null>();

/**
 * Runs `fn` with `ctx` as the current trace context; everything it awaits or schedules sees it,
 * and tasks sent through a Client from there carry it. `null` runs `fn` with no context at all.
 */
export function withTraceContext<T>(ctx: TraceContext | null, fn: () => T): T {
  return current.run(ctx, fn);
}

/** The trace context of the code running now, or null outside any `withTraceContext`. */
export function currentTraceContext(): TraceContext | null {
  return current.getStore() ?? null;
}
