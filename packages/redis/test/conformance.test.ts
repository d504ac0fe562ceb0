import { afterAll, beforeAll } from "vitest";
import { createRedisTransport } from "@celeriac/redis";
import { startRedisServer, type RedisServer } from "../../../test-support/redis.js";
import { describeTransportConformance } from "@celeriac/conformance";
import { describeColdShutdown } from "../../../test-support/cold-shutdown.js";

const visibilityTimeoutMs = 800;

// The suite's async describe reads capabilities from a probe transport at collection time, so the
// server starts at module load (a top-level await), before beforeAll would run.
const server: RedisServer = await startRedisServer();
beforeAll(() => undefined);
afterAll(() => server.dispose());

describeTransportConformance("redis", async () => ({ transport: createRedisTransport({ url: server.url(1), visibilityTimeoutMs, restoreIntervalMs: 100 }) }), {
  visibilityTimeoutMs,
});

describeColdShutdown("redis", () => createRedisTransport({ url: server.url(2) }));
