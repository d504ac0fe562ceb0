import { CeleriacError } from "@celeriac/core";

/**
 * Time-zone arithmetic on the runtime's own zone data (Intl, i.e. ICU's tzdata): no dependency,
 * nothing downloaded at run time. Celery does its crontab arithmetic on wall-clock fields
 * (pytz-aware datetimes add like naive ones), so everything here works on "wall" milliseconds:
 * the zone's local date and time encoded as if it were UTC.
 */
export interface Zone {
  readonly name: string;
  /** UTC offset in ms at this instant (local = utc + offset). */
  offsetMs(instantMs: number): number;
  /** Local wall time at this instant, as UTC-encoded ms. */
  toWall(instantMs: number): number;
}

const zones = new Map<string, Zone>();

/** The zone named by an IANA name ("Europe/London", "UTC"); an unknown name is an invalid_argument error. */
export function zoneOf(name: string): Zone {
  const cached = zones.get(name);
  if (cached) return cached;
  let format: Intl.DateTimeFormat;
  try {
    format = new Intl.DateTimeFormat("en-US", {
      timeZone: name,
      hourCycle: "h23",
      year: "numeric",
      month: "numeric",
      day: "numeric",
      hour: "numeric",
      minute: "numeric",
      second: "numeric",
      era: "short",
    });
  } catch {
    throw new CeleriacError("invalid_argument", `unknown timezone ${JSON.stringify(name)} (use an IANA name such as "Europe/London" or "UTC")`);
  }
  const utc = name.toUpperCase() === "UTC" || name === "Etc/UTC";
  const offsetMs = (instantMs: number): number => {
    if (utc) return 0;
    const whole = Math.floor(instantMs / 1000) * 1000;
    const f: Record<string, number> = {};
    let bc = false;
    for (const p of format.formatToParts(new Date(whole))) {
      if (p.type === "era") bc = p.value === "BC";
      else if (p.type !== "literal") f[p.type] = Number(p.value);
    }
    const year = bc ? 1 - (f["year"] ?? 0) : (f["year"] ?? 0);
    const wall = Date.UTC(year, (f["month"] ?? 1) - 1, f["day"] ?? 1, f["hour"] ?? 0, f["minute"] ?? 0, f["second"] ?? 0);
    return wall - whole;
  };
  const zone: Zone = { name, offsetMs, toWall: (instantMs) => instantMs + offsetMs(instantMs) };
  zones.set(name, zone);
  return zone;
}

/**
 * The first instant in (from, to] whose offset differs from the offset at `from`, or null when the
 * offset is the same at both ends (zones change at most twice a year, so one change is assumed).
 */
export function offsetChangeBetween(zone: Zone, fromMs: number, toMs: number): number | null {
  const before = zone.offsetMs(fromMs);
  if (zone.offsetMs(toMs) === before) return null;
  let lo = fromMs;
  let hi = toMs;
  while (hi - lo > 1000) {
    const mid = Math.floor((lo + hi) / 2000) * 1000;
    if (mid <= lo || mid >= hi) break;
    if (zone.offsetMs(mid) === before) lo = mid;
    else hi = mid;
  }
  return hi;
}
