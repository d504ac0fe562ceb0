// The packaging check (scripts/check-packages.mjs) as part of the test run: what users get from
// the registry, tried from `npm pack` tarballs installed into empty folders. Every workspace
// package is covered, including ones added later, since the list comes from npm's workspaces.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
// Plain .mjs scripts, shared with `npm run packages:check` and `npm run packages:sync`.
import * as check from "../scripts/check-packages.mjs";
import { syncPackages } from "../scripts/sync-packages.mjs";
import { workspacePackages } from "../scripts/workspaces.mjs";

interface Packed {
  name: string;
  version: string;
  manifest: { exports?: Record<string, unknown> };
}

const libraries: string[] = (workspacePackages() as Packed[]).filter((p) => !("private" in p.manifest) && p.manifest.exports?.["."]).map((p) => p.name);
let base = "";
let packed: Packed[] = [];

describe("published packages, from their tarballs", () => {
  beforeAll(async () => {
    base = mkdtempSync(join(tmpdir(), "celeriac-packaging-"));
    packed = await check.packAll(base);
  }, 900_000);
  afterAll(() => {
    if (base) rmSync(base, { recursive: true, force: true });
  });

  it("every package follows the shared packaging rules (npm run packages:sync)", () => {
    expect(syncPackages({ write: false })).toEqual([]);
  });

  it("every tarball holds what its manifest names and passes publint and are-the-types-wrong", async () => {
    const problems: Record<string, string[]> = {};
    for (const pkg of packed) {
      const found = [...check.tarballProblems(pkg), ...(await check.publintProblems(pkg)), ...check.attwProblems(pkg)];
      if (found.length > 0) problems[pkg.name] = found;
    }
    expect(problems).toEqual({});
  }, 600_000);

  it.each(libraries)(
    "%s installs alone and loads from ESM, CommonJS and strict TypeScript (nodenext, commonjs)",
    (name) => {
      const dir = check.emptyDir(base, name);
      check.installInto(
        dir,
        check.closure(packed, name).map((p: { tarball: string }) => p.tarball),
      );
      const out = check.consumeLibrary(dir, name);
      const count = (label: string) => Number(/ (\d+)$/.exec(out[label])?.[1]);
      expect(count("tsNodenextEsm")).toBeGreaterThan(0);
      // The same exports whether the package is imported or required.
      expect(count("tsNodenextCjs")).toBe(count("tsNodenextEsm"));
      expect(count("tsCommonjs")).toBe(count("tsNodenextEsm"));
    },
    600_000,
  );

  it("the CLI installed alone prints its version, runs the demo without leftovers, and names what a feature needs", () => {
    const lines: string[] = check.checkCli(packed, base);
    expect(lines.join("\n")).toContain("all results correct");
    expect(lines.join("\n")).toMatch(/npm install @celeriac\/amqp/);
  }, 600_000);

  it("the README Quick start (examples/quick-start) runs as written: tsc, worker from the bin, producer prints 5", async () => {
    const q = await check.runQuickStart(packed, base);
    expect(q.producer, q.workerLog).toBe("5");
    expect(q.workerLog).toMatch(/\[\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}: INFO\/MainProcess\] Task tasks\.add\[[0-9a-f-]{36}\] succeeded in \d+\.\d{3}s: 5/);
    // SIGTERM, as a service manager sends it, reached the worker and it shut down warmly.
    expect(q.workerExit, q.workerLog).toBe(0);
  }, 600_000);
});
