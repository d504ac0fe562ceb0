import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { celeriac } from "./cli-helpers.js";

const tmp = () => mkdtempSync(join(tmpdir(), "celeriac-cli-"));

describe("celeriac CLI", () => {
  it("lists Celery's commands in --help", async () => {
    const r = await celeriac(["--help"]);
    expect(r.code).toBe(0);
    for (const cmd of ["worker", "call", "purge", "demo"]) expect(r.stdout).toContain(cmd);
  });

  it("rejects an unknown scheme and bad JSON with a clear message and exit code 2", async () => {
    const bad = await celeriac(["call", "tasks.add", "--broker", "kafka://x"]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/unknown URL scheme "kafka"/);
    const json = await celeriac(["call", "tasks.add", "--args", "[1,", "--broker", `sqlite:///${join(tmp(), "x.db")}`]);
    expect(json.code).toBe(2);
    expect(json.stderr).toMatch(/--args is not valid JSON/);
  });

  it("takes the broker from CELERIAC_BROKER_URL, and purge counts what it deletes", async () => {
    const db = join(tmp(), "q.db");
    const env = { CELERIAC_BROKER_URL: `sqlite:///${db}` };
    for (let i = 0; i < 3; i++) expect((await celeriac(["call", "tasks.add", "--args", `[${i}, 1]`], { env })).code).toBe(0);
    const other = await celeriac(["call", "tasks.add", "-Q", "other"], { env });
    expect(other.code).toBe(0);
    const unconfirmed = await celeriac(["purge"], { env });
    expect(unconfirmed.code).toBe(1);
    const r = await celeriac(["purge", "-f"], { env });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain("Purged 3 messages");
    const again = await celeriac(["purge", "-f", "-Q", "celery,other"], { env });
    expect(again.stdout).toContain("Purged 1 message from 2");
  });

  it("demo runs producer and worker on SQLite and reports correct results", async () => {
    const r = await celeriac(["demo", "--count", "50", "--db", join(tmp(), "demo.db")], { timeoutMs: 90_000 });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/demo\.add\(2, 3\)\s+= 5/);
    expect(r.stdout).toContain('"report succeeded after 2 retries"');
    expect(r.stdout).toContain("FAILURE RangeError: division by zero");
    expect(r.stdout).toContain("50 tasks sent and completed");
    expect(r.stdout).toContain("all results correct");
    expect(r.stdout).toContain("Worker exited with code 0");
  }, 90_000);
});
