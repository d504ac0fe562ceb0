#!/usr/bin/env node
// SQLite drain rate: N no-op tasks written to a fresh file, then drained by the Celeriac worker
// (`celeriac worker`, a separate process) and by a Python Celery worker on kombu's sqla+sqlite
// transport (prefork, concurrency 2), in one run, on the same machine.
//   npm run build && node bench/sqlite-drain.mjs [--tasks 20000] [--concurrency 10]
//
// "Drained" is measured from outside by polling the file: the clock starts when the first
// message is taken and stops when none is left waiting (kombu hides a message when it takes it
// and never deletes it; Celeriac deletes on ack, and its time also waits for every ack).

import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Database from "better-sqlite3";
import { root } from "./lib/common.mjs";
import { startCeleriacWorker, startPythonWorker } from "./lib/procs.mjs";

const { createEnvelope, celeryJsonCodec } = await import(join(root, "packages/core/dist/index.js"));
const { createSqliteTransport } = await import(join(root, "packages/sqlite/dist/index.js"));

const arg = (name, dflt) => {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : dflt;
};
const N = arg("tasks", 20_000);
const CONCURRENCY = arg("concurrency", 10);

async function fill(path) {
  const transport = createSqliteTransport({ path });
  await transport.connect();
  const started = performance.now();
  for (let i = 0; i < N; i++) {
    const env = createEnvelope({ task: "bench.noop", id: crypto.randomUUID(), args: [i], headers: { ignoreResult: true } });
    await transport.publish("celery", celeryJsonCodec.encode(env));
  }
  const secs = (performance.now() - started) / 1000;
  await transport.close();
  return N / secs;
}

/** Polls the file until `done(db)`; returns seconds from the first taken message to done. */
async function measure(path, child, done) {
  const db = new Database(path, { readonly: true, fileMustExist: true });
  db.pragma("busy_timeout = 5000");
  const visible = db.prepare("SELECT count(*) AS n FROM kombu_message WHERE visible = 1");
  let start = null;
  let exited = false;
  child.once("exit", () => (exited = true));
  const deadline = Date.now() + 30 * 60_000;
  for (;;) {
    const now = performance.now();
    if (start === null && visible.get().n < N) start = now;
    if (start !== null && done(db)) {
      db.close();
      return (now - start) / 1000;
    }
    if (exited) throw new Error("worker exited before draining the queue");
    if (Date.now() > deadline) throw new Error("drain took over 30 minutes");
    await new Promise((r) => setTimeout(r, 10));
  }
}

async function celeriacWorker() {
  const path = join(mkdtempSync(join(tmpdir(), "bench-sqlite-ts-")), "q.db");
  const publishRate = await fill(path);
  const proc = startCeleriacWorker({ broker: `sqlite:///${path}`, concurrency: CONCURRENCY });
  const child = proc.child;
  const secs = await measure(path, child, (db) => db.prepare("SELECT count(*) AS n FROM kombu_message").get().n === 0);
  await proc.stop();
  return { name: `Celeriac worker (concurrency ${CONCURRENCY})`, secs, publishRate };
}

async function pythonWorker() {
  const path = join(mkdtempSync(join(tmpdir(), "bench-sqlite-py-")), "q.db");
  await fill(path);
  const proc = startPythonWorker({ broker: `sqla+sqlite:///${path}` });
  const child = proc.child;
  const secs = await measure(path, child, (db) => db.prepare("SELECT count(*) AS n FROM kombu_message WHERE visible = 1").get().n === 0);
  await proc.stop();
  return { name: "Python Celery 5.2.6 worker (prefork, concurrency 2)", secs };
}

console.log(`SQLite drain of ${N} no-op tasks, node ${process.version}, ${new Date().toISOString()}`);
const ts = await celeriacWorker();
const py = await pythonWorker();
const rate = (r) => N / r.secs;
console.log("");
console.log("| worker | drain time | tasks/s | ratio to Python |");
console.log("| --- | ---: | ---: | ---: |");
for (const r of [ts, py]) console.log(`| ${r.name} | ${r.secs.toFixed(2)} s | ${Math.round(rate(r))} | ${(rate(r) / rate(py)).toFixed(1)}x |`);
console.log(`\nCeleriac publish rate into SQLite (one awaited publish per task): ${Math.round(ts.publishRate)} tasks/s`);
