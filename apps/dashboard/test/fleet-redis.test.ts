import { afterAll, beforeAll, describe, it } from "vitest";
import { Redis } from "ioredis";
import { createRedisTransport } from "@celeriac/redis";
import { startRedisServer, type RedisServer } from "../../../test-support/redis.js";
import { runFleetScenario } from "./fleet-scenario.js";

let server: RedisServer;
beforeAll(async () => {
  server = await startRedisServer();
});
afterAll(() => server?.dispose());

describe("dashboard on Redis, in Chromium", () => {
  it("shows a Python and a TypeScript worker, their tasks and results, a traceback, queue depths; revokes a queued task, sets a rate limit and shuts a worker down from the page", async () => {
    const url = server.url(2);
    await runFleetScenario({
      brokerUrl: url,
      makeTransport: () => createRedisTransport({ url }),
      label: "redis",
      async brokerDepth(queue) {
        const r = new Redis(url);
        try {
          return await r.llen(queue);
        } finally {
          r.disconnect();
        }
      },
    });
  }, 120_000);
});
