import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { transportFromUrl } from "@celeriac/core";
import { createWorker } from "@celeriac/worker";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startPythonRedisWorker, startRedisServer, type RedisServer } from "../../../test-support/redis.js";
import { spawnBeat } from "./beat-ha.js";
import { celeriac } from "./cli-helpers.js";

const dir = mkdtempSync(join(tmpdir(), "celeriac-beat-cli-"));
const SCHEDULE_MODULE = fileURLToPath(new URL("./fixtures/beat-schedule.mjs", import.meta.url));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function scheduleFile(name: string, value: unknown): string {
  const path = join(dir, name);
  writeFileSync(path, JSON.stringify(value));
  return path;
}

describe("celeriac beat: bad input fails at startup, naming the entry, and sends nothing", () => {
  const cases: [string, unknown, RegExp][] = [
    [
      "an invalid crontab field",
      { entries: { nightly: { task: "t.report", schedule: { crontab: { minute: "61", hour: 3 } } } } },
      /schedule entry "nightly": crontab minute="61": 61 is above the maximum 59/,
    ],
    [
      "a day_of_week of 7",
      { entries: { weekly: { task: "t.report", schedule: { crontab: { day_of_week: 7 } } } } },
      /schedule entry "weekly": crontab dayOfWeek=7: 7 is outside 0-6/,
    ],
    ["an unknown timezone", { timezone: "Mars/Olympus_Mons", entries: { a: { task: "t.a", schedule: 5 } } }, /unknown timezone "Mars\/Olympus_Mons"/],
    ["an entry naming no task", { entries: { ok: { task: "t.ok", schedule: 5 }, orphan: { schedule: 5 } } }, /schedule entry "orphan": names no task/],
    ["an unknown entry key", { entries: { typo: { task: "t.a", schedule: 5, kwarg: {} } } }, /schedule entry "typo": entry: unknown key "kwarg"/],
  ];
  for (const [what, schedule, message] of cases) {
    it(`refuses ${what}`, async () => {
      const db = join(dir, `bad-${what.replace(/\W+/g, "-")}.db`);
      const r = await celeriac(["beat", "-b", `sqlite:///${db}`, "-s", scheduleFile(`bad-${what.replace(/\W+/g, "-")}.json`, schedule)]);
      expect(r.code).toBe(2);
      expect(r.stderr).toMatch(message);
      // Validation comes before any connection: the broker file was never even created.
      expect(existsSync(db)).toBe(false);
    });
  }

  it("refuses a missing --schedule and an unreadable file", async () => {
    const a = await celeriac(["beat", "-b", `sqlite:///${join(dir, "none.db")}`]);
    expect(a.code).toBe(2);
    expect(a.stderr).toMatch(/--schedule <file> is required/);
    writeFileSync(join(dir, "broken.json"), "{ not json");
    const b = await celeriac(["beat", "-s", join(dir, "broken.json")]);
    expect(b.code).toBe(2);
    expect(b.stderr).toMatch(/--schedule .*broken\.json/);
  });
});

describe("celeriac beat --dry-run", () => {
  it("prints the next fire times of each entry in the schedule's timezone", async () => {
    const path = scheduleFile("dry.json", {
      timezone: "America/New_York",
      entries: { report: { task: "t.report", schedule: { crontab: { minute: 30, hour: 2 } } }, ping: { task: "t.ping", schedule: 60 } },
    });
    const r = await celeriac(["beat", "-s", path, "--dry-run", "3"]);
    expect(r.code).toBe(0);
    const lines = r.stdout.trim().split("\n");
    expect(lines[0]).toBe("timezone America/New_York");
    expect(lines[1]).toBe("report: t.report <crontab: 30 2 * * * (m/h/d/dM/MY)>");
    expect(lines.slice(2, 5).every((l) => /^ {2}\d{4}-\d\d-\d\dT02:30:00-0[45]:00 {2}\(/.test(l))).toBe(true);
    expect(lines[5]).toBe("ping: t.ping <freq: 60 s>");
    expect(lines).toHaveLength(9);
  });
});

describe("celeriac beat with a schedule module and --metrics-port", () => {
  it("loads defineSchedule(...) from a module, logs each sent run and serves Prometheus metrics", async () => {
    const beat = spawnBeat(["-b", `sqlite:///${join(dir, "module.db")}`, "-s", SCHEDULE_MODULE, "--metrics-port", "0", "--max-interval", "1"]);
    try {
      const deadline = Date.now() + 20_000;
      while ((beat.output().match(/beat: sent ts\.add/g) ?? []).length < 3 && Date.now() < deadline) {
        if (beat.child.exitCode !== null) break;
        await new Promise((r) => setTimeout(r, 50));
      }
      const out = beat.output();
      expect(out).toMatch(/"mornings" reports\.daily <crontab: 30 7 mon-fri \* \* \(m\/h\/d\/dM\/MY\)> next run \d{4}-\d\d-\d\dT07:30:00-0[45]:00/);
      expect(out).toMatch(/timezone America\/New_York, 2 entries/);
      const url = /celeriac beat metrics: (http:\S+)/.exec(out)?.[1];
      expect(url, out).toBeDefined();
      const text = await (await fetch(url!)).text();
      expect(text).toMatch(/celeriac_beat_leader 1/);
      expect(Number(/celeriac_beat_sent_total\{entry="add-fast",task="ts.add"\} (\d+)/.exec(text)?.[1])).toBeGreaterThanOrEqual(3);
    } finally {
      beat.child.kill("SIGTERM");
      expect(await beat.exited).toBe(0);
    }
  });
});

describe("celeriac beat sends to Python and TypeScript workers (Redis)", () => {
  let redis: RedisServer;
  beforeAll(async () => {
    redis = await startRedisServer();
  });
  afterAll(async () => {
    await redis?.dispose();
  });

  it("a Python Celery worker and a TypeScript worker run the runs of one schedule", async () => {
    const record = join(dir, "py-runs.txt");
    writeFileSync(record, "");
    const path = scheduleFile("interop.json", {
      timezone: "Europe/London",
      entries: {
        "py-record": { task: "pytasks.record", schedule: 1, args: [record, "beat-run"], options: { queue: "beat-py" } },
        "ts-echo": { task: "beat.echo", schedule: 1, args: [1, 2], kwargs: { k: "v" }, options: { queue: "beat-ts", priority: 5 } },
      },
    });
    const py = await startPythonRedisWorker({ brokerUrl: redis.url(0), queues: ["beat-py"] });
    const transport = await transportFromUrl(redis.url(0));
    const tsRuns: { id: string; args: unknown[]; kwargs: Record<string, unknown>; entry: unknown }[] = [];
    const worker = createWorker({ transport, queues: ["beat-ts"], silent: true });
    worker.register("beat.echo", (ctx, ...args) => {
      tsRuns.push({ id: ctx.id, args, kwargs: { ...ctx.kwargs }, entry: ctx.headers["celeriac_beat_entry"] });
    });
    await transport.connect();
    await worker.start();
    const beat = spawnBeat(["-b", redis.url(0), "-s", path, "--max-interval", "1"]);
    try {
      const deadline = Date.now() + 30_000;
      const pyLines = () =>
        readFileSync(record, "utf8")
          .split("\n")
          .filter((l) => l === "beat-run").length;
      while ((pyLines() < 3 || tsRuns.length < 3) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
      beat.child.kill("SIGTERM");
      expect(await beat.exited).toBe(0);
      const out = beat.output();
      expect(out).toMatch(/"py-record" pytasks\.record <freq: 1 s> next run \d{4}-\d\d-\d\dT[\d:.]+(Z|[+-]\d\d:\d\d)/);
      const sentPy = [...out.matchAll(/sent pytasks\.record\[([0-9a-f-]{36})\]/g)].map((m) => m[1]);
      const sentTs = [...out.matchAll(/sent beat\.echo\[([0-9a-f-]{36})\]/g)].map((m) => m[1]);
      expect(sentPy.length).toBeGreaterThanOrEqual(3);
      // Everything sent arrives, once.
      const settle = Date.now() + 10_000;
      while ((pyLines() < sentPy.length || tsRuns.length < sentTs.length) && Date.now() < settle) await new Promise((r) => setTimeout(r, 100));
      expect(pyLines()).toBe(sentPy.length);
      expect(tsRuns.map((r) => r.id).sort()).toEqual([...sentTs].sort());
      expect(tsRuns.every((r) => JSON.stringify(r.args) === "[1,2]" && r.kwargs["k"] === "v" && r.entry === "ts-echo")).toBe(true);
      expect(py.output()).toMatch(/Task pytasks\.record\[[0-9a-f-]{36}\] succeeded/);
      for (const id of sentPy) expect(py.output()).toContain(`pytasks.record[${id}]`);
    } finally {
      if (beat.child.exitCode === null) beat.child.kill("SIGKILL");
      await worker.stop();
      await transport.close();
      await py.stop();
    }
  }, 90_000);
});
