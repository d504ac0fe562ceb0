import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createClient, createFileResultBackend, startTrace, withTraceContext, type TraceContext } from "@celeriac/core";
import { sqliteTransportFromUrl, type SqliteTransport } from "@celeriac/sqlite";
import { createWorker } from "@celeriac/worker";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runPython, startPythonWorker, type PythonWorker } from "../../../test-support/python.js";

// W3C trace context between Celeriac and real Python Celery 5.2.6 over the sqla+sqlite broker:
// the header a TS producer writes is what Python's task request (and so OpenTelemetry's Celery
// instrumentation) reads, and a header a Python producer adds is what the TS worker continues.
describe("trace context with Python Celery (sqla+sqlite)", () => {
  const dir = mkdtempSync(join(tmpdir(), "celeriac-trace-py-"));
  const db = join(dir, "broker.db");
  const results = join(dir, "results");
  const pyEnv = { brokerUrl: `sqla+sqlite:///${db}`, resultUrl: `file://${results}`, app: "trace_app" };
  let transport: SqliteTransport;
  let py: PythonWorker;

  beforeAll(async () => {
    mkdirSync(results); // Celery's file backend wants the directory to exist
    // Celeriac creates the file first, so both sides see the same schema from the start.
    transport = sqliteTransportFromUrl(`sqlite:///${db}`);
    await transport.connect();
    py = await startPythonWorker({ ...pyEnv, queues: ["celery"] });
  }, 60_000);
  afterAll(async () => {
    await py?.stop();
    await transport?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it("Python's task request sees the traceparent and tracestate a TS producer sent", async () => {
    const client = createClient({ transport, resultBackend: createFileResultBackend({ directory: results }) });
    const ctx: TraceContext = { ...startTrace(), traceState: "congo=t61rcWkgMzE" };
    const traced = await withTraceContext(ctx, () => client.sendTask("pytrace.headers"));
    expect(await traced.get({ timeoutMs: 30_000 }), py.output()).toEqual({
      traceparent: `00-${ctx.traceId}-${ctx.spanId}-01`,
      tracestate: "congo=t61rcWkgMzE",
    });
    const plain = await client.sendTask("pytrace.headers");
    expect(await plain.get({ timeoutMs: 30_000 })).toEqual({ traceparent: null, tracestate: null });
  });

  it("the TS worker continues a trace a Python producer put in the message headers", async () => {
    const worker = createWorker({ transport, resultBackend: createFileResultBackend({ directory: results }), queues: ["ts-trace"], silent: true });
    worker.register("ts.trace", (ctx) => ctx.traceContext);
    await worker.start();
    try {
      // What OpenTelemetry's before_task_publish hook does: inject into the message headers.
      const traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
      const out = JSON.parse(
        await runPython(pyEnv, "send_and_wait.py", [
          "ts.trace",
          "[]",
          "{}",
          JSON.stringify({ queue: "ts-trace", headers: { traceparent, tracestate: "rojo=1" } }),
        ]),
      ) as { status: string; result: TraceContext };
      expect(out.status).toBe("SUCCESS");
      expect(out.result).toMatchObject({
        traceId: "4bf92f3577b34da6a3ce929d0e0e4736",
        parentSpanId: "00f067aa0ba902b7",
        traceFlags: 1,
        traceState: "rojo=1",
      });
      expect(out.result.spanId).toMatch(/^[0-9a-f]{16}$/);
    } finally {
      await worker.stop();
    }
  });
});
