import { describe, expect, it } from "vitest";
import {
  celeryJsonCodec,
  createClient,
  createMemoryTransport,
  currentTraceContext,
  decodeTask,
  startTrace,
  withTraceContext,
  type TraceContext,
} from "@celeriac/core";
import { childTraceContext, formatTraceparent, parseTraceparent, traceContextFromHeaders, traceHeaders } from "@celeriac/core/transport";

// The example from the spec's traceparent section.
const TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736";
const PARENT_ID = "00f067aa0ba902b7";
const VALID = `00-${TRACE_ID}-${PARENT_ID}-01`;

describe("traceparent parsing (W3C Trace Context, version 00)", () => {
  it("reads the spec's example", () => {
    expect(parseTraceparent(VALID)).toEqual({ version: 0, traceId: TRACE_ID, parentId: PARENT_ID, traceFlags: 1 });
    expect(parseTraceparent(`00-${TRACE_ID}-${PARENT_ID}-00`)?.traceFlags).toBe(0);
    // Optional whitespace around a header value is allowed.
    expect(parseTraceparent(`  ${VALID}\t`)?.traceId).toBe(TRACE_ID);
  });

  it.each([
    ["all-zero trace id", `00-${"0".repeat(32)}-${PARENT_ID}-01`],
    ["all-zero parent id", `00-${TRACE_ID}-${"0".repeat(16)}-01`],
    ["version ff", `ff-${TRACE_ID}-${PARENT_ID}-01`],
    ["uppercase trace id", `00-${TRACE_ID.toUpperCase()}-${PARENT_ID}-01`],
    ["uppercase parent id", `00-${TRACE_ID}-00F067AA0BA902B7-01`],
    ["uppercase version", `0A-${TRACE_ID}-${PARENT_ID}-01`],
    ["uppercase flags", `00-${TRACE_ID}-${PARENT_ID}-0A`],
    ["short trace id", `00-${TRACE_ID.slice(1)}-${PARENT_ID}-01`],
    ["long trace id", `00-${TRACE_ID}0-${PARENT_ID}-01`],
    ["short parent id", `00-${TRACE_ID}-${PARENT_ID.slice(1)}-01`],
    ["one-digit flags", `00-${TRACE_ID}-${PARENT_ID}-1`],
    ["version 00 with a trailing field", `${VALID}-what`],
    ["version 00 with trailing characters", `${VALID}x`],
    ["non-hex digits", `00-${TRACE_ID.slice(0, 31)}g-${PARENT_ID}-01`],
    ["wrong separators", `00_${TRACE_ID}_${PARENT_ID}_01`],
    ["empty string", ""],
    ["not a string", 42],
  ])("rejects %s", (_label, value) => {
    expect(parseTraceparent(value)).toBeNull();
  });

  it("reads a future version by its first four fields, as the spec's versioning rules say", () => {
    expect(parseTraceparent(`01-${TRACE_ID}-${PARENT_ID}-01`)).toEqual({ version: 1, traceId: TRACE_ID, parentId: PARENT_ID, traceFlags: 1 });
    expect(parseTraceparent(`cc-${TRACE_ID}-${PARENT_ID}-01-what-the-future-will-be-like`)?.parentId).toBe(PARENT_ID);
    // ...but after the flags there must be a dash or nothing.
    expect(parseTraceparent(`cc-${TRACE_ID}-${PARENT_ID}-01.what`)).toBeNull();
  });

  it("formats version 00 and refuses invalid ids", () => {
    expect(formatTraceparent({ traceId: TRACE_ID, spanId: PARENT_ID, traceFlags: 1 })).toBe(VALID);
    expect(formatTraceparent({ traceId: TRACE_ID, spanId: PARENT_ID, traceFlags: 0 })).toBe(`00-${TRACE_ID}-${PARENT_ID}-00`);
    expect(() => formatTraceparent({ traceId: "0".repeat(32), spanId: PARENT_ID, traceFlags: 1 })).toThrow(/traceId/);
    expect(() => formatTraceparent({ traceId: TRACE_ID, spanId: PARENT_ID.toUpperCase(), traceFlags: 1 })).toThrow(/spanId/);
    expect(() => formatTraceparent({ traceId: TRACE_ID, spanId: PARENT_ID, traceFlags: 256 })).toThrow(/traceFlags/);
  });

  it("carries tracestate only with a valid traceparent, verbatim", () => {
    const state = "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7";
    const ctx = traceContextFromHeaders({ traceparent: VALID, tracestate: state });
    expect(ctx).toEqual({ traceId: TRACE_ID, spanId: PARENT_ID, parentSpanId: null, traceFlags: 1, traceState: state });
    expect(traceHeaders(ctx!)).toEqual({ traceparent: VALID, tracestate: state });
    expect(traceContextFromHeaders({ traceparent: "garbage", tracestate: state })).toBeNull();
    expect(traceContextFromHeaders({})).toBeNull();
    expect(traceHeaders({ ...ctx!, traceState: null })).toEqual({ traceparent: VALID });
  });

  it("makes children in the same trace with fresh span ids and the same flags", () => {
    const root = startTrace({ sampled: false });
    expect(root.traceId).toMatch(/^[0-9a-f]{32}$/);
    expect(root.spanId).toMatch(/^[0-9a-f]{16}$/);
    expect(root.traceFlags).toBe(0);
    const child = childTraceContext(root);
    expect(child.traceId).toBe(root.traceId);
    expect(child.parentSpanId).toBe(root.spanId);
    expect(child.spanId).not.toBe(root.spanId);
    expect(child.traceFlags).toBe(0);
    expect(startTrace().traceFlags).toBe(1);
  });
});

describe("current trace context and the client", () => {
  it("is scoped to withTraceContext and survives awaits", async () => {
    const ctx = startTrace();
    expect(currentTraceContext()).toBeNull();
    await withTraceContext(ctx, async () => {
      await new Promise((r) => setTimeout(r, 1));
      expect(currentTraceContext()).toBe(ctx);
      withTraceContext(null, () => expect(currentTraceContext()).toBeNull());
    });
    expect(currentTraceContext()).toBeNull();
  });

  async function sentHeaders(send: (client: ReturnType<typeof createClient>) => Promise<unknown>): Promise<Record<string, unknown>> {
    const transport = createMemoryTransport();
    const client = createClient({ transport });
    await send(client);
    const consumer = transport.consume(["celery"], { prefetch: 1 });
    const it = consumer[Symbol.asyncIterator]();
    const next = await it.next();
    await consumer.stop();
    await transport.close();
    if (next.done) throw new Error("nothing was sent");
    return decodeTask(next.value.message).headers as unknown as Record<string, unknown>;
  }

  it("puts the current context's span in traceparent, and tracestate when there is one", async () => {
    const ctx: TraceContext = { ...startTrace(), traceState: "vendor=abc" };
    const headers = await sentHeaders((c) => withTraceContext(ctx, () => c.sendTask("t.a")));
    const extra = headers["extra"] as Record<string, unknown>;
    expect(extra["traceparent"]).toBe(`00-${ctx.traceId}-${ctx.spanId}-01`);
    expect(extra["tracestate"]).toBe("vendor=abc");
  });

  it("sends no trace header at all without a context, or with traceContext: null", async () => {
    const plain = await sentHeaders((c) => c.sendTask("t.a"));
    expect(plain["extra"]).toEqual({});
    const optedOut = await sentHeaders((c) => withTraceContext(startTrace(), () => c.sendTask("t.a", { traceContext: null })));
    expect(optedOut["extra"]).toEqual({});
  });

  it("takes an explicit traceContext over the current one, and an explicit header over both", async () => {
    const explicit = startTrace();
    const headers = await sentHeaders((c) => withTraceContext(startTrace(), () => c.sendTask("t.a", { traceContext: explicit })));
    expect((headers["extra"] as Record<string, unknown>)["traceparent"]).toBe(`00-${explicit.traceId}-${explicit.spanId}-01`);
    const manual = await sentHeaders((c) => withTraceContext(startTrace(), () => c.sendTask("t.a", { headers: { traceparent: VALID } })));
    expect((manual["extra"] as Record<string, unknown>)["traceparent"]).toBe(VALID);
  });

  it("writes traceparent as a plain message header, where Celery's request and OTel's getter find it", async () => {
    const transport = createMemoryTransport();
    const client = createClient({ transport });
    const ctx = startTrace();
    await withTraceContext(ctx, () => client.sendTask("t.a"));
    const consumer = transport.consume(["celery"], { prefetch: 1 });
    const next = await consumer[Symbol.asyncIterator]().next();
    await consumer.stop();
    await transport.close();
    if (next.done) throw new Error("nothing was sent");
    expect(next.value.message.headers["traceparent"]).toBe(`00-${ctx.traceId}-${ctx.spanId}-01`);
    // The body is untouched: the header is all that changes.
    expect(celeryJsonCodec.decode(next.value.message).args).toEqual([]);
  });
});
