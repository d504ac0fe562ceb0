import { afterAll, beforeAll, describe, it } from "vitest";
import { startRedisServer, type RedisServer } from "../../../test-support/redis.js";
import { assertExactlyOnce, runHaScenario } from "./beat-ha.js";

let redis: RedisServer;
beforeAll(async () => {
  redis = await startRedisServer();
});
afterAll(async () => {
  await redis?.dispose();
});

describe("celeriac beat on Redis: SET NX PX lease with a fencing epoch", () => {
  it("three replicas, leader SIGKILLed then the next SIGTERMed: every due second sent exactly once", async () => {
    const report = await runHaScenario(redis.url(0), "beat-ha-redis");
    assertExactlyOnce("redis", report);
  }, 90_000);
});
