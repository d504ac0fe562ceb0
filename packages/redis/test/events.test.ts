import { afterAll, beforeAll, describe, it } from "vitest";
import { createRedisTransport } from "@celeriac/redis";
import { runCeleryEventsInterop } from "../../../test-support/celery-events-interop.js";
import { startRedisServer, type RedisServer } from "../../../test-support/redis.js";

let server: RedisServer;
beforeAll(async () => {
  server = await startRedisServer();
});
afterAll(() => server.dispose());

describe("Celery events on Redis (celeryev as kombu's pub/sub fanout)", () => {
  it("celery events --dump and Celery's State see the worker and every task event with Celery's fields", async () => {
    await runCeleryEventsInterop({ makeTransport: () => createRedisTransport({ url: server.url(4) }), brokerUrl: server.url(4) });
  }, 90_000);
});
