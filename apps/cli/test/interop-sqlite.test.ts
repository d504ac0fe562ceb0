import { mkdirSync, mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runPython, startPythonWorker, type PythonWorker } from "../../../test-support/python.js";
import { celeriac, startCeleriacWorker, TS_TASKS, type CeleriacWorker } from "./cli-helpers.js";

// Both directions over the embedded SQLite file, with Celery's file:// result backend shared by
// both languages. The broker file is the one kombu's `sqla+sqlite` transport reads.

describe("celeriac call -> Python Celery worker (sqla+sqlite)", () => {
  const dir = mkdtempSync(join(tmpdir(), "celeriac-cli-py-"));
  const db = join(dir, "broker.db");
  const results = join(dir, "results");
  const common = ["--broker", `sqlite:///${db}`, "--result-backend", `file://${results}`];
  let py: PythonWorker;

  beforeAll(async () => {
    mkdirSync(results); // Celery's file backend wants the directory to exist
    // Let Celeriac create the file first, so both sides see the same schema from the start.
    const first = await celeriac(["purge", "-f", "--broker", `sqlite:///${db}`]);
    expect(first.code, first.stderr).toBe(0);
    py = await startPythonWorker({ brokerUrl: `sqla+sqlite:///${db}`, resultUrl: `file://${results}` });
  });
  afterAll(async () => {
    await py?.stop();
  });

  it("runs a task and prints its result", async () => {
    const r = await celeriac(["call", "pytasks.add", "--args", "[2, 3]", "--wait", "--timeout", "30", ...common]);
    expect(r.code, `${r.stderr}\n${py.output()}`).toBe(0);
    const [id, value] = r.stdout.trim().split("\n");
    expect(id).toMatch(/^[0-9a-f-]{36}$/);
    expect(JSON.parse(value!)).toBe(5);
  });

  it("passes args and kwargs of many types as Python reads them", async () => {
    const args = [1, -2.5, "ünïcödé ✓ 🎉", null, true, [1, [2, { x: "y" }]], 9007199254740991];
    const kwargs = { nested: { a: [1, 2, 3], b: { c: null } }, text: "line\nbreak", empty: {} };
    const r = await celeriac(["call", "pytasks.echo", "--args", JSON.stringify(args), "--kwargs", JSON.stringify(kwargs), "--wait", ...common]);
    expect(r.code, `${r.stderr}\n${py.output()}`).toBe(0);
    const value = JSON.parse(r.stdout.trim().split("\n")[1]!);
    expect(value).toEqual({ args, kwargs });
  });

  it("surfaces a Python ValueError with its type and message", async () => {
    const r = await celeriac(["call", "pytasks.fail", "--kwargs", '{"message": "bad input from TS"}', "--wait", ...common]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("ValueError: bad input from TS");
  });

  it("honours --countdown", async () => {
    const started = Date.now();
    const r = await celeriac(["call", "pytasks.add", "--args", "[1, 1]", "--countdown", "2", "--wait", ...common]);
    expect(r.code, r.stderr).toBe(0);
    expect(Date.now() - started).toBeGreaterThanOrEqual(1900);
  });
});

describe("Python Celery client -> celeriac worker (sqla+sqlite)", () => {
  const dir = mkdtempSync(join(tmpdir(), "celeriac-cli-ts-"));
  const db = join(dir, "broker.db");
  const results = join(dir, "results");
  const env = { brokerUrl: `sqla+sqlite:///${db}`, resultUrl: `file://${results}` };
  let worker: CeleriacWorker;

  beforeAll(async () => {
    worker = await startCeleriacWorker(["--broker", `sqlite:///${db}`, "--result-backend", `file://${results}`, "--tasks", TS_TASKS, "-c", "4"]);
  });
  afterAll(async () => {
    const code = await worker?.stop();
    expect(code, worker?.output()).toBe(0);
  });

  const send = async (name: string, args: unknown[], kwargs: object = {}, options: object = {}) =>
    JSON.parse(await runPython(env, "send_and_wait.py", [name, JSON.stringify(args), JSON.stringify(kwargs), JSON.stringify(options)])) as Record<
      string,
      unknown
    >;

  it("returns a result Python's AsyncResult.get() reads", async () => {
    const out = await send("ts.add", [2, 3]);
    expect(out, worker.output()).toMatchObject({ status: "SUCCESS", result: 5 });
  });

  it("receives Python's args and kwargs unchanged", async () => {
    const args = ["ünïcödé ✓ 🎉", 1.5, null, [1, { a: [true, false] }], 2 ** 53 - 1];
    const kwargs = { when: "2026-01-02T03:04:05", nested: { k: ["v"] } };
    const out = await send("ts.echo", args, kwargs);
    expect(out).toMatchObject({ status: "SUCCESS", result: { args, kwargs, retries: 0 } });
  });

  it("has its failure re-raised by Python with type and message", async () => {
    const out = await send("ts.fail", ["boom from TS"]);
    expect(out).toMatchObject({ status: "FAILURE", exc_type: "ValueError", exc_message: ["boom from TS"] });
  });

  it("retries and reports the retry count", async () => {
    const out = await send("ts.retry_twice", []);
    expect(out).toMatchObject({ status: "SUCCESS", result: 2 });
  });

  it("waits for a Python countdown", async () => {
    const sentAt = Date.now();
    const out = await send("ts.now", [], {}, { countdown: 2 });
    expect(out.status).toBe("SUCCESS");
    expect(Number(out.result) - sentAt).toBeGreaterThanOrEqual(1500);
  });

  it("stores NotRegistered for a task it does not know, as Celery does", async () => {
    const out = await send("ts.nope", [], {}, { timeout: 15 });
    expect(out).toMatchObject({ status: "FAILURE", exc_type: "NotRegistered" });
  });
});
