import { copyFileSync, mkdirSync, mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { createClient, createFileResultBackend } from "@celeriac/core";
import { sqliteTransportFromUrl } from "@celeriac/sqlite";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { buildForChildren, compileJsOnly, type ChildBuild } from "../../../test-support/build-for-children.js";
import { spawnCeleriacWorker, TS_TASKS, type SpawnedWorker } from "./cli-helpers.js";

const root = fileURLToPath(new URL("../../..", import.meta.url));
let build: ChildBuild;
let bin: string;

// The CLI and the packages it loads are compiled privately (test-support/build-for-children.ts),
// so the child runs this tree's code, whatever state the shared dist/ folders are in.
beforeAll(() => {
  build = buildForChildren(root, ["core", "worker", "sqlite", "schema", "metrics"], "cli-metrics");
  const out = join(build.dir, "node_modules", "@celeriac", "cli");
  mkdirSync(out, { recursive: true });
  copyFileSync(join(root, "apps", "cli", "package.json"), join(out, "package.json"));
  compileJsOnly(root, "apps/cli/tsconfig.build.json", join(out, "dist"));
  bin = join(out, "dist", "bin.js");
}, 180_000);
afterAll(() => build?.cleanup());

const startWorker = (args: string[]): SpawnedWorker => spawnCeleriacWorker(args, bin);

async function until<T>(what: string, check: () => T | null | undefined | Promise<T | null | undefined>, timeoutMs = 20_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await check();
    if (v !== null && v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

function sample(text: string, line: string): number | null {
  const found = text.split("\n").find((l) => l.startsWith(`${line} `));
  return found === undefined ? null : Number(found.slice(line.length + 1));
}

describe("celeriac worker --metrics-port", () => {
  it("serves Prometheus metrics that count what the worker ran", async () => {
    const dir = mkdtempSync(join(tmpdir(), "celeriac-cli-metrics-"));
    const brokerUrl = `sqlite:///${join(dir, "broker.db")}`;
    const results = join(dir, "results");
    const w = startWorker(["--broker", brokerUrl, "--result-backend", `file://${results}`, "--tasks", TS_TASKS, "-c", "2", "--metrics-port", "0"]);
    try {
      const url = await until("the metrics URL", () => {
        if (w.child.exitCode !== null) throw new Error(`worker exited early:\n${w.output()}`);
        return /celeriac worker metrics: (http:\/\/127\.0\.0\.1:\d+\/metrics)/.exec(w.output())?.[1];
      });

      const transport = sqliteTransportFromUrl(brokerUrl);
      const backend = createFileResultBackend({ directory: results });
      const client = createClient({ transport, resultBackend: backend });
      const sent = [];
      for (let i = 0; i < 4; i++) sent.push(await client.sendTask("ts.add", { args: [i, 1] }));
      for (let i = 0; i < 2; i++) sent.push(await client.sendTask("ts.fail", { args: ["boom"] }));
      // ts.fail rejects get() with its error; only its arrival matters here.
      for (const r of sent) await r.get({ timeoutMs: 20_000 }).catch(() => undefined);
      await transport.close();

      const text = await until("6 finished tasks", async () => {
        const res = await fetch(url);
        expect(res.status).toBe(200);
        const body = await res.text();
        const ok = sample(body, 'celeriac_tasks_finished_total{task="ts.add",state="succeeded"}');
        const failed = sample(body, 'celeriac_tasks_finished_total{task="ts.fail",state="failed"}');
        return ok === 4 && failed === 2 ? body : null;
      });
      expect(sample(text, 'celeriac_tasks_received_total{task="ts.add"}')).toBe(4);
      expect(sample(text, 'celeriac_tasks_received_total{task="ts.fail"}')).toBe(2);
      expect(sample(text, 'celeriac_task_runtime_seconds_count{task="ts.add"}')).toBe(4);
      expect(sample(text, "celeriac_tasks_in_flight")).toBe(0);
      expect(sample(text, "celeriac_worker_concurrency")).toBe(2);
      expect(text).toMatch(/^celeriac_worker_up\{hostname="[^"]+"\} 1$/m);
    } finally {
      if (w.child.exitCode === null) w.child.kill("SIGTERM");
    }
    expect(await w.exited, w.output()).toBe(0);
  }, 60_000);

  it("refuses a port that is not a number, before connecting anywhere", async () => {
    const w = startWorker(["--broker", "sqlite:///nonexistent-dir/x.db", "--tasks", TS_TASKS, "--metrics-port", "nine"]);
    expect(await w.exited).toBe(2);
    expect(w.output()).toContain('--metrics-port must be a port number 0..65535, got "nine"');
  });
});
