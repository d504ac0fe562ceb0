import { randomUUID } from "node:crypto";
import { afterAll } from "vitest";
import type { Transport } from "@celeriac/core";
import type { WireMessage } from "@celeriac/core/transport";
import { createSqsTransport, type SqsTransport } from "@celeriac/sqs";
import { startSqsEmulator } from "../../../test-support/sqs-emulator.mjs";
import { describeTransportConformance } from "../../../test-support/transport-conformance.js";

// SQS counts visibility in whole seconds.
const visibilityTimeoutMs = 1000;
const emulator = await startSqsEmulator();
afterAll(() => emulator.close());

const deadLetters = async (t: Transport, queue: string) =>
  (await (t as SqsTransport).peekDeadLetters({ queue })).flatMap((d) => (d.message ? [{ message: d.message as WireMessage, reason: d.reason }] : []));

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
  { visibilityTimeoutMs, deadLetters, receiveTimeoutMs: 8000, quietMs: 300 },
);
