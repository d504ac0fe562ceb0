import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { createClient } from "@celeriac/core";
import { createSqliteResultBackend, createSqliteTransport } from "@celeriac/sqlite";
import { afterEach, describe, expect, it } from "vitest";
import { spawnCeleriacWorker, type SpawnedWorker } from "./cli-helpers.js";

// `celeriac worker` as users run it: the bin itself (apps/cli/bin/celeriac.js) as a child
// process that gets the signals, on the embedded SQLite broker. The bounds are behaviour, not
// speed: before, the process stayed up for the whole grace time after its work was done.

const CLI = fileURLToPath(new URL("../bin/celeriac.js", import.meta.url));
const TASKS = fileURLToPath(new URL("./fixtures/slow-tasks.mjs", import.meta.url));

let worker: SpawnedWorker | null = null;
afterEach(() => {
  if (worker && worker.child.exitCode === null) worker.child.kill("SIGKILL");
  worker = null;
});

async function waitFor(what: string, check: () => boolean, timeoutMs = 30_000): Promise<number> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}:\n${worker?.output() ?? ""}`);
    await new Promise((r) => setTimeout(r, 10));
  }
  return Date.now();
}

function setup(extra: string[] = []) {
  const dir = mkdtempSync(join(tmpdir(), "celeriac-shutdown-"));
  const broker = `sqlite:///${join(dir, "broker.db")}`;
  const results = join(dir, "results.db");
  const w = spawnCeleriacWorker(
    ["--broker", broker, "--result-backend", `sqlite:///${results}`, "--tasks", TASKS, "--log-format", "json", "-c", "4", "--shutdown-grace", "30", ...extra],
    CLI,
  );
  worker = w;
  const transport = createSqliteTransport({ path: join(dir, "broker.db") });
  const backend = createSqliteResultBackend({ path: results });
  const client = createClient({ transport, resultBackend: backend });
  const exitedAt = w.exited.then((code) => ({ code, at: Date.now() }));
  return {
    w,
    transport,
    backend,
    client,
    exitedAt,
    ready: () => waitFor("the worker to be ready", () => w.output().includes("celeriac worker ready")),
    async close() {
      await transport.close();
      await backend.close();
    },
  };
}

describe("celeriac worker shutdown (SQLite, the bin as a child process)", () => {
  it("a warm shutdown exits as soon as the task in flight finished, not after the 30 s grace", async () => {
    const s = setup();
    await s.ready();
    const r = await s.client.sendTask("slow.late", { args: [2000] });
    const started = await waitFor("the task to start", () => s.w.output().includes(`slow.late[${r.id}] received`));
    s.w.child.kill("SIGTERM");
    const { code, at } = await s.exitedAt;
    expect(code, s.w.output()).toBe(0);
    // Within 1 s of the task finishing (it started before `started`, so it ended by started + 2 s).
    expect(at - started).toBeLessThan(2000 + 1000);
    expect(s.w.output()).toContain(`slow.late[${r.id}] succeeded`);
    // The process emptied its event loop by itself rather than being pushed out.
    expect(s.w.output()).not.toContain("keeps the process alive");
    expect((await s.backend.get(r.id))?.status).toBe("SUCCESS");
    expect(await s.transport.purge("celery")).toBe(0);
    await s.close();
  });

  it("with nothing in flight, exits within 1 s of SIGTERM", async () => {
    const s = setup();
    await s.ready();
    const signalled = Date.now();
    s.w.child.kill("SIGTERM");
    const { code, at } = await s.exitedAt;
    expect(code, s.w.output()).toBe(0);
    expect(at - signalled).toBeLessThan(1000);
    expect(s.w.output()).not.toContain("keeps the process alive");
    await s.close();
  });

  it("a second signal is a cold shutdown: exits at once with code 3, late-ack messages back on the queue, early-acked ones WorkerLostError", async () => {
    const s = setup();
    await s.ready();
    const late = [await s.client.sendTask("slow.late", { args: [20_000] }), await s.client.sendTask("slow.late", { args: [20_000] })];
    const early = await s.client.sendTask("slow.early", { args: [20_000] });
    await waitFor("three tasks running", () => [...late, early].every((r) => s.w.output().includes(`[${r.id}] received`)));
    s.w.child.kill("SIGTERM");
    await waitFor("the warm shutdown", () => s.w.output().includes("worker stopping"));
    const second = Date.now();
    s.w.child.kill("SIGINT");
    const { code, at } = await s.exitedAt;
    expect(code, s.w.output()).toBe(3);
    expect(at - second).toBeLessThan(1000);
    expect(s.w.output()).toContain("cold shutdown");
    // The handlers ignored their signal; the process did not wait for them, nor stored or acked anything of theirs.
    for (const r of late) expect(await s.backend.get(r.id)).toBeNull();
    expect(await s.backend.get(early.id)).toMatchObject({ status: "FAILURE", result: { exc_type: "WorkerLostError" } });
    expect(await s.transport.purge("celery")).toBe(2);
    await s.close();
  });
});
