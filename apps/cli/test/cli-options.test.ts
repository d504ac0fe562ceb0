import { mkdtempSync, readdirSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { importOptional } from "../src/optional.js";
import { createMemoryTransport } from "@celeriac/core";
import { createWorker } from "@celeriac/worker";
import { celeryLogTime, celeryTextLogger } from "../src/log-format.js";
import { celeriac, startCeleriacWorker, TS_TASKS } from "./cli-helpers.js";

const tmp = () => mkdtempSync(join(tmpdir(), "celeriac-cli-"));
const THROWS_AT_IMPORT = fileURLToPath(new URL("./fixtures/throws-at-import.mjs", import.meta.url));
const sqlite = () => `sqlite:///${join(tmp(), "q.db")}`;

describe("celeriac options and argument checks", () => {
  it("prints the version of its package.json", async () => {
    const r = await celeriac(["--version"]);
    const pkg = JSON.parse(readFileSync(new URL("../package.json", import.meta.url), "utf8")) as { version: string };
    expect(r.stdout.trim()).toBe(pkg.version);
  });

  it("worker checks the broker URL before the other arguments", async () => {
    const r = await celeriac(["worker", "--broker", "kafka://localhost"]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/unknown URL scheme "kafka"/);
    expect(r.stderr).not.toMatch(/--tasks/);
  });

  it("worker refuses a --broker-outage-limit that is not a number of seconds", async () => {
    const r = await celeriac(["worker", "--broker", sqlite(), "--tasks", TS_TASKS, "--broker-outage-limit", "soon"]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/--broker-outage-limit must be a number of seconds, got "soon"/);
  });

  it("call validates --timeout and --wait's result backend before sending anything", async () => {
    const broker = sqlite();
    const badTimeout = await celeriac(["call", "tasks.add", "--args", "[1, 2]", "--wait", "--timeout", "abc", "--broker", broker]);
    expect(badTimeout.code).toBe(2);
    expect(badTimeout.stderr).toMatch(/--timeout must be a number of seconds, got "abc"/);
    const noBackend = await celeriac(["call", "tasks.add", "--wait", "--result-backend", "none", "--broker", broker]);
    expect(noBackend.code).toBe(2);
    expect(noBackend.stderr).toMatch(/--wait needs a result backend/);
    expect(noBackend.stdout).toBe(""); // no task id: nothing was sent
    const purge = await celeriac(["purge", "-f", "--broker", broker]);
    expect(purge.stdout).toContain("Purged 0 messages");
  });

  it("takes Celery's global -b before the command", async () => {
    const broker = sqlite();
    expect((await celeriac(["-b", broker, "call", "tasks.add", "--args", "[1, 2]"])).code).toBe(0);
    // An explicit -b wins over the environment, before or after the command.
    const env = { CELERIAC_BROKER_URL: "kafka://not-this" };
    expect((await celeriac(["call", "tasks.add", "-b", broker], { env })).code).toBe(0);
    const r = await celeriac(["-b", broker, "purge", "-f"], { env });
    expect(r.stdout).toContain("Purged 2 messages from 1");
  });

  it("rejects an unknown -l/--loglevel and --log-format", async () => {
    const level = await celeriac(["worker", "--tasks", TS_TASKS, "-l", "chatty", "--broker", sqlite()]);
    expect(level.code).toBe(2);
    expect(level.stderr).toMatch(/--loglevel must be one of DEBUG, INFO, WARNING, ERROR, CRITICAL, got "chatty"/);
    const format = await celeriac(["worker", "--tasks", TS_TASKS, "--log-format", "xml", "--broker", sqlite()]);
    expect(format.code).toBe(2);
    expect(format.stderr).toMatch(/--log-format must be text or json/);
  });

  it("names a --tasks module that fails to load, with its stack", async () => {
    const r = await celeriac(["worker", "--tasks", THROWS_AT_IMPORT, "--broker", sqlite()]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(`could not load the --tasks module ${THROWS_AT_IMPORT}`);
    expect(r.stderr).toContain("Error: cannot reach the pricing service");
    expect(r.stderr).toMatch(/at connectToSomething \(.*throws-at-import\.mjs:3:\d+\)/);
  });

  it("logs Celery's lines with --log-format text, JSON lines when not on a terminal, and -l WARNING hides task lines", async () => {
    const broker = sqlite();
    const text = await startCeleriacWorker(["--broker", broker, "--tasks", TS_TASKS, "--log-format", "text"]);
    try {
      const r = await celeriac(["call", "ts.add", "--args", "[2, 3]", "--wait", "--broker", broker]);
      expect(r.code, r.stderr).toBe(0);
      const id = r.stdout.trim().split("\n")[0]!;
      expect(text.output()).toMatch(
        new RegExp(`^\\[\\d{4}-\\d\\d-\\d\\d \\d\\d:\\d\\d:\\d\\d,\\d{3}: INFO/MainProcess\\] Task ts\\.add\\[${id}\\] succeeded in \\d+\\.\\d{3}s: 5$`, "m"),
      );
      expect(text.output()).not.toContain("\x1b["); // no colour when not on a terminal
    } finally {
      expect(await text.stop()).toBe(0);
    }
    const json = await startCeleriacWorker(["--broker", broker, "--tasks", TS_TASKS]);
    try {
      expect((await celeriac(["call", "ts.add", "--args", "[1, 1]", "--wait", "--broker", broker])).code).toBe(0);
    } finally {
      await json.stop();
    }
    const records = json
      .output()
      .split("\n")
      .filter((l) => l.startsWith("{"))
      .map((l) => JSON.parse(l) as { level: string; msg: string });
    expect(records.some((r) => r.level === "info" && /^Task ts\.add\[.*\] succeeded in/.test(r.msg))).toBe(true);
    const quiet = await startCeleriacWorker(["--broker", broker, "--tasks", TS_TASKS, "-l", "WARNING"]);
    try {
      expect((await celeriac(["call", "ts.add", "--args", "[1, 1]", "--wait", "--broker", broker])).code).toBe(0);
    } finally {
      await quiet.stop();
    }
    expect(quiet.output()).not.toMatch(/Task ts\.add/);
  }, 60_000);

  it("Celery's log time: local time with a comma before the milliseconds", () => {
    expect(celeryLogTime(new Date(2026, 11, 5, 10, 0, 0, 123))).toBe("2026-12-05 10:00:00,123");
  });

  it("colours Celery's text lines by level when asked (on a terminal), INFO plain", () => {
    let out = "";
    const text = celeryTextLogger({ write: (s: string) => (out += s) }, true);
    const log = text.logger;
    text.attach(createWorker({ transport: createMemoryTransport(), queues: ["celery"], silent: true }), "info");
    log({ level: "error", msg: "Task t[1] raised unexpected: ValueError('x')" });
    log({ level: "warn", msg: "slow" });
    log({ level: "info", msg: "plain" });
    const lines = out.split("\n");
    expect(lines[0]).toMatch(/^\x1b\[31m\[.*: ERROR\/MainProcess\] Task t\[1\] raised unexpected: ValueError\('x'\)\x1b\[0m$/);
    expect(lines[1]).toMatch(/^\x1b\[33m\[.*: WARNING\/MainProcess\] slow\x1b\[0m$/);
    expect(lines[2]).toMatch(/^\[.*: INFO\/MainProcess\] plain$/);
  });

  it("demo removes the temp folder it made", async () => {
    const dir = tmp();
    const r = await celeriac(["demo", "--count", "5"], { env: { TMPDIR: dir }, timeoutMs: 90_000 });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain("all results correct");
    expect(readdirSync(dir)).toEqual([]);
  }, 90_000);

  it("an optional package that is not installed is named with its install command; other load errors pass through", async () => {
    await expect(importOptional("@celeriac/not-installed", "--feature", () => import("@celeriac/not-installed" as string))).rejects.toThrow(
      "--feature needs @celeriac/not-installed: npm install @celeriac/not-installed",
    );
    const other = new Error("broken inside");
    await expect(importOptional("@celeriac/metrics", "--metrics-port", () => Promise.reject(other))).rejects.toBe(other);
  });

  it("the repository links the celeriac bin (npx celeriac after npm install && npm run build)", async () => {
    const bin = fileURLToPath(new URL("../../../node_modules/.bin/celeriac", import.meta.url));
    const { spawnSync } = await import("node:child_process");
    const r = spawnSync(bin, ["--version"], { encoding: "utf8" });
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout.trim()).toMatch(/^\d+\.\d+\.\d+/);
  });
});
