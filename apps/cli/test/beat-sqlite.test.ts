import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, it } from "vitest";
import { assertExactlyOnce, runHaScenario } from "./beat-ha.js";

const dir = mkdtempSync(join(tmpdir(), "celeriac-beat-sqlite-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("celeriac beat on SQLite: lease row in the broker file", () => {
  it("three replicas, leader SIGKILLed then the next SIGTERMed: every due second sent exactly once", async () => {
    const report = await runHaScenario(`sqlite:///${join(dir, "broker.db")}`, "beat-ha-sqlite");
    assertExactlyOnce("sqlite", report);
  }, 90_000);
});
