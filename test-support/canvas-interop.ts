import { randomUUID } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { chain, chord, createClient, defineTask, group, s, TaskFailedError, withOptions, type Client, type Transport } from "@celeriac/core";
import { createRedisResultBackend, type RedisResultBackend } from "@celeriac/redis";
import { createWorker, type Worker } from "@celeriac/worker";
import { runPython, startPythonWorker, type PythonEnv, type PythonWorker } from "./python.js";

/**
 * The canvas interop suite, run by each broker package against its real broker, with a real
 * Python Celery 5.2.6 worker (test-support/python/canvas_app.py) and Celery's Redis result
 * backend on a private redis-server. Python tasks (py.*) run only on the Python worker's queue,
 * TypeScript tasks (ts.*) only on the TS worker's; each appends its language to its value.
 */
export interface CanvasBroker {
  brokerUrl: string;
  resultUrl: string;
  /** A new, unconnected transport on the broker; closed by the suite. */
  transport(): Transport;
}

// Queue names fixed by canvas_app.py's defaults (CELERIAC_PY_QUEUE / CELERIAC_TS_QUEUE).
const PY_QUEUE = "canvas-py";
const TS_QUEUE = "canvas-ts";

type Tagged = string[];
const pyAppend = defineTask<[Tagged, number?], Tagged>("py.append");
const tsAppend = defineTask<[Tagged, number?], Tagged>("ts.append");
const pyCollect = defineTask<[unknown[]], { lang: string; results: unknown[] }>("py.collect");
const tsCollect = defineTask<[unknown[]], { lang: string; results: unknown[] }>("ts.collect");
const pyFail = defineTask<[string], never>("py.fail");
const tsFail = defineTask<[string], never>("ts.fail");
const pyOnError = defineTask<[string], { lang: string; failed: string }>("py.on_error");
const tsOnError = defineTask<[string], { lang: string; failed: string }>("ts.on_error");

const GET = { timeoutMs: 20_000 };

export function canvasInteropSuite(name: string, setup: () => Promise<CanvasBroker>, teardown: () => Promise<void>): void {
  let broker: CanvasBroker;
  let py: PythonWorker;
  let worker: Worker;
  let client: Client;
  let backend: RedisResultBackend;
  const closers: (() => Promise<unknown>)[] = [];
  let pyEnv: PythonEnv;
  /** How many times each ts.collect (chord body) ran, by task id. */
  const bodyRuns = new Map<string, number>();

  beforeAll(async () => {
    broker = await setup();
    pyEnv = { brokerUrl: broker.brokerUrl, resultUrl: broker.resultUrl, app: "canvas_app" };
    py = await startPythonWorker({ ...pyEnv, queues: [PY_QUEUE], pool: "threads", concurrency: 4 });
    closers.push(() => py.stop());

    const workerTransport = broker.transport();
    const workerBackend = createRedisResultBackend({ url: broker.resultUrl });
    closers.push(
      () => workerTransport.close(),
      () => workerBackend.close(),
    );
    await workerTransport.connect();
    worker = createWorker({
      transport: workerTransport,
      resultBackend: workerBackend,
      queues: [TS_QUEUE],
      routes: { "py.*": PY_QUEUE },
      concurrency: 4,
      prefetchMultiplier: 1,
      silent: true,
    })
      .register(tsAppend, async (_ctx, value, delay) => {
        if (delay) await new Promise((r) => setTimeout(r, delay * 1000));
        return [...value, "ts"];
      })
      .register(tsCollect, (ctx, results) => {
        bodyRuns.set(ctx.id, (bodyRuns.get(ctx.id) ?? 0) + 1);
        return { lang: "ts", results };
      })
      .register(tsFail, (_ctx, message) => {
        throw new RangeError(message);
      })
      .register(tsOnError, (_ctx, taskId) => ({ lang: "ts", failed: taskId }));
    await worker.start();
    closers.push(() => worker.stop());

    const transport = broker.transport();
    backend = createRedisResultBackend({ url: broker.resultUrl });
    closers.push(
      () => transport.close(),
      () => backend.close(),
    );
    client = createClient({ transport, resultBackend: backend, routes: { "py.*": PY_QUEUE, "ts.*": TS_QUEUE } });
  }, 60_000);

  afterAll(async () => {
    for (const close of closers.reverse()) await close().catch(() => undefined);
    await teardown();
  }, 30_000);

  /** The result of the header task that sent the chord body (the body's parent). */
  const completedBy = async (bodyId: string): Promise<unknown> => {
    const parentId = (await backend.get(bodyId))?.parent_id;
    expect(typeof parentId).toBe("string");
    return (await backend.get(parentId!))?.result;
  };

  const pyOut = async <T>(...args: string[]): Promise<T> => JSON.parse(await runPython(pyEnv, "canvas_send.py", args)) as T;

  describe(`${name}: canvas with Python Celery`, () => {
    it("chain Python -> TypeScript -> Python, sent from TypeScript", async () => {
      const r = await client.apply(chain(s(pyAppend, ["ts-client"]), s(tsAppend), s(pyAppend)));
      expect(await r.get(GET)).toEqual(["ts-client", "py", "ts", "py"]);
    });

    it("chain Python -> TypeScript -> Python, sent from Python", async () => {
      const out = await pyOut<{ result: unknown }>("chain");
      expect(out.result).toEqual(["py-client", "py", "ts", "py"]);
    });

    it("group of both languages: ordered results in TypeScript and from Python's GroupResult.restore", async () => {
      const g = await client.apply(group([s(tsAppend, ["a"], 0.3), s(pyAppend, ["b"]), s(tsAppend, ["c"]), s(pyAppend, ["d"], 0.2)]));
      const expected = [
        ["a", "ts"],
        ["b", "py"],
        ["c", "ts"],
        ["d", "py"],
      ];
      expect(await g.get(GET)).toEqual(expected);
      const restored = await pyOut<{ ids: string[]; result: unknown }>("restore", g.id);
      expect(restored).toEqual({ ids: g.taskIds(), result: expected });
    });

    it("group sent from Python: its saved GroupResult restores in TypeScript", async () => {
      const out = await pyOut<{ id: string; ids: string[]; result: unknown }>("group");
      expect(out.result).toEqual([
        ["a", "py"],
        ["b", "ts"],
        ["c", "py"],
      ]);
      expect(await backend.restoreGroup(out.id)).toEqual({ groupId: out.id, taskIds: out.ids });
      expect((await backend.get(out.ids[1]!))?.group_id).toBe(out.id);
    });

    it("chord over both languages, TypeScript body, last header task finishing on Python", async () => {
      const header = [s(tsAppend, ["t0"]), s(pyAppend, ["p1"], 0.6), s(tsAppend, ["t2"]), s(pyAppend, ["p3"])];
      const r = await client.apply(chord(header, s(tsCollect)));
      expect(await r.get(GET)).toEqual({
        lang: "ts",
        results: [
          ["t0", "ts"],
          ["p1", "py"],
          ["t2", "ts"],
          ["p3", "py"],
        ],
      });
      // The body's parent is the header task whose return completed the chord: the slow Python one.
      expect(await completedBy(r.id)).toEqual(["p1", "py"]);
    });

    it("chord over both languages, Python body, last header task finishing on TypeScript", async () => {
      const header = [s(pyAppend, ["p0"]), s(tsAppend, ["t1"], 0.6), s(pyAppend, ["p2"]), s(tsAppend, ["t3"])];
      const r = await client.apply(chord(header, s(pyCollect)));
      expect(await r.get(GET)).toEqual({
        lang: "py",
        results: [
          ["p0", "py"],
          ["t1", "ts"],
          ["p2", "py"],
          ["t3", "ts"],
        ],
      });
      expect(await completedBy(r.id)).toEqual(["t1", "ts"]);
    });

    it("a wide chord whose parts finish in shuffled order on both workers completes exactly once", async () => {
      const delays = [0.3, 0, 0.2, 0.1, 0, 0.25, 0.05, 0.15, 0, 0.1, 0.2, 0];
      const header = delays.map((d, i) => (i % 2 === 0 ? s(pyAppend, [`p${i}`], d) : s(tsAppend, [`t${i}`], d)));
      const r = await client.apply(chord(header, s(tsCollect)));
      const expected = delays.map((_, i) => (i % 2 === 0 ? [`p${i}`, "py"] : [`t${i}`, "ts"]));
      expect(await r.get(GET)).toEqual({ lang: "ts", results: expected });
      // A second completion would send the body again; give it the time to show up.
      await new Promise((done) => setTimeout(done, 500));
      expect(bodyRuns.get(r.id)).toBe(1);
    });

    it("chord sent from Python over both languages, TypeScript body", async () => {
      const out = await pyOut<{ result: unknown }>("chord");
      expect(out.result).toEqual({
        lang: "ts",
        results: [
          ["p0", "py"],
          ["t1", "ts"],
          ["p2", "py"],
        ],
      });
    });

    it("chain with a group in the middle (Celery's chord upgrade), expanded by the TypeScript worker", async () => {
      const r = await client.apply(chain(s(tsAppend, ["start"]), group([s(pyAppend), s(tsAppend)]), s(pyCollect)));
      expect(await r.get(GET)).toEqual({
        lang: "py",
        results: [
          ["start", "ts", "py"],
          ["start", "ts", "ts"],
        ],
      });
    });

    it("a chord as a link: started by the TypeScript worker and by the Python worker", async () => {
      for (const [first, lang] of [
        [tsAppend, "ts"],
        [pyAppend, "py"],
      ] as const) {
        const bodyId = randomUUID();
        const callback = chord([s(pyAppend), s(tsAppend)], withOptions(s(pyCollect), { taskId: bodyId }));
        const r = await client.apply(withOptions(s(first, ["x"]), { link: callback }));
        expect(await r.get(GET)).toEqual(["x", lang]);
        expect(await client.asyncResult(bodyId).get(GET)).toEqual({
          lang: "py",
          results: [
            ["x", lang, "py"],
            ["x", lang, "ts"],
          ],
        });
      }
    });

    it("chord with a failing header task: the body fails with Celery's ChordError and its errback runs, whichever side completes", async () => {
      const variants = [
        // The slow Python part completes the chord: Python's chord_error_from_stack calls a TS errback.
        { header: [s(pyAppend, ["p0"], 0.5), s(tsFail, "header boom")], raised: "RangeError('header boom')", errback: tsOnError, lang: "ts" },
        // The slow TypeScript part completes it: the TS worker stores the ChordError and calls a Python errback.
        { header: [s(pyFail, "py header boom"), s(tsAppend, ["t1"], 0.5)], raised: "ValueError('py header boom')", errback: pyOnError, lang: "py" },
      ];
      for (const v of variants) {
        const errbackId = randomUUID();
        const body = withOptions(s(pyCollect), { linkError: withOptions(s(v.errback), { taskId: errbackId }) });
        const r = await client.apply(chord(v.header, body));
        const err = await r.get(GET).then(
          () => null,
          (e: unknown) => e,
        );
        expect(err).toBeInstanceOf(TaskFailedError);
        expect(err).toMatchObject({ excType: "ChordError" });
        expect((err as TaskFailedError).excMessage[0]).toMatch(new RegExp(`^Dependency [0-9a-f-]{36} raised ${v.raised.replace(/[()]/g, "\\$&")}$`));
        expect(await client.asyncResult(errbackId).get(GET)).toEqual({ lang: v.lang, failed: r.id });
      }
    });

    it("link_error: a failing TypeScript task calls a Python errback", async () => {
      const errbackId = randomUUID();
      const r = await client.apply(withOptions(s(tsFail, "ts boom"), { linkError: withOptions(s(pyOnError), { taskId: errbackId }) }));
      await expect(r.get(GET)).rejects.toMatchObject({ excType: "RangeError" });
      expect(await client.asyncResult(errbackId).get(GET)).toEqual({ lang: "py", failed: r.id });
    });

    it("link_error: a failing Python task calls a TypeScript errback", async () => {
      const errbackId = randomUUID();
      const r = await client.apply(withOptions(s(pyFail, "py boom"), { linkError: withOptions(s(tsOnError), { taskId: errbackId }) }));
      await expect(r.get(GET)).rejects.toMatchObject({ excType: "ValueError" });
      expect(await client.asyncResult(errbackId).get(GET)).toEqual({ lang: "ts", failed: r.id });
    });
  });
}
