import { spawn } from "node:child_process";
import { randomUUID } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createClient, type Client, type ResultBackend, type Transport } from "@celeriac/core";
import { stringifyCeleryJson } from "@celeriac/core/transport";
import { createWorker, type Worker } from "@celeriac/worker";
import { pyValueDiff, pyValueDiffs, samplePyJsonValues } from "./py-values.js";
import { runPython, startPythonWorker, type PythonEnv, type PythonWorker } from "./python.js";

/**
 * Exact values across languages on one broker/result-backend pairing of docs/interop.md, against
 * real Python Celery 5.2.6: the issue-13 cases (big ints, NaN/±inf, -0.0 through results; a bigint
 * result; a refused pickle message answered on the client's result backend; the CLI) and a
 * property round trip with fast-check values from a fixed seed, TS -> Python -> TS and
 * Python -> TS -> Python, batched so one Python client process carries every value.
 */
export interface ValuesPairing {
  /** e.g. "sqla+sqlite + file://". */
  name: string;
  /** How Python reaches the same broker and results (`app` for transport options, e.g. sqs_app). */
  python: () => PythonEnv;
  /** `--broker` and `--result-backend` for `celeriac call`. */
  cli: () => { broker: string; resultBackend: string };
  /** A new, unconnected transport and result backend for the TypeScript side. */
  transport: () => Transport;
  resultBackend: () => ResultBackend;
}

const CLI_BIN = fileURLToPath(new URL("../apps/cli/dist/bin.js", import.meta.url));
/** Values per task message: keeps every message well under SQS's 256 KiB. */
const CHUNK = 100;
/** Generated values per direction and pairing. */
const CASES = 300;

/** What Python's result.get() returns for the TypeScript task "values.exact". */
const TS_EXACT = [2n ** 63n - 1n, -(2n ** 100n), NaN, Infinity, -Infinity, -0, 2n ** 53n + 1n];
const TS_EXACT_REPR = "[9223372036854775807, -1267650600228229401496703205376, nan, inf, -inf, -0.0, 9007199254740993]";
/** What the Python task "pytasks.exact_values" returns (test-support/python/interop_app.py). */
const PY_EXACT = [2n ** 53n + 1n, 2n ** 63n - 1n, -(2n ** 100n), Infinity, -Infinity, NaN, -0, 5e-324];

function chunks<T>(values: T[]): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < values.length; i += CHUNK) out.push(values.slice(i, i + CHUNK));
  return out;
}

interface PyCallOutcome {
  id: string;
  status: string;
  repr?: string;
  diffs?: string[];
  exc_type?: string;
  exc_message?: string[];
  exc_module?: string;
}

function celeriacCli(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [CLI_BIN, ...args], {
      env: { ...process.env, CELERIAC_BROKER_URL: "", CELERIAC_RESULT_BACKEND: "" },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => child.kill("SIGKILL"), 60_000);
    child.on("exit", (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

export function describeValuesInterop(pairing: ValuesPairing): void {
  describe(`exact values across Python and TypeScript: ${pairing.name}`, () => {
    const pyQueue = `values-py-${randomUUID().slice(0, 8)}`;
    const tsQueue = `values-ts-${randomUUID().slice(0, 8)}`;
    const dir = mkdtempSync(join(tmpdir(), "celeriac-values-"));
    let py: PythonWorker;
    let worker: Worker;
    let client: Client;
    const closers: (() => Promise<void>)[] = [];

    beforeAll(async () => {
      const workerTransport = pairing.transport();
      const workerBackend = pairing.resultBackend();
      closers.push(
        () => workerBackend.close(),
        () => workerTransport.close(),
      );
      await workerTransport.connect();
      worker = createWorker({ transport: workerTransport, resultBackend: workerBackend, queues: [tsQueue], silent: true });
      worker.register("values.echo", (_ctx, ...args) => args);
      worker.register("values.exact", () => TS_EXACT);
      await worker.start();
      closers.unshift(() => worker.stop());

      const transport = pairing.transport();
      const resultBackend = pairing.resultBackend();
      closers.push(
        () => resultBackend.close(),
        () => transport.close(),
      );
      await transport.connect();
      client = createClient({ transport, resultBackend });

      py = await startPythonWorker({ ...pairing.python(), queues: [pyQueue] });
    }, 90_000);
    afterAll(async () => {
      await py?.stop();
      for (const close of closers) await close().catch(() => undefined);
      rmSync(dir, { recursive: true, force: true });
    });

    it("a Python task's big ints, NaN, ±inf and -0.0 reach TypeScript exactly", async () => {
      const r = await client.sendTask("pytasks.exact_values", { queue: pyQueue });
      const value = await r.get({ timeoutMs: 30_000 });
      expect(pyValueDiff(PY_EXACT, value)).toBeNull();
    });

    it(`property: ${CASES} generated values go TypeScript -> Python -> TypeScript unchanged`, async () => {
      const values = samplePyJsonValues(0x5eed13, CASES);
      const sent = await Promise.all(chunks(values).map((chunk) => client.sendTask("pytasks.echo", { queue: pyQueue, args: chunk })));
      const got = await Promise.all(sent.map((r) => r.get({ timeoutMs: 60_000 }) as Promise<{ args: unknown[] }>));
      const diffs = chunks(values).flatMap((chunk, i) => pyValueDiffs(chunk, got[i]?.args, `chunk ${i}`));
      expect(diffs, py.output().slice(-2000)).toEqual([]);
    }, 90_000);

    describe("Python Celery client -> Celeriac worker", () => {
      let outcome: PyCallOutcome[];
      const values = samplePyJsonValues(0x5eed31, CASES);
      const valueChunks = chunks(values);

      beforeAll(async () => {
        const calls = [
          { task: "values.exact", queue: tsQueue, args: [], expected: TS_EXACT },
          // A refused message must still answer the client that waits on its result backend.
          { task: "values.echo", queue: tsQueue, args: [1], serializer: "pickle", timeout: 20 },
          ...valueChunks.map((chunk) => ({ task: "values.echo", queue: tsQueue, args: chunk, expected: chunk, timeout: 60 })),
        ];
        const spec = join(dir, "calls.json");
        // Python reads the batch with json.load, so its values are exactly what Python's json makes of them.
        writeFileSync(spec, stringifyCeleryJson(calls));
        const out = await runPython(pairing.python(), "values_calls.py", [spec], 120_000);
        outcome = JSON.parse(out.trim().split("\n").at(-1)!) as PyCallOutcome[];
      }, 150_000);

      it("a TypeScript task returning bigint, NaN, ±Infinity and -0 succeeds and Python gets them exactly", () => {
        expect(outcome[0]).toMatchObject({ status: "SUCCESS", repr: TS_EXACT_REPR, diffs: [] });
      });

      it("a refused pickle message gets Celery's error result, so the Python client does not wait for its timeout", () => {
        expect(outcome[1]).toMatchObject({ status: "FAILURE", exc_type: "InvalidTaskError" });
        expect(outcome[1]?.exc_message?.join(" ")).toMatch(/pickle/);
      });

      it(`property: ${CASES} generated values go Python -> TypeScript -> Python unchanged`, () => {
        const echoes = outcome.slice(2);
        expect(echoes).toHaveLength(valueChunks.length);
        for (const e of echoes) expect(e, JSON.stringify(e).slice(0, 2000)).toMatchObject({ status: "SUCCESS", diffs: [] });
      });
    });

    describe("celeriac call", () => {
      const flags = () => ["--broker", pairing.cli().broker, "--result-backend", pairing.cli().resultBackend];

      it("sends --args as Python's json.loads reads them and prints what result.get() returns", async () => {
        const r = await celeriacCli([
          "call",
          "pytasks.echo",
          "-Q",
          pyQueue,
          "--args",
          "[9223372036854775807, NaN, Infinity, -Infinity, -0.0, 1e16, 2.5]",
          "--wait",
          ...flags(),
        ]);
        expect(r.code, `${r.stderr}\n${py.output().slice(-2000)}`).toBe(0);
        expect(r.stdout.trim().split("\n")[1]).toBe('{"args": [9223372036854775807, NaN, Infinity, -Infinity, -0.0, 1e+16, 2.5], "kwargs": {}}');
      });

      it("prints a TypeScript task's bigint and non-finite results in Python's JSON", async () => {
        const r = await celeriacCli(["call", "values.exact", "-Q", tsQueue, "--wait", ...flags()]);
        expect(r.code, r.stderr).toBe(0);
        expect(r.stdout.trim().split("\n")[1]).toBe(
          "[9223372036854775807, -1267650600228229401496703205376, NaN, Infinity, -Infinity, -0.0, 9007199254740993]",
        );
      });
    });
  });
}
