import { createRedisTransport } from "@celeriac/redis";
import { canvasInteropSuite } from "../../../test-support/canvas-interop.js";
import { startRedisServer, type RedisServer } from "../../../test-support/redis.js";

/** Chains, groups and chords across Python Celery and Celeriac over a Redis broker, results in Celery's Redis backend. */
let server: RedisServer;
canvasInteropSuite(
  "redis",
  async () => {
    server = await startRedisServer();
    return {
      brokerUrl: server.url(2),
      resultUrl: server.url(3),
      transport: () => createRedisTransport({ url: server.url(2) }),
    };
  },
  () => server.dispose(),
);
