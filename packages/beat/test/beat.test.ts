import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createClient, createMemoryTransport, decodeTask, defineTask, type TaskEnvelope } from "@celeriac/core";
import { afterAll, describe, expect, it } from "vitest";
import {
  beatTaskId,
  createBeat,
  createSqliteLease,
  crontab,
  defineSchedule,
  every,
  instrumentBeat,
  scheduleFromJson,
  type BeatEvent,
  type BeatSchedule,
  type LeaderLease,
} from "../src/index.js";

const dir = mkdtempSync(join(tmpdir(), "celeriac-beat-unit-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
let files = 0;
const leaseFile = () => join(dir, `lease-${files++}.db`);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const add = defineTask<[number, number], number>("tasks.add");
const report = defineTask<[], void, { day: string }>("tasks.report");

/** A memory transport whose published envelopes are kept for the assertions. */
function recordingClient() {
  const transport = createMemoryTransport();
  const sent: { queue: string; envelope: TaskEnvelope }[] = [];
  const publish = transport.publish.bind(transport);
  transport.publish = async (queue, message, options) => {
    sent.push({ queue, envelope: decodeTask(message) });
    return publish(queue, message, options);
  };
  return { client: createClient({ transport }), sent };
}

async function runBeat(schedule: BeatSchedule, lease: LeaderLease, forMs: number, name = "celery") {
  const { client, sent } = recordingClient();
  const lines: string[] = [];
  const events: BeatEvent[] = [];
  const beat = createBeat({ schedule, client, lease, name, maxIntervalMs: 1000, log: (l) => lines.push(l) });
  beat.subscribe((e) => events.push(e));
  const running = beat.run();
  await sleep(forMs);
  await beat.stop();
  await running;
  return { sent, lines, events, beat };
}

describe("defineSchedule", () => {
  it("types entries against their task definitions and validates them at once", () => {
    const s = defineSchedule({
      timezone: "Europe/London",
      entries: {
        sum: { task: add, schedule: every(10_000), args: [1, 2] },
        daily: {
          task: report,
          schedule: crontab({ hour: 7, minute: 30, dayOfWeek: "mon-fri" }),
          kwargs: { day: "today" },
          options: { queue: "reports", expiresMs: 60_000 },
        },
        byName: { task: "other.task", schedule: every(1000), args: ["anything"] },
      },
    });
    expect(s.entries.map((e) => [e.name, e.taskName])).toEqual([
      ["sum", "tasks.add"],
      ["daily", "tasks.report"],
      ["byName", "other.task"],
    ]);
    // @ts-expect-error args must match the task's [number, number]
    expect(() => defineSchedule({ entries: { bad: { task: add, schedule: every(1000), args: ["x"] } } })).not.toThrow();
    // @ts-expect-error kwargs must match the task's { day: string }
    defineSchedule({ entries: { bad: { task: report, schedule: every(1000), kwargs: { day: 1 } } } });
    expect(() => defineSchedule({ timezone: "Nowhere/Land", entries: { a: { task: add, schedule: every(1000) } } })).toThrow(
      /unknown timezone "Nowhere\/Land"/,
    );
    expect(() => defineSchedule({ entries: { a: { task: add, schedule: every(1000), options: { priority: 12 } } } })).toThrow(
      /schedule entry "a": options.priority/,
    );
    expect(() => defineSchedule({ entries: {} })).toThrow(/at least one entry/);
  });

  it("reads Celery's names and units in the JSON form", () => {
    const s = scheduleFromJson({
      timezone: "UTC",
      entries: {
        a: { task: "t.a", schedule: 30, options: { queue: "q", expires: 5, priority: 3, headers: { x: 1 } } },
        b: { task: "t.b", schedule: { crontab: { minute: "*/15", day_of_week: "mon-fri", month_of_year: "1-6" } } },
        c: { task: "t.c", schedule: { every: 3600, relative: true }, missed: "skip", grace: 10 },
      },
    });
    const [a, b, c] = s.entries;
    expect(a!.options).toEqual({ queue: "q", expiresMs: 5000, priority: 3, headers: { x: 1 } });
    expect(b!.schedule.toString()).toBe("<crontab: */15 * mon-fri * 1-6 (m/h/d/dM/MY)>");
    expect(c!.missed).toBe("skip");
    expect(c!.graceMs).toBe(10_000);
    expect(() => scheduleFromJson({ entries: { d: { task: "t.d", schedule: { crontab: { minutes: 5 } } } } })).toThrow(
      /schedule entry "d": crontab: unknown key "minutes"/,
    );
  });
});

describe("createBeat", () => {
  it("sends each due run once, with a deterministic task id, the entry's options and its due time", async () => {
    const lease = await createSqliteLease({ path: leaseFile(), leaseMs: 2000 });
    const schedule = defineSchedule({
      entries: {
        sum: { task: add, schedule: every(200), args: [2, 3], options: { queue: "math", priority: 7, expiresMs: 30_000, headers: { origin: "beat-test" } } },
      },
    });
    const { sent, lines } = await runBeat(schedule, lease, 1300);
    await lease.close();
    expect(sent.length).toBeGreaterThanOrEqual(4);
    const dues = sent.map((s) => Date.parse(String(s.envelope.headers.extra["celeriac_beat_due"])));
    for (let i = 1; i < dues.length; i++) expect(dues[i]! - dues[i - 1]!).toBe(200);
    for (const [i, s] of sent.entries()) {
      expect(s.queue).toBe("math");
      expect(s.envelope.headers.id).toBe(beatTaskId("celery", "sum", dues[i]!));
      expect(s.envelope.args).toEqual([2, 3]);
      expect(s.envelope.properties.priority).toBe(7);
      expect(s.envelope.headers.expires).not.toBeNull();
    }
    expect(lines.filter((l) => /^beat: sent tasks\.add\[[0-9a-f-]{36}\] entry="sum" due=/.test(l))).toHaveLength(sent.length);
    expect(lines.at(-1)).toMatch(/released the lease/);
  });

  for (const [policy, expectSent, expectMissed] of [
    ["once", 1, 4],
    ["all", 5, 0],
    ["skip", 0, 5],
  ] as const) {
    it(`after a gap with no leader, missed: "${policy}" sends ${expectSent} and counts ${expectMissed} as missed`, async () => {
      const path = leaseFile();
      const schedule = defineSchedule({ entries: { tick: { task: add, schedule: every(1000), args: [1, 1], missed: policy, graceMs: 100 } } });
      // What a previous leader left: its last run was 5.5 s ago.
      const seed = await createSqliteLease({ path, leaseMs: 1000 });
      const epoch = (await seed.tryAcquire())!;
      const lastDueAt = Date.now() - 5500;
      await seed.saveState(epoch, "tick", { lastDueAt, schedule: "<freq: 1 s>" });
      await seed.release(epoch);
      await seed.close();
      const lease = await createSqliteLease({ path, leaseMs: 2000 });
      const { sent, events, lines } = await runBeat(schedule, lease, 250);
      await lease.close();
      expect(sent).toHaveLength(expectSent);
      const missed = events.flatMap((e) => (e.type === "missed" ? e.dueAts : []));
      expect(missed).toHaveLength(expectMissed);
      const expectedDues = [1, 2, 3, 4, 5].map((k) => lastDueAt + k * 1000);
      expect([...sent.map((s) => s.envelope.headers.id), ...missed.map((d) => beatTaskId("celery", "tick", d))].sort()).toEqual(
        expectedDues.map((d) => beatTaskId("celery", "tick", d)).sort(),
      );
      if (expectMissed > 0) expect(lines.join("\n")).toMatch(/runs? of "tick" missed/);
    });
  }

  it('after two days without a leader, a 1-second entry with missed: "once" still sends one run', async () => {
    const path = leaseFile();
    const schedule = defineSchedule({ entries: { tick: { task: add, schedule: every(1000), args: [1, 1] } } });
    const seed = await createSqliteLease({ path, leaseMs: 1000 });
    const epoch = (await seed.tryAcquire())!;
    await seed.saveState(epoch, "tick", { lastDueAt: Date.now() - 2 * 86_400_000 - 500, schedule: "<freq: 1 s>" });
    await seed.release(epoch);
    await seed.close();
    const lease = await createSqliteLease({ path, leaseMs: 5000 });
    const start = Date.now();
    const { sent, events } = await runBeat(schedule, lease, 400);
    await lease.close();
    // One run for the whole gap (the latest due time); runs due after the start are on time.
    expect(sent.filter((s) => Date.parse(String(s.envelope.headers.extra["celeriac_beat_due"])) < start)).toHaveLength(1);
    expect(events.flatMap((e) => (e.type === "missed" ? e.dueAts : [])).length).toBe(2 * 86_400 - 1);
  });

  it("re-sends a run the previous leader may have died sending, under the same task id", async () => {
    const path = leaseFile();
    const schedule = defineSchedule({ entries: { tick: { task: add, schedule: every(60_000), args: [1, 1] } } });
    const seed = await createSqliteLease({ path, leaseMs: 1000 });
    const epoch = (await seed.tryAcquire())!;
    const pending = Date.now() - 1000;
    await seed.saveState(epoch, "tick", { lastDueAt: pending - 60_000, pendingDueAt: pending, schedule: "<freq: 60 s>" });
    await seed.release(epoch);
    await seed.close();
    const lease = await createSqliteLease({ path, leaseMs: 2000 });
    const { sent, lines } = await runBeat(schedule, lease, 200);
    const state = await lease.loadState();
    await lease.close();
    expect(sent.map((s) => s.envelope.headers.id)).toEqual([beatTaskId("celery", "tick", pending)]);
    expect(lines.join("\n")).toMatch(/re-sending the run of "tick" due .* whose earlier send may not have completed/);
    expect(state["tick"]).toEqual({ lastDueAt: pending, schedule: "<freq: 60 s>" });
  });

  it("counts sent runs and leadership in Prometheus metrics", async () => {
    const lease = await createSqliteLease({ path: leaseFile(), leaseMs: 2000 });
    const schedule = defineSchedule({ entries: { sum: { task: add, schedule: every(100), args: [1, 2] } } });
    const { client } = recordingClient();
    const beat = createBeat({ schedule, client, lease, log: () => {} });
    const { registry } = await instrumentBeat(beat);
    const running = beat.run();
    await sleep(500);
    const text = await registry.metrics();
    await beat.stop();
    await running;
    await lease.close();
    expect(text).toMatch(/celeriac_beat_leader 1/);
    expect(Number(/celeriac_beat_sent_total\{entry="sum",task="tasks.add"\} (\d+)/.exec(text)?.[1])).toBeGreaterThanOrEqual(2);
    expect(await registry.metrics()).toMatch(/celeriac_beat_leader 0/);
  });
});

describe("SQLite lease", () => {
  it("gives one holder at a time, a larger epoch to each new holder, and fences the old one's writes", async () => {
    const path = leaseFile();
    const a = await createSqliteLease({ path, leaseMs: 1000, holder: "a" });
    const b = await createSqliteLease({ path, leaseMs: 1000, holder: "b" });
    const ea = await a.tryAcquire();
    expect(ea).toBe(1);
    expect(await b.tryAcquire()).toBeNull();
    expect(await a.saveState(ea!, "x", { lastDueAt: 1, schedule: "s" })).toBe(true);
    await sleep(1100); // a stops renewing: its lease expires
    const eb = await b.tryAcquire();
    expect(eb).toBe(2);
    expect(await a.saveState(ea!, "x", { lastDueAt: 2, schedule: "s" })).toBe(false);
    expect(await a.renew(ea!)).toBe(false);
    expect((await b.loadState())["x"]!.lastDueAt).toBe(1);
    await b.release(eb!);
    expect(await a.tryAcquire()).toBe(3);
    await a.close();
    await b.close();
  });
});
