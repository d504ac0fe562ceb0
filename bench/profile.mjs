#!/usr/bin/env node
// Where the worker's time goes on the consume -> run -> ack path: fills a private broker with N
// no-op tasks, drains them with `celeriac worker` under `node --cpu-prof`, and prints the
// worker's self time split by category (socket writes, GC, decode, promise/async hooks, user
// code, idle, ...) and the functions that cost most.
//   npx turbo run build && node bench/profile.mjs [--transport amqp|redis|sqs|sqlite] [--tasks 20000]
//     [--concurrency 10] [--prefetch-multiplier 4] [--keep DIR]   (--keep: leave the .cpuprofile there, for Chrome DevTools)
//     [--no-profile]                    (only the drain rate and the worker's RSS once drained)
//     [--idle-seconds N]                (and its RSS after N s idle)
// The window is the drain: samples before the worker handled its first message and after the
// queue was empty are left out.

import { spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { CLI, CLI_NODE_FLAGS } from "./lib/common.mjs";

const root = fileURLToPath(new URL("..", import.meta.url));
const arg = (name, dflt) => {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : dflt;
};
const TRANSPORT = arg("transport", "amqp");
const N = Number(arg("tasks", 20_000));
const CONCURRENCY = Number(arg("concurrency", 10));
const KEEP = arg("keep", null);
const PROFILE = !process.argv.includes("--no-profile");
const QUEUE = "bench-profile";
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const dist = (pkg) => import(pathToFileURL(join(root, "packages", pkg, "dist/index.js")).href);
const { createEnvelope, celeryJsonCodec } = await dist("core");
const noop = (i) => celeryJsonCodec.encode(createEnvelope({ task: "bench.noop", id: crypto.randomUUID(), args: [i], headers: { ignoreResult: true } }));

/** Starts the broker, fills the queue; returns the worker's broker URL, a "drained?" probe and a stop. */
async function prepare() {
  if (TRANSPORT === "amqp") {
    const { startRabbit } = await import("./lib/support.mjs");
    const node = await startRabbit();
    const { createAmqpTransport } = await dist("amqp");
    const t = createAmqpTransport({ url: node.url });
    await t.connect();
    let next = 0;
    await Promise.all(
      Array.from({ length: 200 }, async () => {
        while (next < N) await t.publish(QUEUE, noop(next++));
      }),
    );
    await t.close();
    const { connect } = await import("amqplib");
    const conn = await connect(node.url.replace(/\/\/?$/, "/%2F"));
    const ch = await conn.createChannel();
    return {
      url: node.url,
      // Ready and unacked: the consumer's count is 0 only once every ack reached the broker.
      drained: async () =>
        (await ch.checkQueue(QUEUE)).messageCount === 0 && new RegExp(`^${QUEUE}\\t0$`, "m").test(await node.ctl("list_queues", "-q", "name", "messages")),
      stop: async () => {
        await conn.close();
        await node.shutdown();
      },
    };
  }
  if (TRANSPORT === "redis") {
    const { startRedis, fill } = await import(pathToFileURL(join(root, "bench/redis-common.mjs")).href);
    const server = await startRedis();
    await fill(server.url(0), N, QUEUE);
    const { Redis } = await import("ioredis");
    const r = new Redis(server.url(0));
    return {
      url: server.url(0),
      drained: async () => (await r.llen(QUEUE)) === 0 && (await r.hlen("unacked")) === 0,
      stop: async () => {
        r.disconnect();
        server.stop();
      },
    };
  }
  if (TRANSPORT === "sqlite") {
    const dir = mkdtempSync(join(tmpdir(), "celeriac-profile-"));
    const path = join(dir, "broker.sqlite");
    const { createSqliteTransport } = await dist("sqlite");
    const t = createSqliteTransport({ path });
    await t.connect();
    for (let i = 0; i < N; i++) await t.publish(QUEUE, noop(i));
    await t.close();
    const Database = (await import("better-sqlite3")).default;
    const db = new Database(path, { readonly: true });
    db.pragma("busy_timeout = 5000");
    const left = db.prepare("SELECT count(*) AS n FROM kombu_message");
    return {
      url: `sqlite:///${path}`,
      drained: async () => left.get().n === 0,
      stop: async () => {
        db.close();
        rmSync(dir, { recursive: true, force: true });
      },
    };
  }
  if (TRANSPORT === "sqs") {
    const { startSqsEmulator } = await import(pathToFileURL(join(root, "test-support/sqs-emulator.mjs")).href);
    const emulator = await startSqsEmulator();
    const { createSqsTransport } = await dist("sqs");
    const { GetQueueAttributesCommand } = await import("@aws-sdk/client-sqs");
    const t = createSqsTransport({ endpoint: emulator.endpoint, region: "us-east-1", credentials: { accessKeyId: "bench", secretAccessKey: "bench" } });
    await t.connect();
    let next = 0;
    await Promise.all(
      Array.from({ length: 50 }, async () => {
        while (next < N) await t.publish(QUEUE, noop(next++));
      }),
    );
    const url = await t.queueUrl(QUEUE);
    return {
      url: `sqs://bench:bench@127.0.0.1:${emulator.port}`,
      drained: async () => {
        const r = await t.client.send(new GetQueueAttributesCommand({ QueueUrl: url, AttributeNames: ["ApproximateNumberOfMessages"] }));
        return Number(r.Attributes.ApproximateNumberOfMessages) === 0;
      },
      stop: async () => {
        await t.close();
        await emulator.close();
      },
    };
  }
  throw new Error(`--transport must be amqp, redis, sqs or sqlite, got ${TRANSPORT}`);
}

// ---- reading the profile ------------------------------------------------------------------------

/** The category of a sampled function, from its name and script. */
function categorize(frame) {
  const fn = frame.functionName;
  const url = frame.url;
  if (fn === "(idle)") return "idle";
  if (fn === "(garbage collector)") return "GC";
  if (fn === "(program)") return "native (program)";
  if (/noop-tasks/.test(url)) return "user code";
  if (/async_hooks|promise_hooks|AsyncLocalStorage|AsyncResource/.test(url + fn) || /^emit(Init|Before|After|Destroy|PromiseResolve)/.test(fn))
    return "promise/async hooks";
  if (
    /writev|writeBuffer|writeGeneric|writeUtf8String|_write$|doWrite|writeOrBuffer|handleWriteReq/.test(fn) ||
    /stream_base_commons|internal\/streams\/writable|node:net/.test(url)
  )
    return "socket writes";
  if (/onStreamRead|readableAddChunk|internal\/streams\/readable|addChunk/.test(fn + url)) return "socket reads";
  if (/codec|kombu-envelope|py-json|celery-json|decodeTask|fromAmqpMessage|parseKombuEnvelope/.test(url + fn) || fn === "parse" || fn === "stringify")
    return "decode/encode";
  if (/amqplib|ioredis|redis-parser|@aws-sdk|@smithy|better-sqlite3/.test(url)) return "broker client";
  if (/packages\/worker/.test(url)) return "worker";
  if (/packages\/(amqp|redis|sqs|sqlite)\//.test(url)) return "transport";
  if (/packages\/core/.test(url)) return "core";
  if (/^node:|^internal/.test(url) || url === "") return "node internals";
  return "other";
}

function summarize(profile) {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const parent = new Map();
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const inWorker = (id) => {
    for (let cur = id; cur !== undefined; cur = parent.get(cur)) {
      const f = byId.get(cur).callFrame;
      if (/packages\/worker/.test(f.url) && (f.functionName === "dispatch" || f.functionName === "handle")) return true;
    }
    return false;
  };
  // The drain starts at the first sample inside the worker's message handling.
  let first = profile.samples.findIndex((id) => inWorker(id));
  if (first < 0) first = 0;
  const cats = new Map();
  const fns = new Map();
  let total = 0;
  for (let i = first; i < profile.samples.length; i++) {
    const dt = (profile.timeDeltas[i + 1] ?? 0) / 1000;
    const frame = byId.get(profile.samples[i]).callFrame;
    const cat = categorize(frame);
    cats.set(cat, (cats.get(cat) ?? 0) + dt);
    const key = `${frame.functionName || "(anonymous)"} ${frame.url.replace(/^.*\/(packages|node_modules)\//, "$1/").replace(/^file:\/\//, "")}:${frame.lineNumber + 1}`;
    fns.set(key, (fns.get(key) ?? 0) + dt);
    total += dt;
  }
  const idle = cats.get("idle") ?? 0;
  const busy = total - idle;
  return { cats: [...cats].sort((a, b) => b[1] - a[1]), fns: [...fns].sort((a, b) => b[1] - a[1]), total, busy, idle };
}

// ---- run --------------------------------------------------------------------------------------------

const broker = await prepare();
const profDir = KEEP ?? mkdtempSync(join(tmpdir(), "celeriac-cpuprof-"));
mkdirSync(profDir, { recursive: true });
const child = spawn(
  process.execPath,
  [
    ...CLI_NODE_FLAGS,
    ...(PROFILE ? ["--cpu-prof", "--cpu-prof-dir", profDir] : []),
    CLI,
    "worker",
    "--broker",
    broker.url,
    "--result-backend",
    "none",
    "--tasks",
    join(root, "bench/noop-tasks.mjs"),
    "-Q",
    QUEUE,
    "-c",
    String(CONCURRENCY),
    ...(arg("prefetch-multiplier", null) ? ["--prefetch-multiplier", arg("prefetch-multiplier", null)] : []),
    "-q",
  ],
  { stdio: ["ignore", "inherit", "inherit"] },
);
const exited = new Promise((r) => child.once("exit", r));
const started = performance.now();
for (;;) {
  if (child.exitCode !== null) throw new Error("the worker exited before draining the queue");
  if (await broker.drained()) break;
  await sleep(20);
}
const secs = (performance.now() - started) / 1000;
// Resident set of the worker once the queue is empty (a leak per task shows here).
const rssNow = () => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${child.pid}/status`, "utf8"))?.[1] ?? NaN) / 1024;
const rssMb = rssNow();
// --idle-seconds N: RSS again after N seconds without work (V8 gives unused heap back when idle).
const IDLE_S = Number(arg("idle-seconds", 0));
let idleNote = "";
if (IDLE_S > 0) {
  await sleep(IDLE_S * 1000);
  idleNote = `; after ${IDLE_S} s idle ${rssNow().toFixed(1)} MB`;
}
child.kill("SIGTERM");
await exited;
await broker.stop();

console.log(
  `${TRANSPORT}: ${N} no-op tasks, -c ${CONCURRENCY}, drained in ${secs.toFixed(2)} s from worker launch (${(N / secs).toFixed(0)} tasks/s); worker RSS once drained ${rssMb.toFixed(1)} MB${idleNote}`,
);
if (!PROFILE) process.exit(0);
const file = readdirSync(profDir).find((f) => f.endsWith(".cpuprofile"));
if (!file) throw new Error(`no .cpuprofile in ${profDir}: did the worker exit cleanly?`);
const s = summarize(JSON.parse(readFileSync(join(profDir, file), "utf8")));
if (!KEEP) rmSync(profDir, { recursive: true, force: true });

const pct = (ms, of) => `${((100 * ms) / of).toFixed(1)}%`;
console.log(`profiled drain window ${s.total.toFixed(0)} ms: busy ${s.busy.toFixed(0)} ms, idle ${s.idle.toFixed(0)} ms (${pct(s.idle, s.total)})\n`);
console.log("| category | self ms | % of busy |\n|---|---:|---:|");
for (const [cat, ms] of s.cats) if (cat !== "idle") console.log(`| ${cat} | ${ms.toFixed(0)} | ${pct(ms, s.busy)} |`);
console.log("\nTop functions by self time (idle left out):");
for (const [fn, ms] of s.fns.filter(([k]) => !k.startsWith("(idle)")).slice(0, 15))
  console.log(`  ${ms.toFixed(0).padStart(6)} ms  ${pct(ms, s.busy).padStart(6)}  ${fn}`);
if (KEEP) console.log(`\nprofile: ${join(profDir, file)}`);
