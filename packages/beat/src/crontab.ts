import { CeleriacError } from "@celeriac/core";
import { offsetChangeBetween, type Zone } from "./zone.js";

/** One crontab field as Celery accepts it: a number, a list of numbers, or a pattern string. */
export type CronField = string | number | readonly number[];

/** Celery's `crontab(minute, hour, day_of_week, day_of_month, month_of_year)`; each field defaults to "*". */
export interface CrontabFields {
  minute?: CronField;
  hour?: CronField;
  /** 0-6, Sunday = 0 (7 is refused, as in Celery); day names ("mon", "monday", "mon-fri") work too. */
  dayOfWeek?: CronField;
  dayOfMonth?: CronField;
  monthOfYear?: CronField;
}

const FIELD_KEYS = ["minute", "hour", "dayOfWeek", "dayOfMonth", "monthOfYear"] as const;
const WEEKDAYS = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"];
const DAY_MS = 86_400_000;

/** Thrown text names the field and the spec so a schedule file's error points at the culprit. */
function fieldError(field: string, spec: unknown, why: string): CeleriacError {
  return new CeleriacError("invalid_argument", `crontab ${field}=${JSON.stringify(spec)}: ${why}`);
}

/**
 * celery.schedules.crontab_parser: `*`, `*\/step`, `a-b`, `a-b/step` (a range with b < a wraps
 * around), numbers and weekday names (the first three letters, in any field, as in Celery),
 * comma-separated. Celery ignores trailing garbage after some patterns ("1-5/2/3"); we refuse it.
 */
export function parseCronField(field: string, spec: string, max: number, min: number): Set<number> {
  const number = (s: string): number => {
    let n: number;
    if (/^\d+$/.test(s)) n = Number(s);
    else {
      n = WEEKDAYS.indexOf(s.slice(0, 3).toLowerCase());
      if (n < 0 || !/^[A-Za-z]+$/.test(s)) throw fieldError(field, spec, `invalid number or weekday ${JSON.stringify(s)}`);
    }
    if (n > min + max - 1) throw fieldError(field, spec, `${n} is above the maximum ${min + max - 1}`);
    if (n < min) throw fieldError(field, spec, `${n} is below the minimum ${min}`);
    return n;
  };
  const range = (from: string, to?: string): number[] => {
    const a = number(from);
    if (to === undefined) return [a];
    const b = number(to);
    const out: number[] = [];
    if (b < a) {
      for (let i = a; i < min + max; i++) out.push(i);
      for (let i = min; i <= b; i++) out.push(i);
    } else for (let i = a; i <= b; i++) out.push(i);
    return out;
  };
  const step = (s: string): number => {
    if (!/^\d+$/.test(s) || Number(s) === 0) throw fieldError(field, spec, `invalid step ${JSON.stringify(s)}`);
    return Number(s);
  };
  const every = (values: number[], n: number) => values.filter((_, i) => i % n === 0);
  const acc = new Set<number>();
  for (const part of spec.split(",")) {
    if (part === "") throw fieldError(field, spec, "empty part");
    let values: number[];
    let m: RegExpMatchArray | null;
    if ((m = /^(\w+?)-(\w+)\/(\w*)$/.exec(part))) values = every(range(m[1]!, m[2]!), step(m[3]!));
    else if ((m = /^(\w+?)-(\w+)$/.exec(part))) values = range(m[1]!, m[2]!);
    else if ((m = /^\*\/(\w*)$/.exec(part))) values = every(range(String(min), String(min + max - 1)), step(m[1]!));
    else if (part === "*") values = range(String(min), String(min + max - 1));
    else values = range(part);
    for (const v of values) acc.add(v);
  }
  return acc;
}

function expand(field: string, spec: CronField | undefined, max: number, min: number): number[] {
  let set: Set<number>;
  if (spec === undefined) set = parseCronField(field, "*", max, min);
  else if (typeof spec === "string") set = parseCronField(field, spec, max, min);
  else if (typeof spec === "number") set = new Set([spec]);
  else if (Array.isArray(spec)) set = new Set(spec as number[]);
  else throw fieldError(field, spec, "must be a string, a number or an array of numbers");
  if (set.size === 0) throw fieldError(field, spec, "matches nothing");
  for (const n of set) {
    if (!Number.isInteger(n) || n < min || n >= max + min) throw fieldError(field, spec, `${String(n)} is outside ${min}-${max - 1 + min}`);
  }
  return [...set].sort((a, b) => a - b);
}

/** Wall-clock fields of a UTC-encoded wall time. */
function fields(wall: number) {
  const d = new Date(wall);
  return { year: d.getUTCFullYear(), month: d.getUTCMonth() + 1, day: d.getUTCDate(), hour: d.getUTCHours(), minute: d.getUTCMinutes(), dow: d.getUTCDay() };
}
const daysInMonth = (year: number, month: number) => new Date(Date.UTC(year, month, 0)).getUTCDate();
const wallOf = (year: number, month: number, day: number, hour: number, minute: number) => {
  const d = new Date(0);
  d.setUTCFullYear(year, month - 1, day);
  d.setUTCHours(hour, minute, 0, 0);
  return d.getTime();
};

/**
 * A crontab schedule with Celery 5.2.6's meaning, field for field (celery/schedules.py). Celery
 * computes the next run on the local wall clock of the app's timezone and gives the result the UTC
 * offset in force at "now"; `celeryEstimate` is that computation exactly, `nextAfter` what a beat
 * that checks continuously makes of it across a DST change (see docs/beat.md).
 */
export class Crontab {
  readonly kind = "crontab";
  readonly minute: readonly number[];
  readonly hour: readonly number[];
  readonly dayOfWeek: readonly number[];
  readonly dayOfMonth: readonly number[];
  readonly monthOfYear: readonly number[];
  /** Celery takes its weekday shortcut only when both fields were left as the string "*". */
  private readonly allDomMoy: boolean;
  readonly fields: Readonly<CrontabFields>;

  constructor(spec: CrontabFields = {}) {
    if (spec === null || typeof spec !== "object") throw new CeleriacError("invalid_argument", "crontab: fields must be an object");
    const unknown = Object.keys(spec).filter((k) => !(FIELD_KEYS as readonly string[]).includes(k));
    if (unknown.length > 0)
      throw new CeleriacError(
        "invalid_argument",
        `crontab: unknown field ${unknown.map((k) => JSON.stringify(k)).join(", ")}; known fields are ${FIELD_KEYS.join(", ")}`,
      );
    this.fields = { ...spec };
    this.minute = expand("minute", spec.minute, 60, 0);
    this.hour = expand("hour", spec.hour, 24, 0);
    this.dayOfWeek = expand("dayOfWeek", spec.dayOfWeek, 7, 0);
    this.dayOfMonth = expand("dayOfMonth", spec.dayOfMonth, 31, 1);
    this.monthOfYear = expand("monthOfYear", spec.monthOfYear, 12, 1);
    const star = (v: CronField | undefined) => v === undefined || v === "*";
    this.allDomMoy = star(spec.dayOfMonth) && star(spec.monthOfYear);
  }

  /**
   * Celery's `crontab.remaining_estimate(last_run_at)` with `nowfun` returning `now`, as the
   * instant (ms) it points at: now + remaining. May lie in the past (then the entry is due).
   */
  celeryEstimate(lastRunAtMs: number, nowMs: number, zone: Zone): number {
    const last = fields(zone.toWall(lastRunAtMs));
    const now = fields(zone.toWall(nowMs));
    const maxMinute = this.minute[this.minute.length - 1]!;
    const maxHour = this.hour[this.hour.length - 1]!;
    const executeThisDate = this.monthOfYear.includes(last.month) && this.dayOfMonth.includes(last.day) && this.dayOfWeek.includes(last.dow);
    const executeThisHour =
      executeThisDate && last.day === now.day && last.month === now.month && last.year === now.year && this.hour.includes(last.hour) && last.minute < maxMinute;
    let wall: number;
    if (executeThisHour) {
      wall = wallOf(
        last.year,
        last.month,
        last.day,
        last.hour,
        this.minute.find((m) => m > last.minute)!,
      );
    } else {
      const nextMinute = this.minute[0]!;
      if (executeThisDate && last.hour < maxHour) {
        wall = wallOf(
          last.year,
          last.month,
          last.day,
          this.hour.find((h) => h > last.hour)!,
          nextMinute,
        );
      } else {
        const nextHour = this.hour[0]!;
        if (this.allDomMoy) {
          const nextDay = this.dayOfWeek.find((d) => d > last.dow) ?? this.dayOfWeek[0]!;
          const addWeek = nextDay === last.dow;
          // ffwd(weekday=(next_day - 1) % 7): Python weekdays count from Monday = 0.
          const target = (nextDay + 6) % 7;
          const base = wallOf(last.year, last.month, last.day, nextHour, nextMinute);
          const pyWeekday = (new Date(base).getUTCDay() + 6) % 7;
          wall = base + ((7 - pyWeekday + target) % 7) * DAY_MS + (addWeek ? 7 * DAY_MS : 0);
        } else {
          wall = this.deltaToNext(last, lastRunAtMs, nextHour, nextMinute);
        }
      }
    }
    // celery.utils.time.remaining: when the offset at `now` differs from the last run's, the
    // start is relabelled with now's offset, so the wall result always carries now's offset.
    return wall - zone.offsetMs(nowMs);
  }

  /** Celery's `_delta_to_next`, used when day_of_month or month_of_year is restricted. */
  private deltaToNext(last: ReturnType<typeof fields>, lastRunAtMs: number, nextHour: number, nextMinute: number): number {
    const doms = this.dayOfMonth;
    const moys = this.monthOfYear;
    let year = last.year;
    let dom: number;
    let moy: number;
    const bisectRight = (a: readonly number[], x: number) => a.filter((v) => v <= x).length;
    const bisectLeft = (a: readonly number[], x: number) => a.filter((v) => v < x).length;
    if (moys.includes(last.month)) {
      dom = bisectRight(doms, last.day);
      moy = bisectLeft(moys, last.month);
    } else {
      dom = 0;
      moy = bisectRight(moys, last.month);
      if (moy === moys.length) moy = 0;
    }
    // Celery's is_before_last_run reads the naive date as UTC midnight and compares it with the
    // last run instant; kept as is so that both pick the same day.
    const rollOver = () => {
      for (let i = 0; i < 2000; i++) {
        const flag = dom === doms.length || doms[dom]! > daysInMonth(year, moys[moy]!) || wallOf(year, moys[moy]!, doms[dom]!, 0, 0) < lastRunAtMs;
        if (!flag) return;
        dom = 0;
        moy += 1;
        if (moy === moys.length) {
          moy = 0;
          year += 1;
        }
      }
      throw new CeleriacError("invalid_argument", `crontab ${this.toString()} never matches a date`);
    };
    rollOver();
    for (;;) {
      if (this.dayOfWeek.includes(new Date(wallOf(year, moys[moy]!, doms[dom]!, 0, 0)).getUTCDay())) break;
      dom += 1;
      rollOver();
    }
    return wallOf(year, moys[moy]!, doms[dom]!, nextHour, nextMinute);
  }

  /**
   * The due instant of the run after one due (or last run) at `afterMs`. This is Celery's
   * estimate as a beat that checks continuously sees it: on a DST change between the two, the
   * estimate moves with the offset, so a run in the skipped hour fires at the change, and a run
   * in the repeated hour fires once, in the first pass.
   */
  nextAfter(afterMs: number, zone: Zone): number {
    const first = this.celeryEstimate(afterMs, afterMs, zone);
    const change = offsetChangeBetween(zone, afterMs, Math.max(first, afterMs));
    if (change === null) return first;
    const moved = this.celeryEstimate(afterMs, change, zone);
    return Math.max(moved, change);
  }

  toString(): string {
    const f = (v: CronField | undefined) => (v === undefined ? "*" : Array.isArray(v) ? v.join(",") : String(v));
    return `<crontab: ${f(this.fields.minute)} ${f(this.fields.hour)} ${f(this.fields.dayOfWeek)} ${f(this.fields.dayOfMonth)} ${f(this.fields.monthOfYear)} (m/h/d/dM/MY)>`;
  }
}

/** Celery's `crontab(...)`: `crontab({ minute: "*\/15" })`, `crontab({ hour: 7, minute: 30, dayOfWeek: "mon-fri" })`. */
export function crontab(fields: CrontabFields = {}): Crontab {
  return new Crontab(fields);
}
