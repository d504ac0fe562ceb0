import { afterAll, beforeAll } from "vitest";
import { createRedisResultBackend, createRedisTransport } from "@celeriac/redis";
import { remoteControlSuite } from "../../../test-support/remote-control-suite.js";
import { startRedisServer, type RedisServer } from "../../../test-support/redis.js";

// Celery's remote control (celery.pidbox: kombu's pub/sub fanout for requests, a binding-set
// routed list for replies) between Python Celery 5.2.6 and a TypeScript worker on a private
// redis-server; broker and results in separate databases.
let server: RedisServer;
beforeAll(async () => {
  server = await startRedisServer();
}, 30_000);
afterAll(() => server?.dispose(), 30_000);

remoteControlSuite("Redis", {
  brokerUrl: () => server.url(2),
  transport: () => createRedisTransport({ url: server.url(2) }),
  resultBackend: () => createRedisResultBackend({ url: server.url(3) }),
  pythonResultUrl: () => server.url(3),
});
