import { CeleriacError } from "@celeriac/core";
import type { Zone } from "./zone.js";

/** Celery's `schedule(run_every, relative)`. */
export interface IntervalFields {
  /** The period, in ms (Celery's `run_every`). */
  everyMs: number;
  /**
   * Round each due time down to the period's resolution on the scheduler's wall clock (whole
   * days, hours, minutes or seconds), as Celery's `relative=True` does. Default false.
   */
  relative?: boolean;
}

const KNOWN = ["everyMs", "relative"];

/**
 * An interval schedule. Celery adds the period to the last run on the wall clock and, across a
 * DST change, relabels the start with the new offset, which delays the next run by an hour at a
 * fall-back; Celeriac adds elapsed time instead (documented in docs/beat.md).
 */
export class Interval {
  readonly kind = "interval";
  readonly everyMs: number;
  readonly relative: boolean;

  constructor(spec: IntervalFields) {
    if (spec === null || typeof spec !== "object") throw new CeleriacError("invalid_argument", "every: fields must be an object");
    const unknown = Object.keys(spec).filter((k) => !KNOWN.includes(k));
    if (unknown.length > 0)
      throw new CeleriacError(
        "invalid_argument",
        `every: unknown field ${unknown.map((k) => JSON.stringify(k)).join(", ")}; known fields are ${KNOWN.join(", ")}`,
      );
    if (typeof spec.everyMs !== "number" || !Number.isFinite(spec.everyMs) || spec.everyMs < 1) {
      throw new CeleriacError("invalid_argument", `every: everyMs must be a positive number of milliseconds, got ${JSON.stringify(spec.everyMs)}`);
    }
    if (spec.relative !== undefined && typeof spec.relative !== "boolean") throw new CeleriacError("invalid_argument", "every: relative must be a boolean");
    this.everyMs = spec.everyMs;
    this.relative = spec.relative ?? false;
  }

  nextAfter(afterMs: number, zone: Zone): number {
    const end = afterMs + this.everyMs;
    if (!this.relative) return end;
    // celery.utils.time.delta_resolution, then .replace(microsecond=0): truncate to days, hours,
    // minutes, or (below a minute) whole seconds.
    const unit = this.everyMs >= 86_400_000 ? 86_400_000 : this.everyMs >= 3_600_000 ? 3_600_000 : this.everyMs >= 60_000 ? 60_000 : 1000;
    const offset = zone.offsetMs(end);
    const wall = end + offset;
    return wall - (((wall % unit) + unit) % unit) - offset;
  }

  toString(): string {
    return `<freq: ${this.everyMs / 1000} s${this.relative ? ", relative" : ""}>`;
  }
}

/** `every(60_000)` or `every({ everyMs: 3_600_000, relative: true })`: Celery's `schedule(run_every)`. */
export function every(spec: number | IntervalFields): Interval {
  return new Interval(typeof spec === "number" ? { everyMs: spec } : spec);
}
