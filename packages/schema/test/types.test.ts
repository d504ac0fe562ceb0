// Compile-time tests: `tsc -p packages/schema/tsconfig.json` (the `typecheck` task) fails if any
// `@ts-expect-error` below stops being an error, i.e. if the generated types accept a wrong call.
import { createClient, createMemoryTransport, type AsyncResult } from "@celeriac/core";
import { createWorker } from "@celeriac/worker";
import { describe, expect, it } from "vitest";
import {
  chargeInvoice,
  refund,
  type ChargeInvoiceRequest,
  type ChargeInvoiceResult,
  type RefundResult,
} from "../../../examples/schema-package/generated/billing.js";

const request: ChargeInvoiceRequest = {
  invoice_id: "inv-1",
  customer_id: 1n,
  currency: "EUR",
  items: [{ sku: "a", quantity: 1, unit_price_cents: 100n }],
  due_at: new Date(0),
  metadata: {},
  signature: new Uint8Array([1]),
};
const result: ChargeInvoiceResult = {
  invoice_id: "inv-1",
  status: "CAPTURED",
  total_cents: 100n,
  charged_at: new Date(0),
  signature_digest: new Uint8Array(32),
};

/** Never called: only type-checked. */
export function producerTypes(): void {
  const client = createClient({ transport: createMemoryTransport() });
  const ok: Promise<AsyncResult<ChargeInvoiceResult>> = chargeInvoice.applyAsync(client, request);
  void ok;
  // The core client accepts the handle as a TaskDefinition with the same kwargs and result types.
  const viaCore: Promise<AsyncResult<RefundResult>> = client.applyAsync(refund, { kwargs: { invoice_id: "x", amount_cents: 5n } });
  void viaCore;

  // @ts-expect-error customer_id is an int64: a bigint, not a string
  void chargeInvoice.applyAsync(client, { ...request, customer_id: "12" });
  // @ts-expect-error a required field (due_at) is missing
  void chargeInvoice.applyAsync(client, { invoice_id: "x", customer_id: 1n, currency: "EUR", items: [], metadata: {}, signature: new Uint8Array() });
  // @ts-expect-error enums travel by name: an unknown name is rejected
  void chargeInvoice.applyAsync(client, { ...request, currency: "YEN" });
  // @ts-expect-error a field the schema does not have
  void chargeInvoice.applyAsync(client, { ...request, coupon: "FREE" });
  // @ts-expect-error the refund request is not the charge request
  void refund.applyAsync(client, request);
  // @ts-expect-error the core client checks kwargs against the handle too
  void client.applyAsync(refund, { kwargs: { invoice_id: 1, amount_cents: 5n } });
  // @ts-expect-error tasks take keyword arguments only
  void client.send(refund, ["x", 5n]);
}

/** Never called: only type-checked. */
// Not reformatted: each @ts-expect-error must stay right above the statement it is about.
// prettier-ignore
export function workerTypes(): void {
  const worker = createWorker({ transport: createMemoryTransport() });
  worker.register(chargeInvoice, chargeInvoice.implement((req) => ({ ...result, invoice_id: req.invoice_id })));
  worker.register(chargeInvoice, chargeInvoice.implement(async (req, ctx) => ({ ...result, invoice_id: `${req.invoice_id}-${ctx.retries}` })));

  // @ts-expect-error the handler must return the declared result (total_cents is a bigint)
  worker.register(chargeInvoice, chargeInvoice.implement(() => ({ ...result, total_cents: 100 })));
  // @ts-expect-error the handler must return every required result field
  worker.register(chargeInvoice, chargeInvoice.implement(() => ({ invoice_id: "x" })));
  // @ts-expect-error the handler's request parameter must match the request type
  worker.register(chargeInvoice, chargeInvoice.implement((req: { invoice_id: number }) => ({ ...result, invoice_id: String(req.invoice_id) })));
  // @ts-expect-error the implementation of one task cannot be registered for another
  worker.register(refund, chargeInvoice.implement(() => result));
  // @ts-expect-error a plain handler for the handle is checked against the result type as well
  worker.register(refund, () => ({ refund_id: "x" }));
  // @ts-expect-error tasks take keyword arguments only: a handler cannot ask for positional ones
  worker.register(refund, (_ctx, invoiceId: string) => ({ refund_id: invoiceId, amount_cents: 1n, notes: {}, tags: [] }));
  // @ts-expect-error ctx.kwargs is typed by the request: amount_cents is a bigint, not a string
  worker.register(refund, (ctx) => ({ refund_id: "x", amount_cents: ctx.kwargs.amount_cents.toUpperCase(), notes: {}, tags: [] }));
}

describe("generated types", () => {
  it("carry the task names and options declared in the .proto file", () => {
    expect(chargeInvoice.name).toBe("billing.charge_invoice");
    expect(chargeInvoice.options).toEqual({ queue: "billing", maxRetries: 5, timeLimitMs: 30000, softTimeLimitMs: 25000, priority: 5 });
    expect(refund.options).toEqual({ queue: "billing.refunds", maxRetries: 3 });
    expect(typeof producerTypes).toBe("function");
    expect(typeof workerTypes).toBe("function");
  });
});
