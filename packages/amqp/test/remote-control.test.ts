import { afterAll, beforeAll } from "vitest";
import { createAmqpTransport, createRpcResultBackend } from "@celeriac/amqp";
import { remoteControlSuite } from "../../../test-support/remote-control-suite.js";
import { sharedRabbit, shutdownSharedRabbit, type RabbitNode } from "../../../test-support/rabbitmq.js";

// Celery's remote control (celery.pidbox) between Python Celery 5.2.6 and a TypeScript worker on
// a private RabbitMQ node; task results over rpc://.
let rabbit: RabbitNode;
beforeAll(async () => {
  rabbit = await sharedRabbit();
}, 120_000);
afterAll(() => shutdownSharedRabbit(), 60_000);

remoteControlSuite("RabbitMQ", {
  brokerUrl: () => rabbit.url,
  transport: () => createAmqpTransport({ url: rabbit.url }),
  resultBackend: () => createRpcResultBackend({ url: rabbit.url }),
});
