import { afterAll, beforeAll, describe, it } from "vitest";
import { createAmqpTransport } from "@celeriac/amqp";
import { runCeleryEventsInterop } from "../../../test-support/celery-events-interop.js";
import { sharedRabbit, shutdownSharedRabbit, type RabbitNode } from "../../../test-support/rabbitmq.js";

let rabbit: RabbitNode;
beforeAll(async () => {
  rabbit = await sharedRabbit();
}, 120_000);
afterAll(() => shutdownSharedRabbit(), 60_000);

describe("Celery events on RabbitMQ (celeryev topic exchange)", () => {
  it("celery events --dump and Celery's State see the worker and every task event with Celery's fields", async () => {
    await runCeleryEventsInterop({ makeTransport: () => createAmqpTransport({ url: rabbit.url }), brokerUrl: rabbit.url });
  }, 90_000);
});
