import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { freePort, startRedisServer, type RedisServer } from "../../../test-support/redis.js";
import { displayUrl } from "../src/config.js";
import { TS_TASKS, celeriac, spawnCeleriacWorker, type SpawnedWorker } from "./cli-helpers.js";

// `celeriac worker` (the built CLI, in its own process) against a Redis it cannot use: down,
// refusing the password, or going away after the worker started. Each must be logged with the
// password masked, and SIGTERM must end the process in every connection state.
let server: RedisServer;
const PASSWORD = "s3cret-pw";

beforeAll(async () => {
  server = await startRedisServer({ requirePassword: PASSWORD });
}, 30_000);
afterAll(async () => {
  await server?.dispose();
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function until(w: SpawnedWorker, pattern: RegExp, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!pattern.test(w.output())) {
    if (Date.now() > deadline) throw new Error(`no ${String(pattern)} within ${timeoutMs} ms:\n${w.output()}`);
    await sleep(25);
  }
}

/** SIGTERM, then how long the process took to exit (SIGKILL after `limitMs`, then the test fails). */
async function terminate(w: SpawnedWorker, limitMs = 10_000): Promise<{ code: number | null; ms: number }> {
  const t0 = Date.now();
  w.child.kill("SIGTERM");
  const timer = setTimeout(() => w.child.kill("SIGKILL"), limitMs);
  const code = await w.exited;
  clearTimeout(timer);
  return { code, ms: Date.now() - t0 };
}

function url(password: string, port = server.port): string {
  return `redis://:${password}@127.0.0.1:${port}/0`;
}

describe("celeriac worker on a Redis it cannot use", () => {
  it("a refused password: logged with the URL masked, lifecycle failed, exit non-zero within seconds", async () => {
    const t0 = Date.now();
    const w = spawnCeleriacWorker(["--broker", url("wrong-pw"), "--tasks", TS_TASKS]);
    const timer = setTimeout(() => w.child.kill("SIGKILL"), 15_000);
    const code = await w.exited;
    clearTimeout(timer);
    expect(code, w.output()).toBe(1);
    expect(Date.now() - t0).toBeLessThan(15_000);
    expect(w.output()).toMatch(/broker connection failed, stopping: redis: redis:\/\/:\*\*@127\.0\.0\.1:\d+\/0 refused the connection: WRONGPASS/);
    expect(w.output()).not.toContain("wrong-pw");
  }, 30_000);

  it("no password for a server that wants one (NOAUTH) fails the same way", async () => {
    const w = spawnCeleriacWorker(["--broker", `redis://127.0.0.1:${server.port}/0`, "--tasks", TS_TASKS]);
    const timer = setTimeout(() => w.child.kill("SIGKILL"), 15_000);
    expect(await w.exited, w.output()).toBe(1);
    clearTimeout(timer);
    expect(w.output()).toMatch(/refused the connection: NOAUTH/);
  }, 30_000);

  it("Redis down: the outage is logged (masked) while it retries, and SIGTERM while connecting exits", async () => {
    const port = await freePort();
    const w = spawnCeleriacWorker(["--broker", url(PASSWORD, port), "--tasks", TS_TASKS]);
    await until(w, /reconnecting to the broker in \d+ ms \(attempt 2\)/, 10_000);
    expect(w.output()).toMatch(new RegExp(`broker connection lost: redis: cannot connect to redis://:\\*\\*@127\\.0\\.0\\.1:${port}/0: .*ECONNREFUSED`));
    expect(w.output()).not.toContain("ready");
    const { code, ms } = await terminate(w);
    expect(code, w.output()).toBe(0);
    expect(ms).toBeLessThan(5000);
    expect(w.output()).not.toContain(PASSWORD);
  }, 30_000);

  it("Redis goes away after the worker started: the outage is logged, and SIGTERM while reconnecting exits", async () => {
    const w = spawnCeleriacWorker(["--broker", url(PASSWORD), "--tasks", TS_TASKS]);
    await until(w, /celeriac worker ready/, 20_000);
    await server.stop();
    try {
      await until(w, /broker connection lost: redis: lost the connection to redis:\/\/:\*\*@/, 10_000);
      await until(w, /reconnecting to the broker/, 10_000);
      const { code, ms } = await terminate(w);
      expect(code, w.output()).toBe(0);
      expect(ms).toBeLessThan(8000);
      expect(w.output()).not.toContain(PASSWORD);
    } finally {
      await server.start();
    }
  }, 40_000);

  it("SIGTERM while connected exits at once", async () => {
    const w = spawnCeleriacWorker(["--broker", url(PASSWORD), "--tasks", TS_TASKS]);
    await until(w, /celeriac worker ready/, 20_000);
    const { code, ms } = await terminate(w);
    expect(code, w.output()).toBe(0);
    expect(ms).toBeLessThan(5000);
  }, 30_000);
});

describe("displayUrl", () => {
  it("masks the password of every part of a sentinel:// list", () => {
    expect(displayUrl("sentinel://:pw1@h1:26379/0;sentinel://u:pw2@h2:26379?master_name=m")).toBe(
      "sentinel://:**@h1:26379/0;sentinel://u:**@h2:26379?master_name=m",
    );
  });
});

describe("celeriac call --wait", () => {
  it("an unreachable Redis result backend ends in one clear line and a non-zero exit, not a stack trace", async () => {
    const port = await freePort();
    const r = await celeriac(["call", "ts.add", "-a", "[1,2]", "-b", url(PASSWORD), "--result-backend", url(PASSWORD, port), "--wait", "--timeout", "30"]);
    expect(r.code).toBe(1);
    const errors = r.stderr.split("\n").filter((l) => l.startsWith("celeriac:"));
    expect(errors, r.stderr).toEqual([
      expect.stringMatching(new RegExp(`^celeriac: redis result backend redis://:\\*\\*@127\\.0\\.0\\.1:${port}/0: cannot .*ECONNREFUSED`)),
    ]);
    expect(r.stderr).not.toMatch(/^\s+at /m);
    expect(r.stderr + r.stdout).not.toContain(PASSWORD);
  }, 60_000);
});
