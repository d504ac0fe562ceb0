import { afterAll, beforeAll, describe, it } from "vitest";
import { createAmqpTransport } from "@celeriac/amqp";
import { startRabbit, type RabbitNode } from "../../../test-support/rabbitmq.js";
import { runFleetScenario } from "./fleet-scenario.js";

let rabbit: RabbitNode;
beforeAll(async () => {
  rabbit = await startRabbit();
}, 60_000);
afterAll(() => rabbit?.shutdown());

describe("dashboard on RabbitMQ, in Chromium", () => {
  it("shows a Python and a TypeScript worker, their tasks and results, a traceback, queue depths; revokes a queued task, sets a rate limit and shuts a worker down from the page", async () => {
    await runFleetScenario({
      brokerUrl: rabbit.url,
      makeTransport: () => createAmqpTransport({ url: rabbit.url }),
      label: "rabbitmq",
      async brokerDepth(queue) {
        const out = await rabbit.ctl("list_queues", "name", "messages", "--no-table-headers", "--quiet");
        const line = out.split("\n").find((l) => l.split(/\s+/)[0] === queue);
        if (!line) throw new Error(`rabbitmqctl does not list ${queue}:\n${out}`);
        return Number(line.trim().split(/\s+/)[1]);
      },
    });
  }, 120_000);
});
