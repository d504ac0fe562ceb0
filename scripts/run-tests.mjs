#!/usr/bin/env node
// Runs the whole vitest suite once and ends with the line CI reads: "N passed, N failed".
// The counts come from vitest's JSON report, so a crashed file or a failed hook counts as failed.
import { spawnSync } from "node:child_process";
import { existsSync, readFileSync, rmSync, writeFileSync } from "node:fs";

const report = "test-results.json";
rmSync(report, { force: true });
const run = spawnSync(
  "npx",
  ["vitest", "run", "--reporter=default", "--reporter=json", `--outputFile.json=${report}`, ...process.argv.slice(2)],
  // Plain text in CI logs; colours on a developer's terminal.
  { stdio: "inherit", env: process.env.CI ? { ...process.env, NO_COLOR: "1", FORCE_COLOR: undefined } : process.env },
);

let passed = 0;
let failed = 0;
let skipped = 0;
if (existsSync(report)) {
  const r = JSON.parse(readFileSync(report, "utf8"));
  passed = r.numPassedTests;
  failed = r.numFailedTests;
  skipped = r.numPendingTests + r.numTodoTests;
  // A test file that failed to load has no tests in it but must still fail the run.
  failed += r.testResults.filter((f) => f.status === "failed" && f.assertionResults.length === 0).length;
}
if (run.status !== 0 && failed === 0) failed = 1;
const line = `${passed} passed, ${failed} failed${skipped ? `, ${skipped} skipped` : ""}`;
writeFileSync("test-summary.txt", `${line}\n`);
console.log(line);
process.exit(failed > 0 || run.status !== 0 ? 1 : 0);
