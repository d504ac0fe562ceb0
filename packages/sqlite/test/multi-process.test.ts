import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, expect, it } from "vitest";
import { buildForChildren, type ChildBuild } from "../../../test-support/build-for-children.js";
import { createSqliteTransport } from "@celeriac/sqlite";

const root = fileURLToPath(new URL("../../../", import.meta.url));
const worker = fileURLToPath(new URL("./fixtures/consume-worker.mjs", import.meta.url));
const crasher = fileURLToPath(new URL("./fixtures/claim-and-die.mjs", import.meta.url));
let dir: string;
let build: ChildBuild;
let sqliteModule: string;

beforeAll(() => {
  // Child processes run plain Node, so they need compiled JS.
  build = buildForChildren(root, ["core", "sqlite"], "sqlite-mp");
  sqliteModule = build.modules["sqlite"]!;
  dir = mkdtempSync(join(tmpdir(), "celeriac-sqlite-mp-"));
});
afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
  build.cleanup();
});

function runWorker(file: string, queue: string): Promise<number[]> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [worker, sqliteModule, file, queue], { cwd: root, stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    let err = "";
    child.stdout.on("data", (b: Buffer) => (out += b.toString()));
    child.stderr.on("data", (b: Buffer) => (err += b.toString()));
    child.on("error", reject);
    child.on("exit", (code) => (code === 0 ? resolve(JSON.parse(out) as number[]) : reject(new Error(`worker exited ${code}: ${err}`))));
  });
}

it("three processes consume 2,000 messages from one file, each exactly once", async () => {
  const file = join(dir, "broker.db");
  const producer = createSqliteTransport({ path: file });
  const total = 2000;
  const publish = async (from: number, to: number) => {
    for (let n = from; n < to; n++) {
      await producer.publish("shared", {
        body: new TextEncoder().encode("[[], {}, {}]"),
        contentType: "application/json",
        contentEncoding: "utf-8",
        headers: { n },
        properties: {},
      });
    }
  };
  await publish(0, total / 2);
  const start = Date.now();
  const workers = [runWorker(file, "shared"), runWorker(file, "shared"), runWorker(file, "shared")];
  // The other half while the workers are claiming: writers and claimers contend for the lock.
  await publish(total / 2, total);
  const results = await Promise.all(workers);
  await producer.close();
  const all = results.flat();
  console.log(`multi-process: ${results.map((r) => r.length).join(" + ")} = ${all.length} messages in ${Date.now() - start} ms (incl. 1.5 s idle exit)`);
  expect(all.length).toBe(total);
  expect(new Set(all).size).toBe(total);
  // Every process got a share, so they really ran concurrently.
  for (const r of results) expect(r.length).toBeGreaterThan(0);
}, 60_000);

it("a message held by a process that died comes back after the visibility timeout", async () => {
  const file = join(dir, "crash.db");
  const t = createSqliteTransport({ path: file });
  await t.publish("q", {
    body: new TextEncoder().encode("[[], {}, {}]"),
    contentType: "application/json",
    contentEncoding: "utf-8",
    headers: { n: 42 },
    properties: {},
  });
  const spawned = Date.now();
  const held = await new Promise<string>((resolve, reject) => {
    const child = spawn(process.execPath, [crasher, sqliteModule, file, "q", "500"], { cwd: root, stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    let err = "";
    child.stdout.on("data", (b: Buffer) => (out += b.toString()));
    child.stderr.on("data", (b: Buffer) => (err += b.toString()));
    child.on("exit", (code) => (code === 3 ? resolve(out) : reject(new Error(`exit ${code}: ${err}`))));
  });
  expect(held).toBe("42");
  const died = Date.now();
  const c = t.consume(["q"], { prefetch: 1 });
  for await (const d of c) {
    expect(d.message.headers["n"]).toBe(42);
    expect(d.redelivered).toBe(true);
    expect(d.deliveryCount).toBe(2);
    await d.ack();
    break;
  }
  // Not before the dead holder's deadline: 500 ms after its claim, which came after `spawned`.
  expect(Date.now() - spawned).toBeGreaterThanOrEqual(500);
  expect(Date.now() - died).toBeLessThan(3000);
  await t.close();
}, 30_000);
