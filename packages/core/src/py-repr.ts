/**
 * Python `repr` of JSON-like values, for the `argsrepr`/`kwargsrepr` headers that Celery's tools
 * (flower, `celery inspect`, logs) display. Celery truncates them to 1024 characters.
 */
export function pyRepr(value: unknown, asTuple = false): string {
  if (value === null || value === undefined) return "None";
  if (value === true) return "True";
  if (value === false) return "False";
  if (typeof value === "number") {
    if (Number.isNaN(value)) return "nan";
    if (!Number.isFinite(value)) return value > 0 ? "inf" : "-inf";
    return String(value);
  }
  if (typeof value === "bigint") return value.toString();
  if (typeof value === "string") return pyStr(value);
  if (value instanceof Date) return pyStr(value.toISOString());
  if (value instanceof Uint8Array) return `b'${Buffer.from(value).toString("latin1")}'`;
  if (Array.isArray(value)) {
    const inner = value.map((v) => pyRepr(v)).join(", ");
    if (asTuple) return value.length === 1 ? `(${inner},)` : `(${inner})`;
    return `[${inner}]`;
  }
  if (typeof value === "object") {
    return `{${Object.entries(value as Record<string, unknown>)
      .map(([k, v]) => `${pyStr(k)}: ${pyRepr(v)}`)
      .join(", ")}}`;
  }
  return pyStr(String(value));
}

function pyStr(s: string): string {
  const quote = s.includes("'") && !s.includes('"') ? '"' : "'";
  let out = quote;
  for (const ch of s) {
    if (ch === quote || ch === "\\") out += `\\${ch}`;
    else if (ch === "\n") out += "\\n";
    else if (ch === "\r") out += "\\r";
    else if (ch === "\t") out += "\\t";
    else if (ch < " " || ch === "\x7f") out += `\\x${ch.charCodeAt(0).toString(16).padStart(2, "0")}`;
    else out += ch;
  }
  return out + quote;
}

export const REPR_MAX = 1024;

export function truncatedRepr(value: unknown, asTuple = false): string {
  const r = pyRepr(value, asTuple);
  return r.length > REPR_MAX ? `${r.slice(0, REPR_MAX - 3)}...` : r;
}
