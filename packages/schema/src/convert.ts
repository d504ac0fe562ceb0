import { CeleriacError } from "@celeriac/core";
import { pyIsoformat } from "@celeriac/core/transport";
import { INT32_TYPES, INT64_TYPES, UNSIGNED_TYPES, describeType, type FieldModel, type ScalarType, type SchemaModel } from "./model.js";

/**
 * A value failed its schema: a producer's kwargs before sending, a message a worker received, a
 * handler's result or a stored result. `issues` lists every problem as `path: what`.
 */
export class SchemaValidationError extends CeleriacError {
  override readonly name = "SchemaValidationError";
  readonly issues: readonly string[];
  /** What a worker stores as Celery's `exc_message`. */
  readonly excArgs: unknown[];

  constructor(subject: string, issues: string[]) {
    super("invalid_argument", `${subject}: ${issues.join("; ")}`);
    this.issues = issues;
    this.excArgs = [this.message];
  }
}

/**
 * Direction of a conversion. `toWire`: TypeScript values (bigint, Date, Uint8Array) to what
 * travels in Celery JSON and Python reads (digits, ISO 8601 text, base64 text). `fromWire`: the
 * reverse, from decoded JSON (where integers within 2^53 are numbers and beyond are bigints).
 */
export type Direction = "toWire" | "fromWire";

export interface ConvertOptions {
  /** Drop fields the schema does not know instead of reporting them (results: newer workers may add fields). */
  ignoreUnknown?: boolean;
}

const INT32_MIN = -(2 ** 31);
const INT32_MAX = 2 ** 31 - 1;
const UINT32_MAX = 2 ** 32 - 1;
const INT64_MIN = -(2n ** 63n);
const INT64_MAX = 2n ** 63n - 1n;
const UINT64_MAX = 2n ** 64n - 1n;
const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;
// What Python's datetime.isoformat() and kombu write: date, time, optional fraction and offset.
const ISO = /^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d{1,9})?)?(?:Z|[+-]\d{2}:?\d{2})?$/;

function show(v: unknown): string {
  if (typeof v === "bigint") return `${v}n`;
  if (typeof v === "string") return JSON.stringify(v.length > 40 ? `${v.slice(0, 40)}...` : v);
  if (v === null) return "null";
  if (Array.isArray(v)) return "an array";
  if (v instanceof Date) return "a Date";
  if (v instanceof Uint8Array) return "a Uint8Array";
  if (typeof v === "object") return "an object";
  return `${typeof v} ${String(v)}`;
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  if (typeof v !== "object" || v === null || Array.isArray(v)) return false;
  const proto = Object.getPrototypeOf(v) as unknown;
  return proto === Object.prototype || proto === null;
}

/** Converts and validates one message-shaped value; problems are pushed onto `issues`. */
export function convertMessage(
  schema: SchemaModel,
  typeName: string,
  value: unknown,
  direction: Direction,
  issues: string[],
  path = "",
  options: ConvertOptions = {},
): Record<string, unknown> {
  const message = schema.messages[typeName];
  if (!message) throw new CeleriacError("internal", `schema has no message ${typeName}`);
  const out: Record<string, unknown> = {};
  const at = (name: string) => (path ? `${path}.${name}` : name);
  if (!isPlainObject(value)) {
    issues.push(`${path || "(kwargs)"}: expected an object of ${typeName}, got ${show(value)}`);
    return out;
  }
  const known = new Set(message.fields.map((f) => f.name));
  for (const key of Object.keys(value)) {
    if (!known.has(key) && !options.ignoreUnknown) issues.push(`${at(key)}: unknown field (not in ${typeName})`);
  }
  for (const field of message.fields) {
    const v = Object.prototype.hasOwnProperty.call(value, field.name) ? value[field.name] : undefined;
    const p = at(field.name);
    if (v === undefined || v === null) {
      if (field.label === "optional") {
        if (v === null) out[field.name] = null;
        continue;
      }
      issues.push(`${p}: missing required field (${describeType(field)})`);
      continue;
    }
    if (field.label === "repeated") {
      if (!Array.isArray(v)) {
        issues.push(`${p}: expected a list of ${describeType({ ...field, label: "required" })}, got ${show(v)}`);
        continue;
      }
      out[field.name] = v.map((item: unknown, i) => convertSingle(schema, field, item, direction, issues, `${p}[${i}]`, options));
    } else if (field.label === "map") {
      if (!isPlainObject(v)) {
        issues.push(`${p}: expected a dict (${describeType(field)}), got ${show(v)}`);
        continue;
      }
      const m: Record<string, unknown> = {};
      for (const [k, item] of Object.entries(v)) {
        checkMapKey(field.keyType ?? "string", k, issues, `${p}[${JSON.stringify(k)}]`);
        m[k] = convertSingle(schema, field, item, direction, issues, `${p}[${JSON.stringify(k)}]`, options);
      }
      out[field.name] = m;
    } else {
      out[field.name] = convertSingle(schema, field, v, direction, issues, p, options);
    }
  }
  return out;
}

function checkMapKey(keyType: ScalarType, key: string, issues: string[], path: string): void {
  if (keyType === "string") return;
  if (keyType === "bool") {
    if (key !== "true" && key !== "false") issues.push(`${path}: map key must be "true" or "false"`);
    return;
  }
  if (!/^-?\d+$/.test(key)) issues.push(`${path}: map key must be a decimal ${keyType}`);
}

function convertSingle(
  schema: SchemaModel,
  field: FieldModel,
  v: unknown,
  direction: Direction,
  issues: string[],
  path: string,
  options: ConvertOptions,
): unknown {
  const t = field.type;
  const bad = (expected: string) => {
    issues.push(`${path}: expected ${expected}, got ${show(v)}`);
    return v;
  };
  switch (t.kind) {
    case "message":
      if (v === null || v === undefined) return bad(`an object of ${t.name}`);
      return convertMessage(schema, t.name, v, direction, issues, path, options);
    case "enum": {
      const values = schema.enums[t.name]?.values ?? {};
      if (typeof v !== "string" || !Object.prototype.hasOwnProperty.call(values, v)) {
        return bad(
          `one of ${Object.keys(values)
            .map((n) => JSON.stringify(n))
            .join(", ")} (${t.name}, sent by name)`,
        );
      }
      return v;
    }
    case "timestamp":
      if (direction === "toWire") {
        if (!(v instanceof Date) || Number.isNaN(v.getTime())) return bad("a valid Date (google.protobuf.Timestamp)");
        try {
          return pyIsoformat(v);
        } catch (err) {
          return bad(`a Date within Python's years 1..9999 (${(err as Error).message})`);
        }
      } else {
        if (typeof v !== "string" || !ISO.test(v)) return bad("an ISO 8601 datetime string (google.protobuf.Timestamp)");
        const text = /(?:Z|[+-]\d{2}:?\d{2})$/.test(v) ? v : `${v}Z`; // naive = UTC, as Celery with enable_utc
        const d = new Date(text.replace(" ", "T"));
        if (Number.isNaN(d.getTime())) return bad("an ISO 8601 datetime string (google.protobuf.Timestamp)");
        return d;
      }
    case "scalar":
      return convertScalar(t.scalar, v, direction, bad);
  }
}

function convertScalar(scalar: ScalarType, v: unknown, direction: Direction, bad: (expected: string) => unknown): unknown {
  if (INT64_TYPES.has(scalar)) {
    let big: bigint;
    if (typeof v === "bigint") big = v;
    else if (typeof v === "number" && Number.isSafeInteger(v)) big = BigInt(v);
    else if (typeof v === "number" && Number.isInteger(v)) return bad(`${scalar} within 2^53 (a larger integer was read as an inexact double)`);
    else return bad(`${scalar} (a bigint, or an integer number within 2^53)`);
    const unsigned = UNSIGNED_TYPES.has(scalar);
    if (big < (unsigned ? 0n : INT64_MIN) || big > (unsigned ? UINT64_MAX : INT64_MAX)) return bad(`${scalar} in range`);
    if (direction === "fromWire") return big;
    // Celery JSON writes a bigint as plain digits, which Python reads as an int.
    return big;
  }
  if (INT32_TYPES.has(scalar)) {
    if (typeof v !== "number" || !Number.isInteger(v)) return bad(`${scalar} (an integer number)`);
    const unsigned = UNSIGNED_TYPES.has(scalar);
    if (v < (unsigned ? 0 : INT32_MIN) || v > (unsigned ? UINT32_MAX : INT32_MAX)) return bad(`${scalar} in range`);
    return v;
  }
  switch (scalar) {
    case "double":
    case "float":
      if (typeof v === "number") return v;
      // Python floats that happen to be whole arrive as numbers; huge ints as bigint are not floats.
      return bad(`${scalar} (a number)`);
    case "bool":
      return typeof v === "boolean" ? v : bad("bool");
    case "string":
      return typeof v === "string" ? v : bad("string");
    case "bytes":
      if (direction === "toWire") {
        if (!(v instanceof Uint8Array)) return bad("bytes (a Uint8Array)");
        return Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString("base64");
      }
      if (typeof v !== "string" || !BASE64.test(v)) return bad("bytes (base64 text)");
      return new Uint8Array(Buffer.from(v, "base64"));
    default:
      return bad(scalar);
  }
}

/** Validates `value` against message `typeName` and converts it; throws SchemaValidationError listing every problem. */
export function convertOrThrow(
  schema: SchemaModel,
  typeName: string,
  value: unknown,
  direction: Direction,
  subject: string,
  options: ConvertOptions = {},
): Record<string, unknown> {
  const issues: string[] = [];
  const out = convertMessage(schema, typeName, value, direction, issues, "", options);
  if (issues.length > 0) throw new SchemaValidationError(subject, issues);
  return out;
}
