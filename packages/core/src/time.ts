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

const TZ = /(Z|[+-]\d\d:?\d\d)$/i;

/**
 * Parses an ISO time from a Celery header. A naive time (no offset) is read as UTC, Celery's
 * default with `enable_utc`. Throws `decode_failed` for anything that is not a time.
 */
export function parseCeleryTime(value: string, field = "time"): Date {
  const text = TZ.test(value) ? value : `${value}Z`;
  const ms = Date.parse(text);
  if (Number.isNaN(ms)) throw new CeleriacError("decode_failed", `${field} ${JSON.stringify(value)} is not an ISO 8601 time`);
  return new Date(ms);
}
