// The TypeScript billing producer: sends @acme/billing-tasks tasks with typed, validated kwargs and
// reads typed results. (See worker.ts on why the import is by path here.)
//
//   node dist/producer.js sqlite:///billing.db file:///tmp/results
import { createClient, resultBackendFromUrl, transportFromUrl, type Client } from "@celeriac/core";
import { chargeInvoice, refund, type ChargeInvoiceResult, type RefundResult } from "../schema-package/generated/billing.js";

/** Charges one invoice and waits for the result: total as a bigint, time as a Date, digest as bytes. */
export async function chargeAndWait(client: Client, invoiceId: string, timeoutMs = 30_000): Promise<ChargeInvoiceResult> {
  const result = await chargeInvoice.applyAsync(client, {
    invoice_id: invoiceId,
    customer_id: 4_611_686_018_427_387_904n, // 2^62: beyond JavaScript's safe integers
    currency: "EUR",
    items: [
      { sku: "seat", quantity: 3, unit_price_cents: 3_000_000_000_000_000n },
      { sku: "support", quantity: 1, unit_price_cents: 499n },
    ],
    due_at: new Date("2026-03-01T12:00:00.123Z"),
    metadata: { source: "producer.ts" },
    signature: new TextEncoder().encode("signed by the customer"),
  });
  return result.get({ timeoutMs });
}

export async function refundAndWait(client: Client, invoiceId: string, amount: bigint, timeoutMs = 30_000): Promise<RefundResult> {
  return (await refund.applyAsync(client, { invoice_id: invoiceId, amount_cents: amount, reason: "duplicate" })).get({ timeoutMs });
}

async function main(): Promise<void> {
  const [brokerUrl = "sqlite:///billing.db", resultUrl = brokerUrl] = process.argv.slice(2);
  const transport = await transportFromUrl(brokerUrl);
  const resultBackend = await resultBackendFromUrl(resultUrl);
  const client = createClient({ transport, resultBackend });
  try {
    const charged = await chargeAndWait(client, "inv-1");
    console.log(charged.status, charged.total_cents, charged.charged_at.toISOString());
  } finally {
    await client.close();
    await transport.close();
    await resultBackend.close();
  }
}

if (import.meta.url === `file://${process.argv[1] ?? ""}`) await main();
