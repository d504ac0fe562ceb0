import { randomUUID } from "node:crypto";
import { afterAll } from "vitest";
import { createSqsTransport } from "@celeriac/sqs";
import { startSqsEmulator } from "../../../test-support/sqs-emulator.mjs";
import { describeTransportConformance } from "@celeriac/conformance";
import { describeColdShutdown } from "../../../test-support/cold-shutdown.js";

// SQS counts visibility in whole seconds.
const visibilityTimeoutMs = 1000;
const emulator = await startSqsEmulator();
afterAll(() => emulator.close());

describeTransportConformance(
  "sqs (local-aws-sqs behind the adapter)",
  async () => ({
    transport: createSqsTransport({
      endpoint: emulator.endpoint,
      region: "us-east-1",
      credentials: { accessKeyId: "test", secretAccessKey: "test" },
      visibilityTimeoutMs,
      waitTimeSeconds: 1,
      // One DLQ per transport, so each test reads only its own dead letters.
      deadLetterQueue: `conformance-dlq-${randomUUID().slice(0, 8)}`,
    }),
  }),
  { visibilityTimeoutMs, receiveTimeoutMs: 8000, quietMs: 300 },
);

describeColdShutdown("sqs (local-aws-sqs behind the adapter)", () =>
  createSqsTransport({
    endpoint: emulator.endpoint,
    region: "us-east-1",
    credentials: { accessKeyId: "test", secretAccessKey: "test" },
    visibilityTimeoutMs: 5000,
    waitTimeSeconds: 1,
  }),
);
