import fc from "fast-check";

/**
 * The values Python's `json` can express, as Celeriac represents them (docs/json-dialect.md):
 * null, booleans, ints (a number within ±(2^53-1), a bigint beyond, up to 2^100 so well past
 * 2^63), floats (any double, so NaN, ±Infinity, -0 and subnormals), strings of any UTF-16 code
 * units (lone surrogates included: Python's json reads and writes them as \udXXX escapes), lists
 * and dicts with string keys.
 *
 * Left out on purpose, as documented differences: integral floats within 2^53 (a JS number cannot
 * say 3.0 rather than 3, so Python gets an int back) and kombu 5.3 typed objects
 * (`{"__type__", "__value__"}` is unwrapped, as kombu does).
 */
export function pyJsonValue(options: { maxDepth?: number } = {}): fc.Arbitrary<unknown> {
  const exactInt = fc.bigInt({ min: -(2n ** 100n), max: 2n ** 100n }).map(asCeleriacInt);
  const boundaryInt = fc
    .constantFrom(2n ** 53n - 1n, 2n ** 53n, 2n ** 53n + 1n, 2n ** 63n - 1n, 2n ** 63n, 2n ** 64n, -(2n ** 53n) - 1n, -(2n ** 63n), -(2n ** 63n) - 1n, 0n)
    .map(asCeleriacInt);
  const float = fc.oneof(
    fc.double(),
    fc.constantFrom(NaN, Infinity, -Infinity, -0, 5e-324, -2.2250738585072014e-308, 1e16, 1e-7, 0.1, 9007199254740992, 1.7976931348623157e308),
  );
  // Mostly ASCII (escapes, quotes, controls), some BMP units including lone surrogates, some
  // astral characters (written as surrogate pairs).
  const unit = fc.oneof(
    { weight: 4, arbitrary: fc.string({ unit: "binary-ascii", minLength: 1, maxLength: 1 }) },
    { weight: 2, arbitrary: fc.integer({ min: 0, max: 0xffff }).map((c) => String.fromCharCode(c)) },
    { weight: 1, arbitrary: fc.string({ unit: "binary", minLength: 1, maxLength: 1 }) },
  );
  const text = fc.string({ unit, maxLength: 12 });
  const scalar = fc.oneof(fc.constant(null), fc.boolean(), fc.integer(), exactInt, boundaryInt, float, text);
  const { value } = fc.letrec<{ value: unknown }>((tie) => ({
    value: fc.oneof(
      { depthSize: "small", maxDepth: options.maxDepth ?? 3 },
      { weight: 3, arbitrary: scalar },
      { weight: 1, arbitrary: fc.array(tie("value"), { maxLength: 5 }) },
      { weight: 1, arbitrary: fc.dictionary(text, tie("value"), { maxKeys: 5, noNullPrototype: true }) },
    ),
  }));
  return value;
}

/** A Python int as Celeriac reads it: a number when safe, a bigint beyond. */
function asCeleriacInt(b: bigint): number | bigint {
  return b >= BigInt(Number.MIN_SAFE_INTEGER) && b <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(b) : b;
}

/** `count` values from a fixed seed: the same inputs on every run, so a failure reproduces. */
export function samplePyJsonValues(seed: number, count: number): unknown[] {
  return fc.sample(pyJsonValue(), { seed, numRuns: count });
}

/**
 * Where `got` differs from `want` as Python values, or null when equal: NaN equals NaN, -0 and 0
 * differ (Python's -0.0 and 0), a bigint never equals a number (a big int is never a float), dict
 * key order does not matter (it does not for Python's ==).
 */
export function pyValueDiff(want: unknown, got: unknown, path = "$"): string | null {
  const show = (v: unknown) =>
    typeof v === "bigint"
      ? `${v}n`
      : Object.is(v, -0)
        ? "-0"
        : typeof v === "string"
          ? JSON.stringify(v)
          : Array.isArray(v)
            ? "a list"
            : v === null
              ? "null"
              : typeof v === "object"
                ? "a dict"
                : String(v);
  const differ = () => `${path}: want ${show(want)}, got ${show(got)}`;
  if (typeof want !== typeof got) return differ();
  if (typeof want === "number") return Object.is(want, got) ? null : differ();
  if (want === null || got === null || typeof want !== "object") return want === got ? null : differ();
  if (Array.isArray(want) !== Array.isArray(got)) return differ();
  if (Array.isArray(want)) {
    const g = got as unknown[];
    if (want.length !== g.length) return `${path}: want ${want.length} items, got ${g.length}`;
    for (let i = 0; i < want.length; i++) {
      const d = pyValueDiff(want[i], g[i], `${path}[${i}]`);
      if (d) return d;
    }
    return null;
  }
  const w = want as Record<string, unknown>;
  const g = got as Record<string, unknown>;
  const wk = Object.keys(w).sort();
  const gk = Object.keys(g).sort();
  if (wk.join("\u0000") !== gk.join("\u0000")) return `${path}: want keys ${JSON.stringify(wk)}, got ${JSON.stringify(gk)}`;
  for (const k of wk) {
    const d = pyValueDiff(w[k], g[k], `${path}[${JSON.stringify(k)}]`);
    if (d) return d;
  }
  return null;
}

/** Every difference between two equally long lists of values, by index. */
export function pyValueDiffs(want: unknown[], got: unknown, what: string): string[] {
  if (!Array.isArray(got) || got.length !== want.length)
    return [`${what}: want a list of ${want.length}, got ${Array.isArray(got) ? `a list of ${got.length}` : typeof got}`];
  const out: string[] = [];
  want.forEach((w, i) => {
    const d = pyValueDiff(w, got[i], `${what}[${i}]`);
    if (d) out.push(d);
  });
  return out;
}
