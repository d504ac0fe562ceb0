import { spawnSync } from "node:child_process";
import { describe, expect, it } from "vitest";
import { CeleriacError } from "../src/errors.js";
import { MAX_JSON_DEPTH, formatPyFloat, pyParse, pyStringify, quotePyString } from "../src/codec/py-json.js";
import { seededRandom } from "../../../test-support/prng.js";

const PYTHON = "/usr/bin/python3";

function python(script: string, input: string): string {
  const r = spawnSync(PYTHON, ["-c", script], { input, encoding: "utf8", maxBuffer: 64 * 1024 * 1024 });
  if (r.status !== 0) throw new Error(`python failed: ${r.stderr}`);
  return r.stdout;
}

function expectDecodeFailed(fn: () => unknown, pattern?: RegExp): void {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(CeleriacError);
    expect((err as CeleriacError).code).toBe("decode_failed");
    if (pattern) expect((err as Error).message).toMatch(pattern);
    return;
  }
  throw new Error("expected decode_failed");
}

describe("formatPyFloat (Python repr)", () => {
  it.each([
    [0.1, "0.1"],
    [1e-7, "1e-07"],
    [1e16, "1e+16"],
    [1e15, "1000000000000000.0"],
    [3, "3.0"],
    [-0, "-0.0"],
    [0, "0.0"],
    [1e-5, "1e-05"],
    [0.0001, "0.0001"],
    [1.5e300, "1.5e+300"],
    [5e-324, "5e-324"],
    [1.7976931348623157e308, "1.7976931348623157e+308"],
    [123456.789, "123456.789"],
    [-2.5, "-2.5"],
    [2 ** 53, "9007199254740992.0"],
    [1.2345678901234568e-5, "1.2345678901234568e-05"],
    [NaN, "NaN"],
    [Infinity, "Infinity"],
    [-Infinity, "-Infinity"],
  ])("%s -> %s", (n, expected) => {
    expect(formatPyFloat(n)).toBe(expected);
  });
});

describe("pyStringify", () => {
  it("uses Python's separators and ensure_ascii escapes", () => {
    expect(pyStringify([1, "a", { b: null, c: [true, false] }, [], {}])).toBe('[1, "a", {"b": null, "c": [true, false]}, [], {}]');
    expect(pyStringify('é😀\u2028\x7f\x00"\\\n\r\t\b\f')).toBe('"\\u00e9\\ud83d\\ude00\\u2028\\u007f\\u0000\\"\\\\\\n\\r\\t\\b\\f"');
    expect(quotePyString("plain")).toBe('"plain"');
  });

  it("writes numbers as Python would have: safe integers as ints, the rest as float repr", () => {
    expect(pyStringify([3, -1, 0.5, 1e16, 2 ** 53, -0, NaN, Infinity, -Infinity])).toBe(
      "[3, -1, 0.5, 1e+16, 9007199254740992.0, -0.0, NaN, Infinity, -Infinity]",
    );
    expect(pyStringify([2n ** 70n, -(2n ** 63n)])).toBe("[1180591620717411303424, -9223372036854775808]");
  });

  it("follows JSON.stringify for undefined, functions and toJSON", () => {
    expect(pyStringify({ a: undefined, b: () => 1, c: 1 })).toBe('{"c": 1}');
    expect(pyStringify([undefined, () => 1])).toBe("[null, null]");
    expect(pyStringify({ toJSON: () => "x" })).toBe('"x"');
    class Point {
      constructor(
        readonly x: number,
        readonly y: number,
      ) {}
    }
    expect(pyStringify(new Point(1, 2))).toBe('{"x": 1, "y": 2}');
    expect(pyStringify(new Date(Date.UTC(2024, 0, 1)))).toBe('"2024-01-01T00:00:00.000Z"');
  });

  it("uses encodeSpecial for non-plain objects", () => {
    const out = pyStringify([new Date(0)], { encodeSpecial: (v) => (v instanceof Date ? { t: v.getTime() } : undefined) });
    expect(out).toBe('[{"t": 0}]');
  });

  it("refuses cycles, excessive depth, Map/Set and undefined roots", () => {
    const cyclic: Record<string, unknown> = {};
    cyclic["self"] = cyclic;
    for (const bad of [cyclic, new Map(), new Set([1]), new Uint8Array(2), undefined]) {
      expect(() => pyStringify(bad)).toThrow(CeleriacError);
    }
    let deep: unknown = 1;
    for (let i = 0; i < MAX_JSON_DEPTH + 1; i++) deep = [deep];
    expect(() => pyStringify(deep)).toThrow(/deeper/);
    // Shared (non-cyclic) references are fine.
    const shared = { a: 1 };
    expect(pyStringify([shared, shared])).toBe('[{"a": 1}, {"a": 1}]');
  });
});

describe("pyParse", () => {
  it("reads NaN and Infinity like Python", () => {
    const v = pyParse("[NaN, Infinity, -Infinity, 1]") as number[];
    expect(v[0]).toBeNaN();
    expect(v.slice(1)).toEqual([Infinity, -Infinity, 1]);
  });

  it("keeps integers beyond 2^53 exact as bigint and the rest as numbers", () => {
    expect(pyParse("[1180591620717411303424, -9223372036854775808, 9007199254740991, 9007199254740992, 1e16, 10000000000000000.0, 123]")).toEqual([
      2n ** 70n,
      -(2n ** 63n),
      9007199254740991,
      9007199254740992n,
      1e16,
      1e16,
      123,
    ]);
    expect(pyParse("1234567890123456")).toBe(1234567890123456);
    expect(Object.is(pyParse("-0"), 0)).toBe(true);
    expect(Object.is(pyParse("-0.0"), -0)).toBe(true);
  });

  it("round-trips big integers and floats byte for byte", () => {
    const text = "[1180591620717411303424, -9223372036854775808, 0.1, 1e-07, 1e+16, -0.0, NaN, -Infinity]";
    expect(pyStringify(pyParse(text))).toBe(text);
  });

  it("decodes strings with escapes, surrogates and __proto__ keys", () => {
    expect(pyParse('["\\u00e9\\ud83d\\ude00", "\\ud800", "a\\/b", NaN]')).toEqual(["é😀", "\ud800", "a/b", NaN]);
    const o = pyParse('{"__proto__": {"x": 1}, "NaN": 1}') as Record<string, unknown>;
    expect(Object.getPrototypeOf(o)).toBe(Object.prototype);
    expect(Object.keys(o)).toEqual(["__proto__", "NaN"]);
    expect(pyParse('{"a": 1, "a": 2}')).toEqual({ a: 2 });
  });

  it.each([
    ["", /end of input|Unexpected end/],
    ["[1, 2", /./],
    ["[1,]", /./],
    ["{'a': 1}", /./],
    ["NaNa", /./],
    ["[NaN, 01]", /./],
    ['["\\x"] NaN', /./],
    ['["a\nb", NaN]', /control character/],
    ["[NaN, -]", /number/],
    ['{"a" 1, "n": NaN}', /':'/],
    ["[NaN] x", /after the JSON value/],
    ['"\\u12"', /./],
  ])("rejects %j with decode_failed", (text, pattern) => {
    expectDecodeFailed(() => pyParse(text), pattern);
  });

  it("refuses nesting beyond MAX_JSON_DEPTH in both parse paths", () => {
    const deep = "[".repeat(MAX_JSON_DEPTH + 1) + "]".repeat(MAX_JSON_DEPTH + 1);
    expectDecodeFailed(() => pyParse(deep), /deeper/);
    expectDecodeFailed(() => pyParse(`[NaN, ${deep}]`), /deeper/);
    const ok = "[".repeat(MAX_JSON_DEPTH) + "]".repeat(MAX_JSON_DEPTH);
    expect(() => pyParse(ok)).not.toThrow();
    expect(() => pyParse(`[NaN, ${ok.slice(1)}`)).not.toThrow();
  });
});

describe("against Python's json module", () => {
  it("formats 5,000 random doubles exactly like json.dumps", () => {
    const rnd = seededRandom(42);
    const view = new DataView(new ArrayBuffer(8));
    const values: number[] = [];
    while (values.length < 5000) {
      let x: number;
      const kind = rnd();
      if (kind < 0.4) {
        view.setUint32(0, Math.floor(rnd() * 2 ** 32));
        view.setUint32(4, Math.floor(rnd() * 2 ** 32));
        x = view.getFloat64(0);
      } else if (kind < 0.8) {
        x = Number((rnd() * 10 ** Math.floor(rnd() * 40 - 20)).toPrecision(1 + Math.floor(rnd() * 17)));
      } else {
        x = (rnd() - 0.5) * 10 ** Math.floor(rnd() * 34 - 17);
      }
      // Integral doubles in the safe range are written as ints on purpose (see py-json.ts).
      if (Number.isNaN(x) || (Number.isSafeInteger(x) && !Object.is(x, -0))) continue;
      values.push(x);
    }
    const hex = values.map((v) => {
      view.setFloat64(0, v);
      return [view.getUint32(0), view.getUint32(4)];
    });
    const out = python(
      "import json,struct,sys\nh=json.load(sys.stdin)\nsys.stdout.write(json.dumps([struct.unpack('>d', struct.pack('>II', a, b))[0] for a, b in h]))",
      JSON.stringify(hex),
    );
    expect(pyStringify(values)).toBe(out);
    expect(pyStringify(pyParse(out))).toBe(out);
  });

  it("escapes 2,000 random strings exactly like json.dumps (astral and lone surrogates too)", () => {
    const rnd = seededRandom(7);
    const pick = (): number => {
      const r = rnd();
      if (r < 0.3) return 0x20 + Math.floor(rnd() * 0x5f);
      if (r < 0.4) return Math.floor(rnd() * 0x20);
      if (r < 0.7) return 0x80 + Math.floor(rnd() * 0xff80);
      return -1;
    };
    const strings: string[] = [];
    for (let i = 0; i < 2000; i++) {
      let s = "";
      const n = Math.floor(rnd() * 12);
      for (let j = 0; j < n; j++) {
        const c = pick();
        s += c < 0 ? String.fromCodePoint(0x10000 + Math.floor(rnd() * 0xfffff)) : String.fromCharCode(c);
      }
      strings.push(s);
    }
    const obj = Object.fromEntries(strings.map((s, i) => [`k${i}${s}`, s]));
    const out = python("import json,sys\nsys.stdout.write(json.dumps(json.load(sys.stdin)))", JSON.stringify([strings, obj]));
    expect(pyStringify([strings, obj])).toBe(out);
    expect(pyParse(out)).toEqual([strings, obj]);
  });
});

describe("pyParse fast and slow paths agree", () => {
  it("reads -0, NaN and Infinity as values but leaves them alone inside strings", () => {
    // Python's int -0 is 0; only the float -0.0 keeps its sign.
    expect(Object.is((pyParse('{"n": -0}') as { n: number }).n, 0)).toBe(true);
    expect(pyParse('["-0", "NaN", "9f0e-0a1b", -0.0, NaN, -Infinity]')).toEqual(["-0", "NaN", "9f0e-0a1b", -0, NaN, -Infinity]);
    expect(pyParse('{"id": "5f1c2b0e-0d7a-4e3b-9c2a-0b1d2e3f4a5b"}')).toEqual({ id: "5f1c2b0e-0d7a-4e3b-9c2a-0b1d2e3f4a5b" });
    expect(pyParse("-0")).toBe(0);
  });
});
