import { createAmqpTransport } from "@celeriac/amqp";
import { canvasInteropSuite } from "../../../test-support/canvas-interop.js";
import { sharedRabbit, shutdownSharedRabbit } from "../../../test-support/rabbitmq.js";
import { startRedisServer, type RedisServer } from "../../../test-support/redis.js";

/**
 * Chains, groups and chords across Python Celery and Celeriac over a private RabbitMQ node;
 * results (and chord counting) in Celery's Redis result backend on a private redis-server, since
 * rpc:// cannot count chord parts.
 */
let redis: RedisServer;
canvasInteropSuite(
  "amqp",
  async () => {
    const [rabbit, server] = await Promise.all([sharedRabbit(), startRedisServer()]);
    redis = server;
    return { brokerUrl: rabbit.url, resultUrl: server.url(1), transport: () => createAmqpTransport({ url: rabbit.url }) };
  },
  async () => {
    await redis.dispose();
    await shutdownSharedRabbit();
  },
);
