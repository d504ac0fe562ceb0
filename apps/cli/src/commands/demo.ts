import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { CeleriacError, createClient, TaskFailedError, type AsyncResult } from "@celeriac/core";
import { pyRepr } from "@celeriac/core/transport";
import { add, divide, flaky, multiply, wordCount } from "../demo-tasks.js";
import { openConnections } from "../config.js";
import { progressBar } from "../progress.js";

const here = (p: string) => fileURLToPath(new URL(p, import.meta.url));

function startWorker(brokerUrl: string): ChildProcess {
  const child = spawn(
    process.execPath,
    [here("../bin.js"), "worker", "--broker", brokerUrl, "--tasks", here("../demo-tasks.js"), "--concurrency", "8", "--quiet"],
    { stdio: ["ignore", "inherit", "inherit"] },
  );
  return child;
}

async function show(label: string, result: AsyncResult<unknown>, started = Date.now()): Promise<void> {
  try {
    const value = await result.get({ timeoutMs: 30_000 });
    const took = ((Date.now() - started) / 1000).toFixed(2);
    console.log(`  ${label.padEnd(44)} = ${JSON.stringify(value)}  (${took} s)`);
  } catch (err) {
    if (err instanceof TaskFailedError) console.log(`  ${label.padEnd(44)} ! FAILURE ${err.excType}: ${err.excMessage.join(", ")}`);
    else throw err;
  }
}

/** `celeriac demo`: a worker process and a producer on one SQLite file, no server anywhere. */
export async function demoCommand(opts: { db?: string; count: string }): Promise<void> {
  const count = Number(opts.count);
  if (!Number.isInteger(count) || count < 0) throw new CeleriacError("invalid_argument", "--count must be a non-negative integer");
  // A folder of our own, removed at the end: runs of the demo leave nothing behind.
  const tempDir = opts.db === undefined ? mkdtempSync(join(tmpdir(), "celeriac-demo-")) : null;
  const db = opts.db ?? join(tempDir!, "celeriac.db");
  const brokerUrl = `sqlite:///${db}`;
  console.log(`Celeriac demo: producer and worker share the SQLite file ${db} (no server).`);

  const conn = await openConnections({ broker: brokerUrl });
  const client = createClient({ transport: conn.transport, ...(conn.resultBackend ? { resultBackend: conn.resultBackend } : {}) });
  const worker = startWorker(brokerUrl);
  const workerExited = new Promise<number | null>((r) => worker.on("exit", (code) => r(code)));
  console.log(`Started a worker process (pid ${worker.pid}) consuming queue "celery".\n`);
  console.log("Tasks sent and their results:");
  try {
    await show("demo.add(2, 3)", await client.send(add, [2, 3]));
    await show("demo.multiply(6, 7)", await client.send(multiply, [6, 7]));
    const text = "the quick brown fox jumps over the lazy dog the end";
    await show(`demo.word_count(text=${pyRepr(text.slice(0, 16))}...)`, await client.applyAsync(wordCount, { kwargs: { text } }));
    const t0 = Date.now();
    await show("demo.add(40, 2) with countdown 1 s", await client.send(add, [40, 2], { countdownMs: 1000 }), t0);
    await show('demo.flaky("report"), retried twice', await client.send(flaky, ["report"]));
    await show("demo.divide(1, 0)", await client.send(divide, [1, 0]));

    if (count > 0) {
      console.log(`\nA batch of ${count} demo.add tasks:`);
      const started = Date.now();
      const bar = progressBar(count, "sent");
      const results: AsyncResult<number>[] = [];
      for (let i = 0; i < count; i++) {
        results.push(await client.send(add, [i, i]));
        bar.tick();
      }
      bar.done();
      const done = progressBar(count, "done");
      let wrong = 0;
      for (let i = 0; i < count; i++) {
        if ((await results[i]!.get({ timeoutMs: 60_000 })) !== i + i) wrong++;
        done.tick();
      }
      done.done();
      const secs = (Date.now() - started) / 1000;
      console.log(
        `  ${count} tasks sent and completed in ${secs.toFixed(2)} s (${Math.round(count / secs)} tasks/s), ${wrong === 0 ? "all results correct" : `${wrong} WRONG`}`,
      );
      if (wrong > 0) process.exitCode = 1;
    }
  } finally {
    console.log("\nStopping the worker with SIGTERM (warm shutdown) ...");
    worker.kill("SIGTERM");
    const code = await workerExited;
    console.log(`Worker exited with code ${code}. Done.`);
    await client.close();
    await conn.close();
    if (tempDir) rmSync(tempDir, { recursive: true, force: true });
  }
}
