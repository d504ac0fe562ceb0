import { execFileSync } from "node:child_process";
import { describe, expect, it } from "vitest";
import { seededRandom } from "../../../test-support/prng.js";
import { PYTHON, PYTHON_DIR } from "../../../test-support/python.js";
import { crontab, every, zoneOf } from "../src/index.js";

// Crontab correctness against Celery itself: generated schedules (fixed seed), last-run and "now"
// times clustered on DST change days, answered by celery.schedules.crontab in one Python process.

interface Case {
  minute: string;
  hour: string;
  dow: string;
  dom: string;
  moy: string;
  tz: string;
  last: number;
  now: number;
  sim?: boolean;
}
interface Answer {
  end?: number;
  due?: boolean;
  next?: number;
  sim?: number;
  error?: string;
}

const ZONES = ["Europe/London", "America/New_York", "UTC", "Australia/Sydney", "Asia/Kolkata"];
// DST changes (UTC instants): London 2026-03-29 01:00Z / 2026-10-25 01:00Z; New York 2026-03-08
// 07:00Z / 2026-11-01 06:00Z; Sydney 2026-04-05 16:00Z / 2026-10-03 16:00Z.
const EDGES = [
  Date.UTC(2026, 2, 29, 1),
  Date.UTC(2026, 9, 25, 1),
  Date.UTC(2026, 2, 8, 7),
  Date.UTC(2026, 10, 1, 6),
  Date.UTC(2026, 3, 5, 16),
  Date.UTC(2026, 9, 3, 16),
  Date.UTC(2025, 11, 31, 23),
  Date.UTC(2028, 1, 28, 12),
];

function generate(count: number, seed: number): Case[] {
  const rnd = seededRandom(seed);
  const int = (lo: number, hi: number) => lo + Math.floor(rnd() * (hi - lo + 1));
  const pick = <T>(xs: readonly T[]): T => xs[int(0, xs.length - 1)]!;
  const field = (min: number, max: number, names?: readonly string[]): string => {
    const n = () => (names && rnd() < 0.3 ? pick(names) : String(int(min, max)));
    switch (int(0, 6)) {
      case 0:
        return "*";
      case 1:
        return `*/${int(1, Math.max(1, Math.floor((max - min) / 2)))}`;
      case 2:
        return n();
      case 3:
        return `${n()}-${n()}`;
      case 4:
        return `${int(min, max)}-${int(min, max)}/${int(1, 5)}`;
      case 5:
        return [n(), n(), n()].join(",");
      default:
        return `${n()},${int(min, max)}-${int(min, max)}`;
    }
  };
  const days = ["sun", "mon", "tue", "wed", "thu", "fri", "sat", "monday", "Friday"];
  const out: Case[] = [];
  for (let i = 0; i < count; i++) {
    const restricted = rnd() < 0.3;
    const c: Case = {
      minute: rnd() < 0.5 ? String(int(0, 59)) : field(0, 59),
      hour: rnd() < 0.4 ? field(0, 23) : rnd() < 0.5 ? "*" : String(pick([1, 2, 3, 0, 23])),
      dow: rnd() < 0.6 ? "*" : field(0, 6, days),
      dom: restricted ? field(1, 28) : "*",
      moy: restricted && rnd() < 0.5 ? field(1, 12) : "*",
      tz: pick(ZONES),
      last: 0,
      now: 0,
    };
    const base = rnd() < 0.75 ? pick(EDGES) : Date.UTC(2026, int(0, 11), int(1, 28), int(0, 23));
    c.last = base + int(-36, 12) * 3_600_000 + int(0, 59) * 60_000 + int(0, 59) * 1000;
    // Either "now" is the last run itself (what a beat computes right after sending) or later.
    c.now = rnd() < 0.4 ? c.last : c.last + int(0, 72 * 60) * 60_000 + int(0, 999);
    c.sim = i % 3 === 0;
    out.push(c);
  }
  return out;
}

function askCelery(cases: object[]): Answer[] {
  const out = execFileSync(PYTHON, ["crontab_oracle.py"], { cwd: PYTHON_DIR, input: JSON.stringify(cases), maxBuffer: 64 << 20, timeout: 120_000 });
  return JSON.parse(out.toString()) as Answer[];
}

describe("crontab against celery.schedules.crontab (Celery 5.2.6)", () => {
  it("gives the same next run as Celery for 400 generated schedules around DST changes", () => {
    const cases = generate(400, 0x5eed16);
    const answers = askCelery(cases);
    expect(answers).toHaveLength(cases.length);
    let compared = 0;
    let simulated = 0;
    let errors = 0;
    const mismatches: string[] = [];
    cases.forEach((c, i) => {
      const py = answers[i]!;
      const label = `case ${i} crontab(minute=${JSON.stringify(c.minute)}, hour=${JSON.stringify(c.hour)}, day_of_week=${JSON.stringify(c.dow)}, day_of_month=${JSON.stringify(c.dom)}, month_of_year=${JSON.stringify(c.moy)}) tz=${c.tz} last=${new Date(c.last).toISOString()} now=${new Date(c.now).toISOString()}`;
      let cron;
      try {
        cron = crontab({ minute: c.minute, hour: c.hour, dayOfWeek: c.dow, dayOfMonth: c.dom, monthOfYear: c.moy });
      } catch (err) {
        if (py.error === undefined) mismatches.push(`${label}: we refused (${(err as Error).message}), Celery accepted`);
        else errors++;
        return;
      }
      if (py.error !== undefined) {
        // Celery refuses some specs only when computing (an impossible date); so must we.
        let ours: unknown = null;
        try {
          ours = cron.celeryEstimate(c.last, c.now, zoneOf(c.tz));
        } catch {
          errors++;
          return;
        }
        mismatches.push(`${label}: Celery raised ${py.error}, we answered ${String(ours)}`);
        return;
      }
      const zone = zoneOf(c.tz);
      const end = cron.celeryEstimate(c.last, c.now, zone);
      compared++;
      if (end !== py.end) mismatches.push(`${label}: Celery ${new Date(py.end!).toISOString()}, ours ${new Date(end).toISOString()}`);
      if (end <= c.now !== py.due) mismatches.push(`${label}: is_due Celery ${String(py.due)}, ours ${String(end <= c.now)}`);
      if (py.due) {
        // is_due's second value: the time from now to the run after this one.
        const after = Math.max(cron.celeryEstimate(c.now, c.now, zone) - c.now, 0);
        if (after !== py.next) mismatches.push(`${label}: is_due next Celery ${py.next}, ours ${after}`);
      }
      if (c.sim && py.sim !== undefined) {
        // A beat checking at least every 300 s (Celery's default max interval) finds the run due at
        // py.sim: ours must be the continuous-check limit of that, within the 300 s before.
        simulated++;
        const next = cron.nextAfter(c.last, zone);
        if (!(next <= py.sim && next > py.sim - 300_000) && !(c.last >= next)) {
          mismatches.push(
            `${label}: a beat running Celery's crontab first finds it due at ${new Date(py.sim).toISOString()}, our nextAfter says ${new Date(next).toISOString()}`,
          );
        }
      }
    });
    expect(mismatches).toEqual([]);
    expect(compared).toBeGreaterThan(350);
    expect(simulated).toBeGreaterThan(100);
    expect(errors).toBeLessThan(30);
  });

  it("fires a 02:30 job once at the spring-forward change and a 01:30 job once on the fall-back day (America/New_York)", () => {
    const ny = zoneOf("America/New_York");
    const c0230 = crontab({ minute: 30, hour: 2 });
    // 2026-03-07 02:30 EST = 07:30Z; 2026-03-08 02:30 does not exist: Celery's beat finds it due at 03:00 EDT = 07:00Z.
    expect(new Date(c0230.nextAfter(Date.UTC(2026, 2, 7, 7, 30), ny)).toISOString()).toBe("2026-03-08T07:00:00.000Z");
    expect(new Date(c0230.nextAfter(Date.UTC(2026, 2, 8, 7, 0), ny)).toISOString()).toBe("2026-03-09T06:30:00.000Z");
    const c0130 = crontab({ minute: 30, hour: 1 });
    // 2026-11-01 01:30 happens twice; Celery runs it in the first pass (EDT, 05:30Z) only.
    expect(new Date(c0130.nextAfter(Date.UTC(2026, 9, 31, 5, 30), ny)).toISOString()).toBe("2026-11-01T05:30:00.000Z");
    expect(new Date(c0130.nextAfter(Date.UTC(2026, 10, 1, 5, 30), ny)).toISOString()).toBe("2026-11-02T06:30:00.000Z");
  });

  it("gives the same next run as Celery's schedule(run_every, relative) for 200 generated intervals", () => {
    const rnd = seededRandom(0x16);
    const int = (a: number, b: number) => a + Math.floor(rnd() * (b - a + 1));
    const periods = [1000, 5000, 30_000, 60_000, 90_000, 300_000, 3_600_000, 5_400_000, 86_400_000, 2 * 86_400_000];
    // Away from DST changes: there Celery relabels the start with the new offset, which Celeriac
    // deliberately does not (docs/beat.md, "Intervals").
    const cases = Array.from({ length: 200 }, () => {
      const last = Date.UTC(2026, int(0, 1) === 0 ? 0 : 6, int(2, 20), int(0, 23), int(0, 59), int(0, 59), int(0, 999));
      return {
        every: periods[int(0, periods.length - 1)]!,
        relative: rnd() < 0.6,
        tz: ["UTC", "Europe/London", "America/New_York", "Asia/Kolkata"][int(0, 3)]!,
        last,
        now: last + int(0, 3_600_000),
      };
    });
    const answers = askCelery(cases);
    const mismatches = cases.flatMap((c, i) => {
      const ours = every({ everyMs: c.every, relative: c.relative }).nextAfter(c.last, zoneOf(c.tz));
      return ours === answers[i]!.end ? [] : [`${JSON.stringify(c)}: Celery ${new Date(answers[i]!.end!).toISOString()}, ours ${new Date(ours).toISOString()}`];
    });
    expect(mismatches).toEqual([]);
  });

  it("always moves forward: nextAfter(t) > t for 5000 generated crontabs in DST zones", () => {
    const rnd = seededRandom(7);
    const int = (a: number, b: number) => a + Math.floor(rnd() * (b - a + 1));
    const zones = ["America/New_York", "Europe/London", "Australia/Sydney", "America/Los_Angeles", "Pacific/Auckland"].map((z) => zoneOf(z));
    const stuck: string[] = [];
    for (let i = 0; i < 5000; i++) {
      const spec = {
        minute: String(int(0, 59)),
        hour: rnd() < 0.5 ? "*" : `${int(0, 23)}`,
        dayOfMonth: rnd() < 0.3 ? `${int(1, 28)}` : "*",
        dayOfWeek: rnd() < 0.3 ? `${int(0, 6)}` : "*",
      };
      const cron = crontab(spec);
      const zone = zones[int(0, zones.length - 1)]!;
      let t = Date.UTC(2026, int(0, 11), int(1, 28), int(0, 23), int(0, 59));
      for (let k = 0; k < 5; k++) {
        const next = cron.nextAfter(t, zone);
        if (next <= t) stuck.push(`${JSON.stringify(spec)} ${zone.name} ${new Date(t).toISOString()} -> ${new Date(next).toISOString()}`);
        t = Math.max(next, t + 60_000);
      }
    }
    expect(stuck).toEqual([]);
  });

  it("parses Celery's syntax and refuses what Celery refuses", () => {
    expect(crontab({ minute: "*/15" }).minute).toEqual([0, 15, 30, 45]);
    expect(crontab({ hour: "0,8-17/2" }).hour).toEqual([0, 8, 10, 12, 14, 16]);
    expect(crontab({ dayOfWeek: "mon-fri" }).dayOfWeek).toEqual([1, 2, 3, 4, 5]);
    expect(crontab({ dayOfWeek: "fri-mon" }).dayOfWeek).toEqual([0, 1, 5, 6]);
    expect(crontab({ dayOfMonth: "*/3" }).dayOfMonth).toEqual([1, 4, 7, 10, 13, 16, 19, 22, 25, 28, 31]);
    expect(crontab({ monthOfYear: "2-12/2" }).monthOfYear).toEqual([2, 4, 6, 8, 10, 12]);
    expect(crontab({ minute: [0, 30] }).minute).toEqual([0, 30]);
    expect(() => crontab({ dayOfWeek: 7 })).toThrow(/dayOfWeek=7: 7 is outside 0-6/);
    expect(() => crontab({ dayOfWeek: "7" })).toThrow(/above the maximum 6/);
    expect(() => crontab({ minute: "60" })).toThrow(/crontab minute="60"/);
    expect(() => crontab({ minute: "*/0" })).toThrow(/invalid step/);
    expect(() => crontab({ minute: "1,,2" })).toThrow(/empty part/);
    expect(() => crontab({ hour: "noon" })).toThrow(/invalid number or weekday "noon"/);
    expect(() => crontab({ dayOfMonth: "0" })).toThrow(/below the minimum 1/);
    expect(() => crontab({ minutes: "5" } as never)).toThrow(/unknown field "minutes"/);
  });
});
