/**
 * One JSON dialect for every value that leaves or enters a process outside a task message: result
 * metas in every result backend (file, SQLite, Redis, rpc), chord parts, and the CLI's arguments
 * and printed results. It is the dialect of task messages (`py-json.ts` with kombu 5.2's value
 * encoder), because Celery's result backends write results with the same `kombu.utils.json` as
 * messages: integers beyond 2**53 stay exact (`bigint`), `NaN`/`Infinity`/`-Infinity` are written
 * and read as Python's `json` does, Dates are written as kombu 5.2 writes datetimes.
 * See docs/json-dialect.md.
 */
import { kombuValueEncoder, reviveKombuTypes } from "./codec/celery-json.js";
import { pyParse, pyStringify } from "./codec/py-json.js";
import type { ResultMeta } from "./envelope.js";
import { CeleriacError } from "./errors.js";

const encodeSpecial = kombuValueEncoder("kombu52");

/**
 * `json.dumps` as kombu 5.2 writes a result or any other value: what Python's `json.loads` reads
 * back as the same value. Throws `CeleriacError("invalid_argument")` for values with no JSON form
 * (cycles, Map, Set, bytes, ...).
 */
export function stringifyCeleryJson(value: unknown): string {
  return pyStringify(value, { encodeSpecial });
}

/**
 * `json.loads` as kombu reads a result: exact big integers, NaN and ±Infinity. Throws
 * `CeleriacError("decode_failed")`.
 */
export function parseCeleryJson(text: string): unknown {
  return pyParse(text);
}

/**
 * Reads a stored result meta (`{"status", "result", ...}`) written by Celery or Celeriac. kombu
 * 5.3's typed values (`{"__type__": "datetime", ...}`) are unwrapped as in task messages. `where`
 * names the source in the error (e.g. "result file for <id>").
 */
export function parseResultMeta(text: string, where: string): ResultMeta {
  let v: unknown;
  try {
    v = pyParse(text);
    if (text.includes('"__type__"')) v = reviveKombuTypes(v, where);
  } catch (err) {
    throw new CeleriacError("decode_failed", `${where} is not a readable result: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
  }
  if (typeof v !== "object" || v === null || Array.isArray(v) || typeof (v as Record<string, unknown>)["status"] !== "string") {
    throw new CeleriacError("decode_failed", `${where} is not a Celery result meta (an object with a "status")`);
  }
  return v as ResultMeta;
}
