import { afterAll, beforeAll, describe, it } from "vitest";
import { startSqsEmulator, type SqsEmulator } from "../../../test-support/sqs-emulator.mjs";
import { assertExactlyOnce, runHaScenario } from "./beat-ha.js";

let sqs: SqsEmulator;
beforeAll(async () => {
  sqs = await startSqsEmulator();
});
afterAll(async () => {
  await sqs?.close();
});

describe("celeriac beat on SQS: a FIFO token kept in flight by visibility extension", () => {
  it("three replicas, leader SIGKILLed then the next SIGTERMed: every due second sent exactly once", async () => {
    const report = await runHaScenario(`sqs://x:y@127.0.0.1:${sqs.port}`, "beat-ha-sqs");
    assertExactlyOnce("sqs", report);
  }, 90_000);
});
