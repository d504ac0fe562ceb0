import { createMemoryTransport } from "@celeriac/core";
import { describeTransportConformance } from "../../../test-support/transport-conformance.js";

// Short visibility timeout so the redelivery and extend tests run in about a second.
const visibilityTimeoutMs = 600;

describeTransportConformance("memory", async () => ({ transport: createMemoryTransport({ visibilityTimeoutMs }) }), {
  visibilityTimeoutMs,
  deadLetters: async (transport, queue) =>
    (transport as ReturnType<typeof createMemoryTransport>).deadLetters.filter((d) => d.queue === queue),
});
