import { chain, createClient, defineTask, si, startTrace, withTraceContext, type Signature, type TraceContext } from "@celeriac/core";
import { afterEach, describe, expect, it } from "vitest";
import { harness, result, until, type Harness } from "./helpers.js";

let h: Harness;
afterEach(async () => h?.cleanup());

interface Seen {
  trace: TraceContext | null;
  traceparent: unknown;
}

describe("W3C trace context across producer and worker", () => {
  it("continues a trace: producer -> task A -> task B sent from A's handler", async () => {
    h = harness();
    const client = createClient({ transport: h.transport, resultBackend: h.backend });
    const seen = new Map<string, Seen>();
    const w = h
      .worker()
      .register("t.a", async (ctx) => {
        seen.set("a", { trace: ctx.traceContext, traceparent: ctx.headers["traceparent"] });
        // Awaits in between: the context must survive them.
        await new Promise((r) => setTimeout(r, 1));
        const b = await client.sendTask("t.b");
        return b.id;
      })
      .register("t.b", (ctx) => {
        seen.set("b", { trace: ctx.traceContext, traceparent: ctx.headers["traceparent"] });
        return "done";
      });
    await w.start();

    const producer = { ...startTrace(), traceState: "vendor=kept" };
    const a = await withTraceContext(producer, () => client.sendTask("t.a"));
    const aMeta = await result(h, a.id);
    await result(h, aMeta.result as string);

    const A = seen.get("a")!;
    const B = seen.get("b")!;
    expect(A.traceparent).toBe(`00-${producer.traceId}-${producer.spanId}-01`);
    // A's run is a new span, child of the producer's.
    expect(A.trace).toMatchObject({ traceId: producer.traceId, parentSpanId: producer.spanId, traceFlags: 1, traceState: "vendor=kept" });
    expect(A.trace!.spanId).not.toBe(producer.spanId);
    // B's message names A's span as its parent, in the same trace.
    expect(B.traceparent).toBe(`00-${producer.traceId}-${A.trace!.spanId}-01`);
    expect(B.trace).toMatchObject({ traceId: producer.traceId, parentSpanId: A.trace!.spanId, traceState: "vendor=kept" });
    expect(B.trace!.spanId).not.toBe(A.trace!.spanId);
  });

  it("keeps the sampled flag off when the producer's trace is not sampled", async () => {
    h = harness();
    const client = createClient({ transport: h.transport, resultBackend: h.backend });
    let child: unknown = null;
    const w = h
      .worker()
      .register("t.a", async () => (await client.sendTask("t.b")).id)
      .register("t.b", (ctx) => {
        child = ctx.headers["traceparent"];
      });
    await w.start();
    const producer = startTrace({ sampled: false });
    const a = await withTraceContext(producer, () => client.sendTask("t.a"));
    await result(h, (await result(h, a.id)).result as string);
    expect(child).toMatch(new RegExp(`^00-${producer.traceId}-[0-9a-f]{16}-00$`));
  });

  it("sends no traceparent from a task that came without one, even if the worker was started inside a trace", async () => {
    h = harness();
    const client = createClient({ transport: h.transport, resultBackend: h.backend });
    const seen: Seen[] = [];
    const w = h
      .worker()
      .register("t.a", async (ctx) => {
        seen.push({ trace: ctx.traceContext, traceparent: ctx.headers["traceparent"] });
        return (await client.sendTask("t.b")).id;
      })
      .register("t.b", (ctx) => {
        seen.push({ trace: ctx.traceContext, traceparent: ctx.headers["traceparent"] });
      });
    await withTraceContext(startTrace(), () => w.start());
    const a = await client.sendTask("t.a");
    await result(h, (await result(h, a.id)).result as string);
    expect(seen).toEqual([
      { trace: null, traceparent: undefined },
      { trace: null, traceparent: undefined },
    ]);
  });

  it("ignores an invalid traceparent instead of failing the task", async () => {
    h = harness();
    let trace: TraceContext | null | undefined;
    const w = h.worker().register("t.a", (ctx) => {
      trace = ctx.traceContext;
      return "ran";
    });
    await w.start();
    const id = await h.send("t.a", { headers: { extra: { traceparent: "00-ZZZ-nope-01" } } });
    expect((await result(h, id)).result).toBe("ran");
    expect(trace).toBeNull();
  });

  it("puts the finished task's span on its callbacks and chain steps", async () => {
    h = harness();
    const spans = new Map<string, TraceContext | null>();
    const w = h
      .worker()
      .register("t.first", (ctx) => {
        spans.set("first", ctx.traceContext);
        return 1;
      })
      .register("t.next", (ctx) => {
        spans.set("next", ctx.traceContext);
      });
    await w.start();
    const root = startTrace();
    const next: Signature = { task: "t.next", args: [], kwargs: {}, options: {}, subtaskType: null, immutable: false };
    const client = createClient({ transport: h.transport, resultBackend: h.backend });
    await withTraceContext(root, () => client.sendTask("t.first", { link: next }));
    await until("the callback ran", () => spans.has("next"));
    expect(spans.get("first")).toMatchObject({ traceId: root.traceId, parentSpanId: root.spanId });
    expect(spans.get("next")).toMatchObject({ traceId: root.traceId, parentSpanId: spans.get("first")!.spanId });
  });

  it("client.apply(chain) sends its first step in the current trace, and each step continues from the one before", async () => {
    h = harness();
    const spans = new Map<string, TraceContext | null>();
    const step1 = defineTask<[], string>("t.step1");
    const step2 = defineTask<[], string>("t.step2");
    const w = h
      .worker()
      .register(step1, (ctx) => {
        spans.set("1", ctx.traceContext);
        return "one";
      })
      .register(step2, (ctx) => {
        spans.set("2", ctx.traceContext);
        return "two";
      });
    await w.start();
    const client = createClient({ transport: h.transport, resultBackend: h.backend });
    const root = startTrace();
    const last = await withTraceContext(root, () => client.apply(chain(si(step1), si(step2))));
    await result(h, last.id);
    expect(spans.get("1")).toMatchObject({ traceId: root.traceId, parentSpanId: root.spanId });
    expect(spans.get("2")).toMatchObject({ traceId: root.traceId, parentSpanId: spans.get("1")!.spanId });
  });
});
