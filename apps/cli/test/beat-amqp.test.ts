import { afterAll, beforeAll, describe, it } from "vitest";
import { startRabbit, type RabbitNode } from "../../../test-support/rabbitmq.js";
import { assertExactlyOnce, runHaScenario } from "./beat-ha.js";

let rabbit: RabbitNode;
beforeAll(async () => {
  rabbit = await startRabbit();
}, 120_000);
afterAll(async () => {
  await rabbit?.shutdown();
});

describe("celeriac beat on RabbitMQ: a token on a single-active-consumer queue", () => {
  it("three replicas, leader SIGKILLed then the next SIGTERMed: every due second sent exactly once", async () => {
    const report = await runHaScenario(rabbit.url, "beat-ha-amqp");
    assertExactlyOnce("rabbitmq", report);
  }, 90_000);
});
