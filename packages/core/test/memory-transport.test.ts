import { createMemoryTransport, type TransportCapabilities } from "@celeriac/core";
// The class itself is not public (the factory is): the subclass below needs it.
import { MemoryTransport } from "../src/memory-transport.js";
import { describeTransportConformance } from "@celeriac/conformance";

// Short visibility timeout so the redelivery and extend tests run in about a second.
const visibilityTimeoutMs = 600;

describeTransportConformance("memory", async () => ({ transport: createMemoryTransport({ visibilityTimeoutMs }) }), {
  visibilityTimeoutMs,
});

/** The same transport declaring no optional capability: checks the suite leaves those tests out. */
class PlainMemoryTransport extends MemoryTransport {
  override readonly capabilities: TransportCapabilities = {
    priority: "none",
    delayedDelivery: false,
    visibilityExtension: false,
    deadLetter: false,
    maxMessageBytes: null,
  };
}

describeTransportConformance("memory declaring no optional capability", async () => ({ transport: new PlainMemoryTransport() }));
