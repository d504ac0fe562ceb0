/**
 * JSON as Python's `json` module writes and reads it, which is what kombu uses for Celery messages
 * (kombu 5.2 `kombu.utils.json.dumps` is `json.dumps` with its defaults: separators `", "` and
 * `": "`, `ensure_ascii=True`, `allow_nan=True`).
 *
 * Writing byte-for-byte like Python keeps message bodies identical whichever side produced them,
 * which matters for golden tests, content hashing and for humans diffing queues. Reading like
 * Python means accepting `NaN`/`Infinity` and keeping integers beyond 2^53 exact (as `bigint`).
 *
 * The one thing JS cannot reproduce: Python's `3.0` and `3` are different types, a JS number is
 * not. An integral float decodes to a plain number and is written back as an int (`3`). Numbers
 * that are integral but beyond the safe-integer range are written as Python floats, since they
 * can only have come from floating-point arithmetic (exact big integers are `bigint`s).
 * See docs/json-dialect.md.
 */
import { CeleriacError } from "../errors.js";

/** Deeper nesting is refused in both directions; Python's own decoder stops near 1000 too. */
export const MAX_JSON_DEPTH = 1000;

export interface PyStringifyOptions {
  /**
   * Called for every object that is neither an array nor a plain object (Date, Uint8Array, class
   * instances, ...). Return a JSON-able replacement, or `undefined` to fall back to the default
   * handling (`toJSON()` when present, own enumerable properties otherwise).
   */
  encodeSpecial?: (value: object) => unknown;
}

/**
 * Python's `repr(float)`: shortest round-trip digits, fixed notation when the decimal exponent is
 * in [-4, 16), scientific otherwise with a signed exponent of at least two digits
 * (`1e-07`, `1e+16`, `1.5e+300`), and `.0` on integral values.
 */
export function formatPyFloat(n: number): string {
  // Where both use fixed notation, JS's shortest round-trip text is already Python's repr.
  const abs = Math.abs(n);
  if (abs >= 1e-4 && abs < 1e16 && !Number.isInteger(n)) return String(n);
  if (Number.isNaN(n)) return "NaN";
  if (n === Infinity) return "Infinity";
  if (n === -Infinity) return "-Infinity";
  if (n === 0) return Object.is(n, -0) ? "-0.0" : "0.0";
  const sign = n < 0 ? "-" : "";
  // toExponential() without an argument yields the shortest digits that round-trip, as repr does.
  const exp = Math.abs(n).toExponential();
  const eAt = exp.indexOf("e");
  const digits = exp.slice(0, eAt).replace(".", "");
  const e10 = Number(exp.slice(eAt + 1));
  const decpt = e10 + 1; // position of the decimal point relative to the digit string
  if (decpt > -4 && decpt <= 16) {
    if (decpt <= 0) return `${sign}0.${"0".repeat(-decpt)}${digits}`;
    if (decpt >= digits.length) return `${sign}${digits}${"0".repeat(decpt - digits.length)}.0`;
    return `${sign}${digits.slice(0, decpt)}.${digits.slice(decpt)}`;
  }
  const mantissa = digits.length === 1 ? digits : `${digits[0]}.${digits.slice(1)}`;
  const expSign = e10 < 0 ? "-" : "+";
  const expDigits = String(Math.abs(e10)).padStart(2, "0");
  return `${sign}${mantissa}e${expSign}${expDigits}`;
}

/** A JS number as Python would have written the value it stands for. */
export function formatPyNumber(n: number): string {
  if (Number.isSafeInteger(n) && !Object.is(n, -0)) return String(n);
  return formatPyFloat(n);
}

const NON_ASCII = /[\u007f-\uffff]/;
const NON_ASCII_G = /[\u007f-\uffff]/g;
const escapeUnit = (c: string): string => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`;

/** `json.dumps(s, ensure_ascii=True)` for one string: only printable ASCII stays literal. */
export function quotePyString(s: string): string {
  let plain = true;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x20 || c > 0x7e || c === 0x22 || c === 0x5c) {
      plain = false;
      break;
    }
  }
  if (plain) return `"${s}"`;
  // JSON.stringify already escapes exactly as Python does below 0x7f (short escapes for
  // \b \f \n \r \t, lowercase \u00XX for other controls) and writes lone surrogates as
  // escapes; Python additionally escapes DEL and everything non-ASCII, astral characters as
  // their two UTF-16 code units.
  const out = JSON.stringify(s);
  return NON_ASCII.test(out) ? out.replace(NON_ASCII_G, escapeUnit) : out;
}

function isPlainObject(v: object): boolean {
  const proto: unknown = Object.getPrototypeOf(v);
  return proto === Object.prototype || proto === null;
}

/**
 * `json.dumps` as kombu 5.2 calls it. Follows `JSON.stringify` where Python has no equivalent:
 * `undefined`, functions and symbols are skipped in objects and written as `null` in arrays.
 * Throws `CeleriacError("invalid_argument")` on cycles, excessive depth, Map/Set, and on anything
 * that has no JSON form.
 */
export function pyStringify(value: unknown, options: PyStringifyOptions = {}): string {
  const out = new PyWriter(options.encodeSpecial).write(value, false);
  if (out === undefined) throw new CeleriacError("invalid_argument", `cannot serialize ${typeof value} to JSON`);
  return out;
}

// A class with plain string concatenation: this sits on every publish, and V8 optimizes it far
// better than closures building part arrays.
class PyWriter {
  private readonly stack: object[] = [];

  constructor(private readonly special: ((value: object) => unknown) | undefined) {}

  write(v: unknown, inArray: boolean): string | undefined {
    switch (typeof v) {
      case "string":
        return quotePyString(v);
      case "number":
        return Number.isSafeInteger(v) && !Object.is(v, -0) ? String(v) : formatPyFloat(v);
      case "bigint":
        return v.toString();
      case "boolean":
        return v ? "true" : "false";
      case "object":
        break;
      default:
        return inArray ? "null" : undefined; // undefined, function, symbol
    }
    if (v === null) return "null";
    const obj: object = v;
    const stack = this.stack;
    if (stack.length >= MAX_JSON_DEPTH) {
      // A cycle always ends up here, so the ancestor scan is paid only on this path.
      throw new CeleriacError(
        "invalid_argument",
        stack.includes(obj) ? "cannot serialize a circular structure to JSON" : `value nested deeper than ${MAX_JSON_DEPTH} levels`,
      );
    }
    stack.push(obj);
    try {
      if (Array.isArray(obj)) {
        let out = "[";
        for (let i = 0; i < obj.length; i++) {
          if (i > 0) out += ", ";
          out += this.write(obj[i], true) ?? "null";
        }
        return out + "]";
      }
      const plain = isPlainObject(obj);
      const replaced = plain || this.special === undefined ? undefined : this.special(obj);
      if (replaced !== undefined) return this.write(replaced, inArray);
      if (typeof (obj as { toJSON?: unknown }).toJSON === "function") return this.write((obj as { toJSON: () => unknown }).toJSON(), inArray);
      if (!plain && (obj instanceof Map || obj instanceof Set || ArrayBuffer.isView(obj) || obj instanceof ArrayBuffer)) {
        throw new CeleriacError("invalid_argument", `cannot serialize ${obj.constructor.name} to JSON; convert it to a plain object, array or string first`);
      }
      let out = "{";
      let first = true;
      for (const key in obj) {
        if (!Object.prototype.hasOwnProperty.call(obj, key)) continue;
        const item = this.write((obj as Record<string, unknown>)[key], false);
        if (item === undefined) continue;
        out += first ? `${quotePyString(key)}: ${item}` : `, ${quotePyString(key)}: ${item}`;
        first = false;
      }
      return out + "}";
    } finally {
      stack.pop();
    }
  }
}

function fail(message: string): never {
  throw new CeleriacError("decode_failed", message);
}

/**
 * True when JSON.parse's reading of a text may differ from Python's: an integer-valued number
 * beyond 2^53 (a Python int may not survive the double), a -0 (Python int 0; a float -0.0 reads
 * the same either way, the slow parser sorts them out), or nesting deeper than we accept. NaN and
 * Infinity never get here: JSON.parse refuses them. Walking the parsed value is cheaper than
 * scanning the text, and almost every envelope has only a few numbers.
 */
function readsDifferently(value: unknown, depth: number): boolean {
  if (typeof value === "number") return (value === 0 && 1 / value < 0) || (Number.isInteger(value) && !Number.isSafeInteger(value));
  if (typeof value !== "object" || value === null) return false;
  if (depth >= MAX_JSON_DEPTH) return true;
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) if (readsDifferently(value[i], depth + 1)) return true;
    return false;
  }
  for (const key in value) if (readsDifferently((value as Record<string, unknown>)[key], depth + 1)) return true;
  return false;
}

/**
 * `json.loads` as kombu calls it: accepts `NaN`, `Infinity` and `-Infinity`; integers outside the
 * safe range become `bigint` (so 2**70 round-trips exactly), every other number a plain number.
 * Throws `CeleriacError("decode_failed")` naming the problem and its offset.
 */
export function pyParse(text: string): unknown {
  // Fast path: JSON.parse, kept when nothing in what it read could differ from Python's reading.
  // Anything else (NaN, big integers, -0, too deep, or not JSON at all) is read by the parser
  // below, which also names the offset of a syntax error.
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return new Parser(text).parseDocument();
  }
  return readsDifferently(value, 0) ? new Parser(text).parseDocument() : value;
}

const NUMBER = /-?(?:0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)?/y;

class Parser {
  private pos = 0;
  private depth = 0;

  constructor(private readonly text: string) {}

  parseDocument(): unknown {
    this.skipWs();
    const value = this.parseValue();
    this.skipWs();
    if (this.pos < this.text.length) this.error("unexpected data after the JSON value");
    return value;
  }

  private error(what: string): never {
    fail(`invalid JSON at offset ${this.pos}: ${what}`);
  }

  private skipWs(): void {
    const t = this.text;
    while (this.pos < t.length) {
      const c = t.charCodeAt(this.pos);
      if (c !== 0x20 && c !== 0x0a && c !== 0x0d && c !== 0x09) break;
      this.pos++;
    }
  }

  private parseValue(): unknown {
    const t = this.text;
    const c = t[this.pos];
    switch (c) {
      case "{":
        return this.parseObject();
      case "[":
        return this.parseArray();
      case '"':
        return this.parseString();
      case "t":
        return this.literal("true", true);
      case "f":
        return this.literal("false", false);
      case "n":
        return this.literal("null", null);
      case "N":
        return this.literal("NaN", NaN);
      case "I":
        return this.literal("Infinity", Infinity);
      case undefined:
        return this.error("unexpected end of input");
      default:
        if (c === "-" && t.startsWith("-Infinity", this.pos)) return this.literal("-Infinity", -Infinity);
        if (c === "-" || (c >= "0" && c <= "9")) return this.parseNumber();
        return this.error(`unexpected character ${JSON.stringify(c)}`);
    }
  }

  private literal<T>(word: string, value: T): T {
    if (!this.text.startsWith(word, this.pos)) this.error(`expected ${word}`);
    this.pos += word.length;
    return value;
  }

  private parseNumber(): number | bigint {
    NUMBER.lastIndex = this.pos;
    const m = NUMBER.exec(this.text);
    if (!m) return this.error("malformed number");
    this.pos += m[0].length;
    const src = m[0];
    if (m[1] === undefined && m[2] === undefined) {
      // An int in Python. Up to 15 digits always fits a double exactly.
      const digits = src[0] === "-" ? src.length - 1 : src.length;
      if (digits <= 15) return src === "-0" ? 0 : Number(src);
      const big = BigInt(src);
      return big >= BigInt(Number.MIN_SAFE_INTEGER) && big <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(big) : big;
    }
    return Number(src);
  }

  private enter(): void {
    if (++this.depth > MAX_JSON_DEPTH) this.error(`nested deeper than ${MAX_JSON_DEPTH} levels`);
  }

  private parseArray(): unknown[] {
    this.enter();
    this.pos++;
    const out: unknown[] = [];
    this.skipWs();
    if (this.text[this.pos] === "]") {
      this.pos++;
      this.depth--;
      return out;
    }
    for (;;) {
      this.skipWs();
      out.push(this.parseValue());
      this.skipWs();
      const c = this.text[this.pos++];
      if (c === "]") break;
      if (c !== ",") {
        this.pos--;
        this.error("expected ',' or ']' in array");
      }
    }
    this.depth--;
    return out;
  }

  private parseObject(): Record<string, unknown> {
    this.enter();
    this.pos++;
    const out: Record<string, unknown> = {};
    this.skipWs();
    if (this.text[this.pos] === "}") {
      this.pos++;
      this.depth--;
      return out;
    }
    for (;;) {
      this.skipWs();
      if (this.text[this.pos] !== '"') this.error("expected a string key in object");
      const key = this.parseString();
      this.skipWs();
      if (this.text[this.pos] !== ":") this.error("expected ':' after object key");
      this.pos++;
      this.skipWs();
      const value = this.parseValue();
      // Like JSON.parse: "__proto__" is an ordinary own key, never the prototype.
      if (key === "__proto__") Object.defineProperty(out, key, { value, writable: true, enumerable: true, configurable: true });
      else out[key] = value;
      this.skipWs();
      const c = this.text[this.pos++];
      if (c === "}") break;
      if (c !== ",") {
        this.pos--;
        this.error("expected ',' or '}' in object");
      }
    }
    this.depth--;
    return out;
  }

  private parseString(): string {
    const t = this.text;
    this.pos++;
    let out = "";
    let start = this.pos;
    for (;;) {
      if (this.pos >= t.length) this.error("unterminated string");
      const c = t.charCodeAt(this.pos);
      if (c === 0x22) {
        out += t.slice(start, this.pos);
        this.pos++;
        return out;
      }
      if (c < 0x20) this.error("control character in string");
      if (c !== 0x5c) {
        this.pos++;
        continue;
      }
      out += t.slice(start, this.pos);
      const e = t[this.pos + 1];
      switch (e) {
        case '"':
          out += '"';
          break;
        case "\\":
          out += "\\";
          break;
        case "/":
          out += "/";
          break;
        case "b":
          out += "\b";
          break;
        case "f":
          out += "\f";
          break;
        case "n":
          out += "\n";
          break;
        case "r":
          out += "\r";
          break;
        case "t":
          out += "\t";
          break;
        case "u": {
          const hex = t.slice(this.pos + 2, this.pos + 6);
          if (!/^[0-9a-fA-F]{4}$/.test(hex)) this.error("invalid \\u escape");
          out += String.fromCharCode(parseInt(hex, 16));
          this.pos += 4;
          break;
        }
        default:
          this.error("invalid escape in string");
      }
      this.pos += 2;
      start = this.pos;
    }
  }
}
