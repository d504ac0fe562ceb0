// The test-support helpers the benchmark reuses (TypeScript, loaded through ./ts-hooks.mjs).
import { register } from "node:module";

register("./ts-hooks.mjs", import.meta.url);

const rabbit = await import("../../test-support/rabbitmq.ts");
const redis = await import("../../test-support/redis.ts");
const python = await import("../../test-support/python.ts");
const sqs = await import("../../test-support/sqs-emulator.mjs");

export const { startRabbit } = rabbit;
export const { startRedisServer, freePort } = redis;
export const { PYTHON, PYTHON_DIR, spawnPython, runPython } = python;
export const { startSqsEmulator } = sqs;
