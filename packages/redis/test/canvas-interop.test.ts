import { randomUUID } from "node:crypto";
import { Redis } from "ioredis";
import { describe, expect, it } from "vitest";
import { createRedisResultBackend, createRedisTransport } from "@celeriac/redis";
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

describe("Celery's chord keys in the Redis result backend", () => {
  it("set_chord_size / on_chord_part_return: .s, .j scored by group_index, expiry, ordered parts once, cleanup", async () => {
    const backend = createRedisResultBackend({ url: server.url(5), expiresMs: 60_000 });
    const redis = new Redis(server.port, "127.0.0.1", { db: 5 });
    try {
      const gid = randomUUID();
      const key = `celery-taskset-meta-${gid}`;
      await backend.setChordSize(gid, 3);
      expect(await redis.get(`${key}.s`)).toBe("3");
      expect(await redis.ttl(`${key}.s`)).toBeGreaterThan(50);
      const part = (taskId: string, groupIndex: number | null, result: unknown, state: "SUCCESS" | "FAILURE" = "SUCCESS") =>
        backend.onChordPartReturn({ groupId: gid, taskId, groupIndex, state, result });
      expect(await part("c", 2, "third")).toBeNull();
      expect(await part("x", null, { exc_type: "ValueError", exc_message: ["no"], exc_module: "builtins" }, "FAILURE")).toBeNull();
      // Python's json.dumps of [1, task_id, state, result], scored by group_index (+inf without one).
      expect(await redis.zrange(`${key}.j`, 0, -1, "WITHSCORES")).toEqual([
        '[1, "c", "SUCCESS", "third"]',
        "2",
        '[1, "x", "FAILURE", {"exc_type": "ValueError", "exc_message": ["no"], "exc_module": "builtins"}]',
        "inf",
      ]);
      expect(await redis.ttl(`${key}.j`)).toBeGreaterThan(50);
      const parts = await part("a", 0, { first: true });
      expect(parts).toEqual([
        { taskId: "a", state: "SUCCESS", result: { first: true } },
        { taskId: "c", state: "SUCCESS", result: "third" },
        { taskId: "x", state: "FAILURE", result: { exc_type: "ValueError", exc_message: ["no"], exc_module: "builtins" } },
      ]);
      expect(await redis.exists(`${key}.j`, `${key}.t`, `${key}.s`)).toBe(0);
    } finally {
      redis.disconnect();
      await backend.close();
    }
  });
});
