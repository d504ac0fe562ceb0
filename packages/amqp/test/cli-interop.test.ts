import { randomUUID } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { celeriac, startCeleriacWorker, TS_TASKS, type CeleriacWorker } from "../../../apps/cli/test/cli-helpers.js";
import { runPython, startPythonWorker, type PythonWorker } from "../../../test-support/python.js";
import { sharedRabbit, shutdownSharedRabbit, type RabbitNode } from "../../../test-support/rabbitmq.js";

// The built `celeriac` CLI (apps/cli/dist/bin.js) over amqp://, both ways with Python Celery;
// results over rpc://. The CLI reaches this package through core's URL table.

let rabbit: RabbitNode;
beforeAll(async () => {
  rabbit = await sharedRabbit();
}, 120_000);
afterAll(() => shutdownSharedRabbit(), 60_000);

/** rpc:// names the broker it replies through (a bare rpc:// would use CELERIAC_BROKER_URL). */
const rpcUrl = () => rabbit.url.replace(/^amqp:/, "rpc:");

describe("celeriac call -> Python Celery worker (amqp://, rpc://)", () => {
  const queue = `cli-py-${randomUUID().slice(0, 8)}`;
  let py: PythonWorker;
  const common = () => ["--broker", rabbit.url, "--result-backend", rpcUrl(), "-Q", queue];

  beforeAll(async () => {
    py = await startPythonWorker({ brokerUrl: rabbit.url, resultUrl: "rpc://", queues: [queue] });
  }, 60_000);
  afterAll(async () => {
    await py?.stop();
  });

  it("runs a task and prints its result", async () => {
    const r = await celeriac(["call", "pytasks.add", "--args", "[2, 3]", "--wait", "--timeout", "30", ...common()]);
    expect(r.code, `${r.stderr}\n${py.output()}`).toBe(0);
    const [id, value] = r.stdout.trim().split("\n");
    expect(id).toMatch(/^[0-9a-f-]{36}$/);
    expect(JSON.parse(value!)).toBe(5);
  });

  it("passes args and kwargs of many types as Python reads them", async () => {
    const args = [1, -2.5, "ünïcödé ✓", null, true, [1, [2, { x: "y" }]], 9007199254740991];
    const kwargs = { nested: { a: [1, 2, 3], b: { c: null } }, text: "line\nbreak" };
    const r = await celeriac(["call", "pytasks.echo", "--args", JSON.stringify(args), "--kwargs", JSON.stringify(kwargs), "--wait", ...common()]);
    expect(r.code, `${r.stderr}\n${py.output()}`).toBe(0);
    expect(JSON.parse(r.stdout.trim().split("\n")[1]!)).toEqual({ args, kwargs });
  });

  it("surfaces a Python ValueError with its type and message", async () => {
    const r = await celeriac(["call", "pytasks.fail", "--kwargs", '{"message": "bad input from TS"}', "--wait", ...common()]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("ValueError: bad input from TS");
  });
});

describe("Python Celery client -> celeriac worker (amqp://, rpc://)", () => {
  const queue = `cli-ts-${randomUUID().slice(0, 8)}`;
  let worker: CeleriacWorker;
  const send = async (name: string, args: unknown[], kwargs: object = {}) =>
    JSON.parse(
      await runPython({ brokerUrl: rabbit.url, resultUrl: "rpc://" }, "send_and_wait.py", [
        name,
        JSON.stringify(args),
        JSON.stringify(kwargs),
        JSON.stringify({ queue, timeout: 20 }),
      ]),
    ) as Record<string, unknown>;

  beforeAll(async () => {
    worker = await startCeleriacWorker(["--broker", rabbit.url, "--result-backend", rpcUrl(), "--tasks", TS_TASKS, "-Q", queue, "-c", "4"]);
  }, 60_000);
  afterAll(async () => {
    const code = await worker?.stop();
    expect(code, worker?.output()).toBe(0);
  });

  it("returns a result Python's AsyncResult.get() reads", async () => {
    const out = await send("ts.add", [2, 3]);
    expect(out, worker.output()).toMatchObject({ status: "SUCCESS", result: 5 });
  });

  it("re-raises a TypeScript failure in Python with its type and message", async () => {
    const out = await send("ts.fail", ["from the TS worker"]);
    expect(out, worker.output()).toMatchObject({ status: "FAILURE", exc_type: "ValueError", exc_message: ["from the TS worker"] });
  });

  it("retries in TypeScript and Python sees the final result", async () => {
    const out = await send("ts.retry_twice", []);
    expect(out, worker.output()).toMatchObject({ status: "SUCCESS", result: 2 });
  });
});
