/**
 * Header values typed for AMQP field tables the way Debian's py-amqp reads them.
 *
 * amqplib guesses a tag from a JS number's size: `b`, `s` (int16) or `l` (int64). py-amqp 5.x
 * reads `s` as a short string, so one small integer such as `retries: 200` corrupts the whole
 * header table Celery sees (kombu#2354). Integers therefore always travel as signed 32-bit `I`;
 * larger ones as `l`, which py-amqp reads as unsigned 64-bit, the same value for positive
 * numbers. Negative integers below -2^31 go as doubles (`d`), the one lossless choice left.
 */
export type TypedValue = { "!": "int" | "long" | "double"; value: number } | string | boolean | null | TypedValue[] | { [key: string]: TypedValue } | Buffer;

const INT32_MIN = -0x80000000;
const INT32_MAX = 0x7fffffff;

export function typeFieldValue(v: unknown): TypedValue {
  if (typeof v === "number") {
    if (!Number.isInteger(v)) return { "!": "double", value: v };
    if (v >= INT32_MIN && v <= INT32_MAX) return { "!": "int", value: v };
    if (v > 0 && Number.isSafeInteger(v)) return { "!": "long", value: v };
    return { "!": "double", value: v };
  }
  if (typeof v === "bigint") {
    const n = Number(v);
    return typeFieldValue(n);
  }
  if (typeof v === "string" || typeof v === "boolean" || v === null) return v;
  if (v === undefined) return null;
  if (Array.isArray(v)) return v.map(typeFieldValue);
  if (Buffer.isBuffer(v)) return v;
  if (v instanceof Uint8Array) return Buffer.from(v.buffer, v.byteOffset, v.byteLength);
  if (typeof v === "object") {
    const out: Record<string, TypedValue> = {};
    for (const [k, x] of Object.entries(v as Record<string, unknown>)) out[k] = typeFieldValue(x);
    return out;
  }
  return String(v);
}

export function typeFieldTable(headers: Record<string, unknown>): Record<string, TypedValue> {
  const out: Record<string, TypedValue> = {};
  for (const [k, v] of Object.entries(headers)) out[k] = typeFieldValue(v);
  return out;
}
