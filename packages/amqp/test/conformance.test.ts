import { afterAll, beforeAll } from "vitest";
import { createAmqpTransport } from "@celeriac/amqp";
import { describeTransportConformance } from "@celeriac/conformance";
import { sharedRabbit, shutdownSharedRabbit, type RabbitNode } from "../../../test-support/rabbitmq.js";
import { describeColdShutdown } from "../../../test-support/cold-shutdown.js";

let rabbit: RabbitNode;
beforeAll(async () => {
  rabbit = await sharedRabbit();
}, 120_000);
afterAll(() => shutdownSharedRabbit(), 60_000);

describeTransportConformance("amqp (RabbitMQ, priority queues, dead-letter exchange)", async () => {
  // The probe transport is built at collection time, before the broker is up: it is never used.
  const url = rabbit ? rabbit.url : "amqp://127.0.0.1:1//";
  const transport = createAmqpTransport({ url, maxPriority: 10, deadLetterExchange: "celeriac.dead" });
  return { transport };
});

describeTransportConformance("amqp (RabbitMQ, plain Celery queues)", async () => ({
  transport: createAmqpTransport({ url: rabbit ? rabbit.url : "amqp://127.0.0.1:1//" }),
}));

describeColdShutdown("amqp (RabbitMQ)", () => createAmqpTransport({ url: rabbit.url }));
