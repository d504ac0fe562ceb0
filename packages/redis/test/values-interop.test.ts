import { afterAll, beforeAll } from "vitest";
import { createRedisResultBackend, createRedisTransport } from "@celeriac/redis";
import { startRedisServer, type RedisServer } from "../../../test-support/redis.js";
import { describeValuesInterop } from "../../../test-support/values-interop.js";

// docs/interop.md's pairing for Redis: broker and results on one server, separate databases.
let server: RedisServer;
beforeAll(async () => {
  server = await startRedisServer();
});
afterAll(async () => {
  await server.dispose();
});

describeValuesInterop({
  name: "redis:// + redis results",
  python: () => ({ brokerUrl: server.url(2), resultUrl: server.url(3) }),
  cli: () => ({ broker: server.url(2), resultBackend: server.url(3) }),
  transport: () => createRedisTransport({ url: server.url(2) }),
  resultBackend: () => createRedisResultBackend({ url: server.url(3) }),
});
