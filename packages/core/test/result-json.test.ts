import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { createFileResultBackend } from "../src/file-backend.js";
import { parseCeleryJson, parseResultMeta, stringifyCeleryJson } from "../src/result-json.js";
import type { ResultMeta } from "../src/envelope.js";
import { CeleriacError } from "../src/errors.js";
import { pyValueDiff, samplePyJsonValues } from "../../../test-support/py-values.js";
import { PYTHON } from "../../../test-support/python.js";

const dir = mkdtempSync(join(tmpdir(), "celeriac-result-json-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function meta(taskId: string, result: unknown): ResultMeta {
  return { status: "SUCCESS", result, traceback: null, children: [], date_done: "2026-01-02T03:04:05.000006", task_id: taskId };
}

describe("the Celery JSON dialect of results (property, fixed seed)", () => {
  const values = samplePyJsonValues(20261205, 2000);

  it("reads back every value it writes", () => {
    const diffs = values.map((v, i) => pyValueDiff(v, parseCeleryJson(stringifyCeleryJson(v)), `[${i}]`)).filter((d) => d !== null);
    expect(diffs).toEqual([]);
  });

  it("writes exactly what Python's json.dumps writes for the value json.loads reads", () => {
    const lines = values.map((v) => stringifyCeleryJson(v));
    // One Python process for the whole batch: each line must survive loads+dumps byte for byte.
    const script = [
      "import json, sys",
      "bad = []",
      "for i, line in enumerate(sys.stdin.read().split('\\n')):",
      "    again = json.dumps(json.loads(line))",
      "    if again != line: bad.append([i, line, again])",
      "print(json.dumps(bad))",
    ].join("\n");
    const r = spawnSync(PYTHON, ["-c", script], { input: lines.join("\n"), encoding: "utf8", maxBuffer: 64 * 1024 * 1024 });
    expect(r.status, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toEqual([]);
  });
});

describe("file:// result backend values", () => {
  const backend = createFileResultBackend({ directory: dir });

  it("stores and reads exact big integers, NaN, ±Infinity and -0", async () => {
    const result = [2n ** 53n + 1n, 2n ** 63n - 1n, -(2n ** 100n), NaN, Infinity, -Infinity, -0, 0.1];
    await backend.store(meta("t-exact", result));
    const text = readFileSync(join(dir, "celery-task-meta-t-exact"), "utf8");
    expect(text).toContain('"result": [9007199254740993, 9223372036854775807, -1267650600228229401496703205376, NaN, Infinity, -Infinity, -0.0, 0.1]');
    const back = await backend.get("t-exact");
    expect(pyValueDiff(result, back?.result)).toBeNull();
  });

  it("reads a result file as Celery writes it", async () => {
    // What Celery 5.2.6's file backend writes for `return [2**53 + 1, 2**63 - 1, float("inf"), float("nan")]`.
    writeFileSync(
      join(dir, "celery-task-meta-t-py"),
      '{"status": "SUCCESS", "result": [9007199254740993, 9223372036854775807, Infinity, NaN], "traceback": null, "children": [], "date_done": "2026-01-02T03:04:05.000006", "task_id": "t-py"}',
    );
    const back = await backend.get("t-py");
    expect(pyValueDiff([2n ** 53n + 1n, 2n ** 63n - 1n, Infinity, NaN], back?.result)).toBeNull();
  });

  it("refuses a file that is not a result, naming it", async () => {
    writeFileSync(join(dir, "celery-task-meta-t-bad"), "[1, 2");
    await expect(backend.get("t-bad")).rejects.toThrow(/result file for t-bad is not a readable result/);
    writeFileSync(join(dir, "celery-task-meta-t-list"), "[1, 2]");
    await expect(backend.get("t-list")).rejects.toThrow(/result file for t-list is not a Celery result meta/);
  });

  it("refuses to store a value without a JSON form instead of writing something else", async () => {
    await expect(backend.store(meta("t-map", new Map([[1, 2]])))).rejects.toThrow(CeleriacError);
  });
});

describe("parseResultMeta", () => {
  it("unwraps kombu 5.3 typed values as task messages do", () => {
    const m = parseResultMeta('{"status": "SUCCESS", "result": {"__type__": "datetime", "__value__": "2026-01-02T03:04:05+00:00"}, "task_id": "x"}', "test");
    expect(m.result).toEqual(new Date("2026-01-02T03:04:05Z"));
  });
});
