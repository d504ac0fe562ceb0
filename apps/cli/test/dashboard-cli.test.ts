import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { loadDashboard } from "../src/commands/dashboard.js";
import { BIN, celeriac } from "./cli-helpers.js";

describe("celeriac dashboard", () => {
  it("refuses to start without a broker, or off loopback without auth", async () => {
    const none = await celeriac(["dashboard"]);
    expect(none.code).toBe(2);
    expect(none.stderr).toContain("give --broker");
    const open = await celeriac(["dashboard", "-b", "memory://", "--address", "0.0.0.0", "-p", "0"]);
    expect(open.code).toBe(2);
    expect(open.stderr).toMatch(/--basic-auth.*--auth-token/);
    const bad = await celeriac(["dashboard", "-b", "memory://", "--max-tasks", "0"]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain("--max-tasks must be a positive integer");
  });

  it("says which package to install when @celeriac/dashboard is missing, and passes other errors on", async () => {
    const missing = Object.assign(new Error("Cannot find package '@celeriac/dashboard' imported from /x/bin.js"), { code: "ERR_MODULE_NOT_FOUND" });
    await expect(loadDashboard(() => Promise.reject(missing))).rejects.toThrow("npm install @celeriac/dashboard");
    const other = new Error("boom inside the package");
    await expect(loadDashboard(() => Promise.reject(other))).rejects.toBe(other);
  });

  it("serves the page and Flower's API on the SQLite broker, says it has no events, and stops on SIGTERM", async () => {
    const dir = mkdtempSync(join(tmpdir(), "cli-dash-"));
    const child = spawn(process.execPath, [BIN, "dashboard", "-b", `sqlite:///${join(dir, "b.db")}`, "-p", "0", "--read-only", "-Q", "celery,reports"], {
      env: { ...process.env, CELERIAC_BROKER_URL: "", CELERIAC_DASHBOARD_TOKEN: "" },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let out = "";
    child.stdout.on("data", (d: Buffer) => (out += d.toString()));
    child.stderr.on("data", (d: Buffer) => (out += d.toString()));
    const exited = new Promise<number | null>((r) => child.once("exit", (code) => r(code)));
    try {
      const deadline = Date.now() + 20_000;
      let url: string | undefined;
      while (!(url = /celeriac dashboard: (http:\/\/127\.0\.0\.1:\d+)/.exec(out)?.[1])) {
        if (child.exitCode !== null || Date.now() > deadline) throw new Error(`dashboard did not start:\n${out}`);
        await new Promise((r) => setTimeout(r, 50));
      }
      expect(out).toContain("no Celery events and no remote control");
      expect(out).toContain("read-only");
      expect(await (await fetch(`${url}/healthcheck`)).text()).toBe("OK");
      expect(await (await fetch(`${url}/api/queues/length`)).json()).toEqual({
        active_queues: [
          { name: "celery", messages: 0 },
          { name: "reports", messages: 0 },
        ],
      });
      expect((await fetch(`${url}/`)).headers.get("content-type")).toContain("text/html");
      child.kill("SIGTERM");
      expect(await exited).toBe(0);
    } finally {
      if (child.exitCode === null) child.kill("SIGKILL");
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
