import { CeleriacError, type TaskDefinition } from "@celeriac/core";
import { Crontab, type CronField, type CrontabFields } from "./crontab.js";
import { Interval } from "./interval.js";
import { zoneOf, type Zone } from "./zone.js";

/** What a beat does with due times that passed while no replica was leading. */
export type MissedPolicy =
  /** Celery's behaviour: send one run, for the latest missed due time, late; count the others as missed. */
  | "once"
  /** Send every missed due time, oldest first, each with its own task id (at most 1000 per entry and catch-up). */
  | "all"
  /** Send nothing that is later than `graceMs` after its due time; count it as missed. */
  | "skip";

/** Celery's entry `options`: what apply_async gets. */
export interface EntrySendOptions {
  queue?: string;
  routingKey?: string;
  /** 0..9, higher is more urgent. */
  priority?: number;
  /** Revoke a run not started within this long after it was sent (Celery's `expires`, in ms). */
  expiresMs?: number;
  /** Extra message headers. */
  headers?: Record<string, unknown>;
}

type AnyTask = TaskDefinition<any, any, any>; // eslint-disable-line @typescript-eslint/no-explicit-any
type ArgsFor<T> = T extends TaskDefinition<infer A, infer _R, infer _K> ? A : unknown[];
type KwargsFor<T> = T extends TaskDefinition<infer _A, infer _R, infer K> ? K : Record<string, unknown>;

/** One entry of a schedule, Celery's `beat_schedule` keys. `T` is the task's definition (or a name). */
export interface ScheduleEntry<T extends AnyTask | string = AnyTask | string> {
  /** A task definition (`defineTask`, or a schema handle), or a registered task name. */
  task: T;
  schedule: Crontab | Interval;
  args?: ArgsFor<T>;
  kwargs?: KwargsFor<T>;
  options?: EntrySendOptions;
  /** Default "once", as Celery. */
  missed?: MissedPolicy;
  /** With `missed: "skip"`: how late a run may still be sent. Default 60 s. */
  graceMs?: number;
}

export interface ScheduleSpec<E extends Record<string, AnyTask | string>> {
  /** IANA zone the crontabs are read in (Celery's `timezone`). Default: UTC. */
  timezone?: string;
  /**
   * Celery's `enable_utc`, which only matters with no `timezone`: true (default) reads crontabs
   * in UTC, false in the machine's local zone.
   */
  enableUtc?: boolean;
  entries: { [K in keyof E]: ScheduleEntry<E[K]> };
}

/** A validated schedule: the zone resolved, every entry checked. */
export interface BeatSchedule {
  readonly timezone: string;
  readonly zone: Zone;
  readonly entries: readonly ResolvedEntry[];
}

export interface ResolvedEntry {
  readonly name: string;
  readonly taskName: string;
  readonly schedule: Crontab | Interval;
  readonly args: readonly unknown[];
  readonly kwargs: Readonly<Record<string, unknown>>;
  readonly options: Readonly<EntrySendOptions>;
  readonly missed: MissedPolicy;
  readonly graceMs: number;
}

const SPEC_KEYS = ["timezone", "enableUtc", "entries"];
const ENTRY_KEYS = ["task", "schedule", "args", "kwargs", "options", "missed", "graceMs"];
const OPTION_KEYS = ["queue", "routingKey", "priority", "expiresMs", "headers"];

const invalid = (message: string) => new CeleriacError("invalid_argument", message);

function unknownKeys(where: string, value: object, known: readonly string[]): void {
  const unknown = Object.keys(value).filter((k) => !known.includes(k));
  if (unknown.length > 0)
    throw invalid(
      `${where}: unknown key${unknown.length > 1 ? "s" : ""} ${unknown.map((k) => JSON.stringify(k)).join(", ")}; known keys are ${known.join(", ")}`,
    );
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v);
/** By shape, not instanceof: a schedule module may load its own copy of this package. */
const isSchedule = (v: unknown): v is Crontab | Interval =>
  isObject(v) && (v["kind"] === "crontab" || v["kind"] === "interval") && typeof v["nextAfter"] === "function";

/**
 * The typed form: entries are checked against their task definitions (`args` and `kwargs` must
 * fit the task's types), and everything is validated at once, so a mistake fails at startup
 * with the entry's name rather than at its first run.
 */
export function defineSchedule<E extends Record<string, AnyTask | string>>(spec: ScheduleSpec<E>): BeatSchedule {
  return resolveSchedule(spec);
}

function resolveSchedule(spec: unknown): BeatSchedule {
  if (!isObject(spec)) throw invalid("schedule: expected an object with entries");
  unknownKeys("schedule", spec, SPEC_KEYS);
  if (spec["timezone"] !== undefined && typeof spec["timezone"] !== "string") throw invalid("schedule: timezone must be an IANA zone name");
  if (spec["enableUtc"] !== undefined && typeof spec["enableUtc"] !== "boolean") throw invalid("schedule: enableUtc must be a boolean");
  const timezone = (spec["timezone"] as string | undefined) ?? (spec["enableUtc"] === false ? Intl.DateTimeFormat().resolvedOptions().timeZone : "UTC");
  let zone: Zone;
  try {
    zone = zoneOf(timezone);
  } catch (err) {
    throw invalid(`schedule: ${(err as Error).message}`);
  }
  const entries = spec["entries"];
  if (!isObject(entries) || Object.keys(entries).length === 0) throw invalid("schedule: entries must be an object with at least one entry");
  const resolved = Object.entries(entries).map(([name, entry]) => {
    try {
      return resolveEntry(name, entry);
    } catch (err) {
      throw invalid(`schedule entry ${JSON.stringify(name)}: ${(err as Error).message}`);
    }
  });
  return { timezone, zone, entries: resolved };
}

function resolveEntry(name: string, entry: unknown): ResolvedEntry {
  if (!isObject(entry)) throw invalid("must be an object with task and schedule");
  unknownKeys("entry", entry, ENTRY_KEYS);
  const task = entry["task"];
  let taskName: string;
  let kwargs = entry["kwargs"] ?? {};
  if (typeof task === "string" && task.trim() !== "") taskName = task;
  else if (isObject(task) && typeof task["name"] === "string" && task["name"] !== "") {
    taskName = task["name"];
    // A schema handle validates and converts its request now, not at the first run.
    const encode = task["encodeRequest"];
    if (typeof encode === "function") kwargs = (encode as (r: unknown) => Record<string, unknown>).call(task, kwargs);
  } else throw invalid("names no task (task must be a task name or a task definition)");
  const schedule = entry["schedule"];
  if (!isSchedule(schedule)) throw invalid("schedule must be crontab(...) or every(...)");
  const args = entry["args"] ?? [];
  if (!Array.isArray(args)) throw invalid("args must be an array");
  if (!isObject(kwargs)) throw invalid("kwargs must be an object");
  const options = entry["options"] ?? {};
  if (!isObject(options)) throw invalid("options must be an object");
  unknownKeys("options", options, OPTION_KEYS);
  if (options["queue"] !== undefined && (typeof options["queue"] !== "string" || options["queue"] === "")) throw invalid("options.queue must be a queue name");
  if (options["routingKey"] !== undefined && typeof options["routingKey"] !== "string") throw invalid("options.routingKey must be a string");
  const priority = options["priority"];
  if (priority !== undefined && (!Number.isInteger(priority) || (priority as number) < 0 || (priority as number) > 9))
    throw invalid("options.priority must be an integer 0..9");
  const expiresMs = options["expiresMs"];
  if (expiresMs !== undefined && (typeof expiresMs !== "number" || !(expiresMs > 0))) throw invalid("options.expiresMs must be a positive number of ms");
  if (options["headers"] !== undefined && !isObject(options["headers"])) throw invalid("options.headers must be an object");
  const missed = entry["missed"] ?? "once";
  if (missed !== "once" && missed !== "all" && missed !== "skip") throw invalid(`missed must be "once", "all" or "skip", got ${JSON.stringify(missed)}`);
  const graceMs = entry["graceMs"] ?? 60_000;
  if (typeof graceMs !== "number" || !(graceMs >= 0)) throw invalid("graceMs must be a number of ms >= 0");
  return { name, taskName, schedule, args, kwargs, options: options as EntrySendOptions, missed, graceMs };
}

/** Celery's crontab keys, as `beat_schedule` in a Python config spells them. */
const JSON_CRONTAB_KEYS: Record<string, keyof CrontabFields> = {
  minute: "minute",
  hour: "hour",
  day_of_week: "dayOfWeek",
  day_of_month: "dayOfMonth",
  month_of_year: "monthOfYear",
};

/**
 * The plain JSON form, for people who configure rather than code. Celery's names and units:
 *
 * ```json
 * { "timezone": "Europe/London",
 *   "entries": {
 *     "report": { "task": "tasks.report", "schedule": { "crontab": { "minute": 30, "hour": 7, "day_of_week": "mon-fri" } } },
 *     "ping":   { "task": "tasks.ping", "schedule": 10, "options": { "queue": "fast", "expires": 5 } } } }
 * ```
 *
 * `schedule` is a number of seconds, `{ "every": seconds, "relative": bool }` or `{ "crontab": {...} }`;
 * `options.expires` is in seconds; `enable_utc` may stand for `enableUtc`.
 */
export function scheduleFromJson(json: unknown): BeatSchedule {
  if (!isObject(json)) throw invalid("schedule: expected a JSON object with entries");
  const { enable_utc, entries, ...rest } = json;
  if (!isObject(entries)) throw invalid("schedule: entries must be an object with at least one entry");
  const converted: Record<string, unknown> = {};
  for (const [name, raw] of Object.entries(entries)) {
    try {
      converted[name] = entryFromJson(raw);
    } catch (err) {
      throw invalid(`schedule entry ${JSON.stringify(name)}: ${(err as Error).message}`);
    }
  }
  return resolveSchedule({ ...rest, ...(enable_utc !== undefined ? { enableUtc: enable_utc } : {}), entries: converted });
}

function entryFromJson(raw: unknown): unknown {
  if (!isObject(raw)) return raw;
  const out: Record<string, unknown> = { ...raw };
  const s = raw["schedule"];
  if (typeof s === "number") out["schedule"] = new Interval({ everyMs: s * 1000 });
  else if (isObject(s) && "every" in s) {
    unknownKeys("schedule", s, ["every", "relative"]);
    if (typeof s["every"] !== "number") throw invalid("schedule.every must be a number of seconds");
    out["schedule"] = new Interval({ everyMs: s["every"] * 1000, ...(s["relative"] !== undefined ? { relative: s["relative"] as boolean } : {}) });
  } else if (isObject(s) && "crontab" in s) {
    unknownKeys("schedule", s, ["crontab"]);
    const c = s["crontab"];
    if (!isObject(c)) throw invalid("schedule.crontab must be an object");
    unknownKeys("crontab", c, Object.keys(JSON_CRONTAB_KEYS));
    const fields: CrontabFields = {};
    for (const [k, v] of Object.entries(c)) fields[JSON_CRONTAB_KEYS[k]!] = v as CronField;
    out["schedule"] = new Crontab(fields);
  } else if (s !== undefined) throw invalid('schedule must be a number of seconds, {"every": seconds} or {"crontab": {...}}');
  if (isObject(raw["options"])) {
    const { expires, ...options } = raw["options"];
    if (expires !== undefined) {
      if (typeof expires !== "number") throw invalid("options.expires must be a number of seconds");
      (options as Record<string, unknown>)["expiresMs"] = expires * 1000;
    }
    if ("expiresMs" in raw["options"]) throw invalid('options: the JSON form spells it "expires" (seconds)');
    out["options"] = options;
  }
  if ("grace" in raw) {
    if (typeof raw["grace"] !== "number") throw invalid("grace must be a number of seconds");
    out["graceMs"] = raw["grace"] * 1000;
    delete out["grace"];
  }
  return out;
}

/** A schedule object from a module's default export or a JSON value: already resolved, typed spec, or JSON form. */
export function toBeatSchedule(value: unknown): BeatSchedule {
  if (isObject(value) && value["zone"] !== undefined && Array.isArray(value["entries"])) return value as unknown as BeatSchedule;
  if (isObject(value) && isObject(value["entries"])) {
    const anyJson = Object.values(value["entries"]).some((e) => isObject(e) && !isSchedule(e["schedule"]));
    return anyJson ? scheduleFromJson(value) : resolveSchedule(value);
  }
  throw invalid("schedule: expected defineSchedule(...)'s result, or an object with entries");
}
