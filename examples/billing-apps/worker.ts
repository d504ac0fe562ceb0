// The TypeScript billing worker: implements the tasks of @acme/billing-tasks. A real app depends
// on the package ("@acme/billing-tasks": "file:../schema-package") and imports it by name; this
// example imports the same generated module by path so the repository's tests can run it as is.
//
// Run it with the CLI:  celeriac worker -Q billing,billing.refunds --tasks dist/worker.js
import { createHash } from "node:crypto";
import type { Worker } from "@celeriac/worker";
import { chargeInvoice, refund, type ChargeInvoiceRequest, type ChargeInvoiceResult } from "../schema-package/generated/billing.js";

/** The charge itself, shared with the tests so both languages are held to the same answer. */
export function charge(request: ChargeInvoiceRequest): ChargeInvoiceResult {
  const total = request.items.reduce((sum, item) => sum + BigInt(item.quantity) * item.unit_price_cents, 0n);
  const declined = request.currency === "CURRENCY_UNSPECIFIED";
  return {
    invoice_id: request.invoice_id,
    status: declined ? "DECLINED" : "CAPTURED",
    total_cents: total,
    charged_at: request.due_at,
    ...(declined ? { decline_reason: "no currency" } : {}),
    signature_digest: new Uint8Array(createHash("sha256").update(request.signature).digest()),
  };
}

/** Registers the billing tasks; the default export, as `celeriac worker --tasks` expects. */
export default function registerBillingTasks(worker: Worker): Worker {
  return worker
    .register(
      chargeInvoice,
      chargeInvoice.implement((request) => charge(request)),
    )
    .register(
      refund,
      refund.implement((request, ctx) => ({
        refund_id: `rf-${request.invoice_id}-${ctx.retries}`,
        amount_cents: request.amount_cents,
        notes: { "1": request.reason ?? "none" },
        tags: ["refund", ...(request.reason ? [request.reason] : [])],
      })),
    );
}
