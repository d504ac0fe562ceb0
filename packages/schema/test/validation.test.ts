import { createHash } from "node:crypto";
import { CeleriacError, createClient, createMemoryResultBackend, createMemoryTransport, TaskFailedError } from "@celeriac/core";
import { SchemaValidationError } from "@celeriac/schema";
import { createWorker, type Worker } from "@celeriac/worker";
import { afterEach, describe, expect, it } from "vitest";
import registerBillingTasks from "../../../examples/billing-apps/worker.js";
import { chargeInvoice, refund, type ChargeInvoiceRequest } from "../../../examples/schema-package/generated/billing.js";

const request: ChargeInvoiceRequest = {
  invoice_id: "inv-7",
  customer_id: 2n ** 62n,
  currency: "EUR",
  items: [
    { sku: "seat", quantity: 3, unit_price_cents: 3_000_000_000_000_000n },
    { sku: "support", quantity: 1, unit_price_cents: 499n },
  ],
  due_at: new Date("2026-03-01T12:00:00.123Z"),
  metadata: { source: "test" },
  memo: null,
  signature: new TextEncoder().encode("sig"),
};

describe("producer-side validation", () => {
  const transport = createMemoryTransport();
  const client = createClient({ transport });

  const rejects = async (value: unknown, pattern: RegExp) => {
    const err = await chargeInvoice.applyAsync(client, value as ChargeInvoiceRequest).then(
      () => null,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(SchemaValidationError);
    expect(err).toBeInstanceOf(CeleriacError);
    expect((err as CeleriacError).code).toBe("invalid_argument");
    expect((err as Error).message).toMatch(pattern);
    expect(transport.size("billing")).toBe(0); // nothing was sent
  };

  it("rejects a wrong type, naming the field and the expected type", async () => {
    await rejects({ ...request, customer_id: "12" }, /billing\.charge_invoice: invalid kwargs: customer_id: expected int64 .*got "12"/);
    await rejects({ ...request, customer_id: 1.5 }, /customer_id: expected int64/);
    await rejects({ ...request, customer_id: 2n ** 63n }, /customer_id: expected int64 in range/);
  });

  it("rejects a missing required field and an unknown field", async () => {
    const { due_at: _, ...missing } = request;
    await rejects(missing, /due_at: missing required field \(google\.protobuf\.Timestamp\)/);
    await rejects({ ...request, coupon: "x" }, /coupon: unknown field/);
  });

  it("checks nested messages, lists, maps, enums, bytes and timestamps, and lists every problem", async () => {
    await rejects({ ...request, items: [{ sku: "a", quantity: -1, unit_price_cents: 1n }] }, /items\[0\]\.quantity: expected uint32 in range/);
    await rejects({ ...request, items: {} }, /items: expected a list/);
    await rejects({ ...request, metadata: { a: 1 } }, /metadata\["a"\]: expected string, got number 1/);
    await rejects({ ...request, currency: "YEN" }, /currency: expected one of "CURRENCY_UNSPECIFIED", "EUR", "USD", "GBP"/);
    await rejects({ ...request, signature: "c2ln" }, /signature: expected bytes \(a Uint8Array\)/);
    await rejects({ ...request, due_at: new Date(Number.NaN) }, /due_at: expected a valid Date/);
    await rejects({ ...request, invoice_id: 1, memo: 2 }, /invoice_id: expected string.*; memo: expected string/);
  });

  it("sends the wire form Python reads: digits, ISO text, base64, enum names", async () => {
    const sent = chargeInvoice.encodeRequest(request);
    expect(sent).toEqual({
      invoice_id: "inv-7",
      customer_id: 2n ** 62n,
      currency: "EUR",
      items: [
        { sku: "seat", quantity: 3, unit_price_cents: 3_000_000_000_000_000n },
        { sku: "support", quantity: 1, unit_price_cents: 499n },
      ],
      due_at: "2026-03-01T12:00:00.123000+00:00",
      metadata: { source: "test" },
      memo: null,
      signature: "c2ln",
    });
    await chargeInvoice.applyAsync(client, request);
    expect(transport.size("billing")).toBe(1); // the declared queue
    await refund.applyAsync(client, { invoice_id: "i", amount_cents: 1n });
    expect(transport.size("billing.refunds")).toBe(1);
  });

  it("decodes results to the declared types and rejects a result that does not fit", () => {
    const decoded = chargeInvoice.decodeResult({
      invoice_id: "i",
      status: "CAPTURED",
      total_cents: 9_000_000_000_000_499n,
      charged_at: "2026-03-01T12:00:00.123000",
      signature_digest: "AAEC",
      added_by_a_newer_worker: true,
    });
    expect(decoded).toEqual({
      invoice_id: "i",
      status: "CAPTURED",
      total_cents: 9_000_000_000_000_499n,
      charged_at: new Date("2026-03-01T12:00:00.123Z"),
      signature_digest: new Uint8Array([0, 1, 2]),
    });
    expect(typeof chargeInvoice.decodeResult({ ...decoded, total_cents: 5, charged_at: "2026-03-01T12:00:00Z", signature_digest: "" }).total_cents).toBe(
      "bigint",
    );
    expect(() => chargeInvoice.decodeResult({ invoice_id: "i", status: "LOST" })).toThrow(
      /invalid result stored: status: expected one of .*; total_cents: missing required field/,
    );
  });
});

describe("worker-side validation", () => {
  let worker: Worker | undefined;
  afterEach(async () => {
    await worker?.stop({ graceMs: 0 });
  });

  it("stores FAILURE with the validation error for a bad message and keeps serving", async () => {
    const transport = createMemoryTransport();
    const resultBackend = createMemoryResultBackend();
    await transport.connect();
    worker = registerBillingTasks(createWorker({ transport, resultBackend, queues: ["billing", "billing.refunds"], silent: true }));
    await worker.start();
    const client = createClient({ transport, resultBackend });

    // A producer without the schema (e.g. an old Python client) sends bad kwargs by name.
    const wire = chargeInvoice.encodeRequest(request);
    const bad = await client.sendTask("billing.charge_invoice", { queue: "billing", kwargs: { ...wire, customer_id: "not a number", signature: "%%%" } });
    const err = await bad.get({ timeoutMs: 10_000 }).then(
      () => null,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(TaskFailedError);
    expect((err as TaskFailedError).excType).toBe("SchemaValidationError");
    expect(String((err as TaskFailedError).excMessage[0])).toMatch(
      /billing\.charge_invoice: invalid kwargs received: customer_id: expected int64 .*; signature: expected bytes \(base64 text\)/,
    );
    const positional = await client.sendTask("billing.refund", { queue: "billing.refunds", args: ["i", 1] });
    await expect(positional.get({ timeoutMs: 10_000 })).rejects.toThrow(/takes keyword arguments only/);

    // The worker is still serving: a good message right after succeeds with typed values.
    const good = await chargeInvoice.applyAsync(client, request);
    const value = await good.get({ timeoutMs: 10_000 });
    expect(value).toEqual({
      invoice_id: "inv-7",
      status: "CAPTURED",
      total_cents: 9_000_000_000_000_499n,
      charged_at: new Date("2026-03-01T12:00:00.123Z"),
      signature_digest: new Uint8Array(createHash("sha256").update("sig").digest()),
    });
    expect(worker.state).toBe("running");
  });

  it("fails a task whose handler returns a result that does not fit the schema", async () => {
    const transport = createMemoryTransport();
    const resultBackend = createMemoryResultBackend();
    await transport.connect();
    worker = createWorker({ transport, resultBackend, queues: ["billing.refunds"], silent: true });
    worker.register(
      refund,
      refund.implement(() => ({ refund_id: "r", amount_cents: 1.5 as unknown as bigint, notes: { x: "y" }, tags: [] })),
    );
    await worker.start();
    const client = createClient({ transport, resultBackend });
    const r = await refund.applyAsync(client, { invoice_id: "i", amount_cents: 1n });
    await expect(r.get({ timeoutMs: 10_000 })).rejects.toThrow(
      /invalid result returned by the handler: amount_cents: expected int64.*; notes\["x"\]: map key must be a decimal int32/,
    );
  });

  it("returns a 64-bit result beyond 2^53 exactly", async () => {
    const transport = createMemoryTransport();
    const resultBackend = createMemoryResultBackend();
    await transport.connect();
    worker = registerBillingTasks(createWorker({ transport, resultBackend, queues: ["billing.refunds"], silent: true }));
    await worker.start();
    const client = createClient({ transport, resultBackend });
    const small = await refund.applyAsync(client, { invoice_id: "i", amount_cents: 2n ** 53n - 1n });
    expect((await small.get({ timeoutMs: 10_000 })).amount_cents).toBe(2n ** 53n - 1n);
    const big = await refund.applyAsync(client, { invoice_id: "i", amount_cents: 2n ** 60n });
    expect((await big.get({ timeoutMs: 10_000 })).amount_cents).toBe(2n ** 60n);
  });
});
