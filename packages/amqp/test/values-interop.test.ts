import { afterAll, beforeAll } from "vitest";
import { createAmqpTransport, createRpcResultBackend } from "@celeriac/amqp";
import { sharedRabbit, shutdownSharedRabbit, type RabbitNode } from "../../../test-support/rabbitmq.js";
import { describeValuesInterop } from "../../../test-support/values-interop.js";

// docs/interop.md's pairing for RabbitMQ: amqp:// with results over rpc://.
let rabbit: RabbitNode;
beforeAll(async () => {
  rabbit = await sharedRabbit();
}, 90_000);
afterAll(async () => {
  await shutdownSharedRabbit();
});

describeValuesInterop({
  name: "amqp:// + rpc://",
  python: () => ({ brokerUrl: rabbit.url, resultUrl: "rpc://" }),
  cli: () => ({ broker: rabbit.url, resultBackend: rabbit.url.replace(/^amqp:/, "rpc:") }),
  transport: () => createAmqpTransport({ url: rabbit.url }),
  resultBackend: () => createRpcResultBackend({ url: rabbit.url }),
});
