// Both directions against a real Python Celery 5.2 worker/client, on the SQLite broker kombu's
// `sqla+sqlite` transport reads, with Celery's file:// result backend shared by both languages.
// The Python side implements the tasks from the generated stub (examples/billing-apps/billing_worker.py).
import { spawn, type ChildProcess } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdirSync, mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { delimiter, join } from "node:path";
import { fileURLToPath } from "node:url";
import { createClient, resultBackendFromUrl, transportFromUrl, type Client, type ResultBackend, type Transport } from "@celeriac/core";
import { createWorker, type Worker } from "@celeriac/worker";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { chargeAndWait, refundAndWait } from "../../../examples/billing-apps/producer.js";
import registerBillingTasks from "../../../examples/billing-apps/worker.js";
import { chargeInvoice } from "../../../examples/schema-package/generated/billing.js";

const PYTHON = "/usr/bin/python3"; // Debian's Python with python3-celery
const repo = fileURLToPath(new URL("../../../", import.meta.url));
const appsDir = join(repo, "examples", "billing-apps");
const pyPath = [join(repo, "examples", "schema-package", "generated"), appsDir, fileURLToPath(new URL("./python/", import.meta.url))].join(delimiter);

function pyEnv(db: string, results: string): NodeJS.ProcessEnv {
  return {
    ...process.env,
    CELERIAC_BROKER_URL: `sqla+sqlite:///${db}`,
    CELERIAC_RESULT_URL: `file://${results}`,
    PYTHONPATH: pyPath,
    PYTHONUNBUFFERED: "1",
    PYTHONDONTWRITEBYTECODE: "1",
  };
}

function runPython(env: NodeJS.ProcessEnv, args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(PYTHON, args, { cwd: appsDir, env, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => child.kill("SIGKILL"), 100_000);
    child.on("exit", (code) => {
      clearTimeout(timer);
      if (code === 0) resolve(stdout);
      else reject(new Error(`python ${args.join(" ")} exited with ${code}:\n${stderr}\n${stdout}`));
    });
  });
}

async function open(db: string, results: string): Promise<{ transport: Transport; resultBackend: ResultBackend }> {
  const transport = await transportFromUrl(`sqlite:///${db}`);
  await transport.connect(); // creates the tables first, so both sides see one schema from the start
  return { transport, resultBackend: await resultBackendFromUrl(`file://${results}`) };
}

function tempSetup(prefix: string): { db: string; results: string } {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  const results = join(dir, "results");
  mkdirSync(results);
  return { db: join(dir, "broker.db"), results };
}

// Generous limits: the machine is shared, and a loaded Python worker polling SQLite can be slow.
describe("typed TypeScript producer -> Python Celery worker implementing the stub", { timeout: 120_000 }, () => {
  const { db, results } = tempSetup("celeriac-schema-py-");
  let conn: { transport: Transport; resultBackend: ResultBackend };
  let client: Client;
  let py: ChildProcess;
  let out = "";

  beforeAll(async () => {
    conn = await open(db, results);
    client = createClient(conn);
    py = spawn(
      PYTHON,
      [
        "-m",
        "celery",
        "-A",
        "billing_worker",
        "worker",
        "--loglevel",
        "INFO",
        "-Q",
        "billing,billing.refunds",
        "--pool",
        "solo",
        "--without-gossip",
        "--without-mingle",
        "--without-heartbeat",
        "-n",
        `billing-${process.pid}@localhost`,
      ],
      { cwd: appsDir, env: pyEnv(db, results), stdio: ["ignore", "pipe", "pipe"] },
    );
    py.stdout!.on("data", (d: Buffer) => (out += d.toString()));
    py.stderr!.on("data", (d: Buffer) => (out += d.toString()));
    const deadline = Date.now() + 30_000;
    while (!/ ready\.?/.test(out)) {
      if (py.exitCode !== null) throw new Error(`Python worker exited early:\n${out}`);
      if (Date.now() > deadline) throw new Error(`Python worker not ready:\n${out}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  });
  afterAll(async () => {
    if (py && py.exitCode === null) {
      const exited = new Promise((r) => py.once("exit", r));
      py.kill("SIGTERM");
      const t = setTimeout(() => py.kill("SIGKILL"), 5000);
      await exited;
      clearTimeout(t);
    }
    await client?.close();
    await conn?.transport.close();
    await conn?.resultBackend.close();
  });

  it("gets the declared result types back: bigint, Date, enum name, bytes", async () => {
    const result = await chargeAndWait(client, "inv-py-1", 90_000);
    expect(result, out).toEqual({
      invoice_id: "inv-py-1",
      status: "CAPTURED",
      total_cents: 9_000_000_000_000_499n,
      charged_at: new Date("2026-03-01T12:00:00.123Z"),
      signature_digest: new Uint8Array(createHash("sha256").update("signed by the customer").digest()),
    });
    expect(typeof result.total_cents).toBe("bigint");
    expect(result.charged_at).toBeInstanceOf(Date);
  });

  it("runs the second task on its own declared queue, with maps and lists", async () => {
    expect(await refundAndWait(client, "inv-py-2", 1234n, 90_000)).toEqual({
      refund_id: "rf-inv-py-2-0",
      amount_cents: 1234n,
      notes: { "1": "duplicate" },
      tags: ["refund", "duplicate"],
    });
  });

  it("sends a 64-bit kwarg beyond 2^53 that Python reads as an exact int", async () => {
    const request = chargeInvoice.decodeRequest({
      invoice_id: "inv-py-3",
      customer_id: 1,
      currency: "CURRENCY_UNSPECIFIED",
      items: [],
      due_at: "2026-01-02T03:04:05Z",
      metadata: {},
      signature: "",
    });
    const r = await chargeInvoice.applyAsync(client, { ...request, customer_id: 2n ** 62n + 1n, memo: "big" });
    expect(await r.get({ timeoutMs: 90_000 })).toMatchObject({ status: "DECLINED", decline_reason: "no currency", total_cents: 0n });
  });
});

describe("Python Celery client -> typed TypeScript worker", { timeout: 120_000 }, () => {
  const { db, results } = tempSetup("celeriac-schema-ts-");
  let conn: { transport: Transport; resultBackend: ResultBackend };
  let worker: Worker;

  beforeAll(async () => {
    conn = await open(db, results);
    worker = registerBillingTasks(createWorker({ ...conn, queues: ["billing", "billing.refunds"], concurrency: 2, silent: true }));
    await worker.start();
  });
  afterAll(async () => {
    await worker?.stop({ graceMs: 5000 });
    await conn?.transport.close();
    await conn?.resultBackend.close();
  });

  const send = async (name: string, queue: string, kwargs: object) =>
    JSON.parse(
      await runPython(pyEnv(db, results), [join(fileURLToPath(new URL("./python/", import.meta.url)), "send_billing.py"), name, queue, JSON.stringify(kwargs)]),
    ) as Record<string, unknown>;

  const kwargs = {
    invoice_id: "inv-ts-1",
    customer_id: 2 ** 62, // a Python int beyond 2^53 (JSON digits)
    currency: "GBP",
    items: [{ sku: "seat", quantity: 2, unit_price_cents: 1_000_000_000_000 }],
    due_at: "2026-05-06T07:08:09.000010+00:00",
    metadata: { channel: "python" },
    signature: Buffer.from("py-sig").toString("base64"),
  };

  it("returns the result in the types the Python stub declares", async () => {
    const out = await send("billing.charge_invoice", "billing", kwargs);
    expect(out).toEqual({
      state: "SUCCESS",
      result: {
        invoice_id: "inv-ts-1",
        status: "CAPTURED",
        total_cents: 2_000_000_000_000,
        charged_at: "2026-05-06T07:08:09+00:00", // JS Dates keep milliseconds; isoformat() drops a zero fraction
        signature_digest: createHash("sha256").update("py-sig").digest("base64"),
      },
      types: { invoice_id: "str", status: "str", total_cents: "int", charged_at: "str", signature_digest: "str" },
    });
  });

  it("stores FAILURE with the validation error for bad kwargs from Python, then keeps serving", async () => {
    const { due_at: _, ...missing } = kwargs;
    const bad = await send("billing.charge_invoice", "billing", { ...missing, currency: "YEN" });
    expect(bad.state).toBe("FAILURE");
    expect(bad.exc_type).toBe("SchemaValidationError");
    expect(bad.exc_message).toMatch(/billing\.charge_invoice: invalid kwargs received: currency: expected one of .*"GBP".*; due_at: missing required field/);
    const ok = await send("billing.refund", "billing.refunds", { invoice_id: "inv-ts-2", amount_cents: 5 });
    expect(ok).toMatchObject({ state: "SUCCESS", result: { refund_id: "rf-inv-ts-2-0", amount_cents: 5, notes: { "1": "none" }, tags: ["refund"] } });
    expect(worker.state).toBe("running");
  });

  it("has a Python-side checker that catches a task drifting from the stub", async () => {
    const out = JSON.parse(await runPython(pyEnv(db, results), [join(fileURLToPath(new URL("./python/", import.meta.url)), "check_signatures.py")])) as Record<
      string,
      string
    >;
    expect(out).toEqual({
      good: "ok",
      untyped: "ok",
      kwargs_only: "ok",
      bound_task: "ok",
      wrong_type: "task 'billing.refund' does not match the schema: 'amount_cents' is <class 'str'> but the schema says <class 'int'>",
      missing_field: "task 'billing.refund' does not match the schema: does not accept field 'amount_cents'",
      extra_required: "task 'billing.refund' does not match the schema: requires 'currency', which the schema does not have",
      optional_made_required: "task 'billing.refund' does not match the schema: 'reason' is optional in the schema but required by the task",
      wrong_return: "task 'billing.refund' does not match the schema: returns typing.List[str] but the schema says <class 'billing_tasks.RefundResult'>",
      unknown_task: "the schema declares no task 'billing.nope'",
    });
  });
});
