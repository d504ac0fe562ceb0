import { CeleriacError } from "./errors.js";

/**
 * ISO 8601 as Python's `datetime.isoformat()` writes an aware UTC time, which is what Celery
 * puts in `eta`/`expires`: microseconds (omitted when zero) and `+00:00` instead of `Z`.
 */
export function toCeleryIso(date: Date): string {
  const iso = date.toISOString(); // YYYY-MM-DDTHH:MM:SS.mmmZ
  const ms = date.getUTCMilliseconds();
  const base = iso.slice(0, 19);
  return ms === 0 ? `${base}+00:00` : `${base}.${String(ms).padStart(3, "0")}000+00:00`;
}

/** Celery's `date_done`: `datetime.utcnow().isoformat()`, naive UTC. */
export function toCeleryNaiveUtc(date: Date): string {
  const ms = date.getUTCMilliseconds();
  const base = date.toISOString().slice(0, 19);
  return ms === 0 ? base : `${base}.${String(ms).padStart(3, "0")}000`;
}

/**
 * The ISO 8601 forms Celery's worker reads (celery/utils/iso8601.py `ISO8601_REGEX`, used by
 * `maybe_iso8601` for `eta` and `expires`): a year, optionally month, day, then a time after `T`
 * or a space, seconds and fraction optional, then an optional offset. Unlike Celery's `match`
 * the whole text must fit: `Date.parse` (used before) took "abc 1" for a date in 2001.
 */
const ISO_8601 = /^(\d{4})(?:-(\d{1,2})(?:-(\d{1,2})(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:[.,](\d+))?)?(Z|[+-]\d{2}:?\d{2})?)?)?)?$/i;

/**
 * Parses an ISO time from a Celery header. A naive time (no offset) is read as UTC, Celery's
 * default with `enable_utc`. Throws `decode_failed` for anything that is not a time.
 */
export function parseCeleryTime(value: string, field = "time"): Date {
  const bad = (): never => {
    throw new CeleriacError("decode_failed", `${field} ${JSON.stringify(value.length > 64 ? `${value.slice(0, 64)}...` : value)} is not an ISO 8601 time`);
  };
  const m = typeof value === "string" ? ISO_8601.exec(value) : null;
  if (!m) return bad();
  const [, y, mo = "1", d = "1", h = "0", mi = "0", s = "0", frac = "", tz] = m;
  const fields = [Number(y), Number(mo), Number(d), Number(h), Number(mi), Number(s)] as const;
  const ms = Math.floor(Number(frac.slice(0, 3).padEnd(3, "0")));
  // setUTCFullYear rather than Date.UTC, which maps years 0..99 to 1900..1999.
  const date = new Date(0);
  date.setUTCFullYear(fields[0], fields[1] - 1, fields[2]);
  date.setUTCHours(fields[3], fields[4], fields[5], ms);
  // Out-of-range fields (month 13, day 32, hour 24) roll over in JS; Python refuses them.
  const exact =
    date.getUTCFullYear() === fields[0] &&
    date.getUTCMonth() === fields[1] - 1 &&
    date.getUTCDate() === fields[2] &&
    date.getUTCHours() === fields[3] &&
    date.getUTCMinutes() === fields[4] &&
    date.getUTCSeconds() === fields[5];
  if (!exact || fields[0] < 1) return bad();
  if (tz === undefined || tz.toUpperCase() === "Z") return date;
  const digits = tz.slice(1).replace(":", "");
  const offsetH = Number(digits.slice(0, 2));
  const offsetM = Number(digits.slice(2, 4));
  if (offsetH > 23 || offsetM > 59) return bad();
  return new Date(date.getTime() - (tz[0] === "-" ? -1 : 1) * (offsetH * 60 + offsetM) * 60_000);
}
