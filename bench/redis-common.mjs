// What the Redis benchmarks share: a private redis-server, filling a queue with no-op tasks in
// kombu's format, and timing a drain from outside by polling Redis.

import { join } from "node:path";
import { Redis } from "ioredis";
import { root } from "./lib/common.mjs";
import { startRedisServer } from "./lib/support.mjs";

export { root };
const { createEnvelope, celeryJsonCodec } = await import(join(root, "packages/core/dist/index.js"));
const { createRedisTransport } = await import(join(root, "packages/redis/dist/index.js"));

/** kombu's priority step suffixes: the bare queue, then steps 3, 6, 9. */
export const STEPS = ["", "\x06\x163", "\x06\x166", "\x06\x169"];

export const numberArg = (name, dflt) => {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : dflt;
};

/** A private redis-server (test-support/redis.ts) on a free loopback port; `url(db)` addresses it, `stop()` ends it. */
export async function startRedis() {
  const server = await startRedisServer();
  return { port: server.port, url: (db) => server.url(db), stop: () => server.dispose() };
}

export async function flush(url) {
  const r = new Redis(url);
  await r.flushdb();
  r.disconnect();
}

/** Empties the db and publishes `n` `bench.noop` tasks (ignore_result) to `queue`; resolves with the publish rate. */
export async function fill(url, n, queue = "celery") {
  await flush(url);
  const transport = createRedisTransport({ url });
  await transport.connect();
  const started = performance.now();
  for (let i = 0; i < n; i += 1000) {
    const batch = [];
    for (let j = i; j < Math.min(n, i + 1000); j++) {
      const env = createEnvelope({ task: "bench.noop", id: crypto.randomUUID(), args: [j], headers: { ignoreResult: true } });
      batch.push(transport.publish(queue, celeryJsonCodec.encode(env)));
    }
    await Promise.all(batch);
  }
  const secs = (performance.now() - started) / 1000;
  await transport.close();
  return n / secs;
}

/**
 * Polls Redis until the queue lists and `unacked` are empty: seconds from the first take of the
 * `n` messages (the clock starts when the queue first shrinks) to the last ack.
 */
export async function measureDrain(url, n, child, queue = "celery") {
  const r = new Redis(url);
  let start = null;
  let exited = false;
  child.once("exit", () => (exited = true));
  const deadline = Date.now() + 30 * 60_000;
  try {
    for (;;) {
      const now = performance.now();
      const p = r.multi();
      for (const s of STEPS) p.llen(queue + s);
      p.hlen("unacked");
      const res = await p.exec();
      const waiting = res.slice(0, 4).reduce((a, [, c]) => a + c, 0);
      const unacked = res[4][1];
      if (start === null && waiting < n) start = now;
      if (start !== null && waiting === 0 && unacked === 0) return (now - start) / 1000;
      if (exited) throw new Error("worker exited before draining the queue");
      if (Date.now() > deadline) throw new Error("drain took over 30 minutes");
      await new Promise((res) => setTimeout(res, 5));
    }
  } finally {
    r.disconnect();
  }
}

/** SIGTERM, SIGKILL after 10 s; resolves when the child exited. */
export function stopChild(child) {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) return resolve();
    child.once("exit", () => resolve());
    child.kill("SIGTERM");
    setTimeout(() => child.kill("SIGKILL"), 10_000).unref();
  });
}

/** The median run by `secs`. */
export function median(runs) {
  const sorted = [...runs].sort((a, b) => a.secs - b.secs);
  return sorted[Math.floor(sorted.length / 2)];
}
