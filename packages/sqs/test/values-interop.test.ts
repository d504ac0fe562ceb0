import { afterAll, beforeAll } from "vitest";
import { createRedisResultBackend } from "@celeriac/redis";
import { sqsTransportFromUrl } from "@celeriac/sqs";
import { startRedisServer, type RedisServer } from "../../../test-support/redis.js";
import { startSqsEmulator, type SqsEmulator } from "../../../test-support/sqs-emulator.mjs";
import { describeValuesInterop } from "../../../test-support/values-interop.js";

// docs/interop.md's pairing for SQS: the local emulator as broker, results in Redis.
let emulator: SqsEmulator;
let redis: RedisServer;
const brokerUrl = () => `sqs://test:test@127.0.0.1:${emulator.port}`;
const tsBrokerUrl = () => `${brokerUrl()}?region=us-east-1&wait_time_seconds=1`;

beforeAll(async () => {
  emulator = await startSqsEmulator();
  redis = await startRedisServer();
});
afterAll(async () => {
  await emulator.close();
  await redis.dispose();
});

describeValuesInterop({
  name: "sqs:// + redis results",
  // sqs_app sets kombu's SQS transport options (region, short polls) on the shared app.
  python: () => ({ brokerUrl: brokerUrl(), resultUrl: redis.url(0), app: "sqs_app" }),
  cli: () => ({ broker: tsBrokerUrl(), resultBackend: redis.url(0) }),
  transport: () => sqsTransportFromUrl(tsBrokerUrl()),
  resultBackend: () => createRedisResultBackend({ url: redis.url(0) }),
});
