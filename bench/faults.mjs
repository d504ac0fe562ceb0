#!/usr/bin/env node
// The fault suite: what users meet, reproduced at scale against private brokers, with workers
// run through the real CLI (apps/cli/bin/celeriac.js) and a tasks module that records every
// execution (bench/fault-tasks.mjs). Not part of the CI run.
//
//   npm run build && node bench/faults.mjs --transport amqp|redis|sqs|sqlite [--case name] [--scale N]
//   npm run bench:faults -- --transport redis --scale 0.2
//
// Cases: kill (SIGKILL of a worker mid-batch, late ack), kill3 (three workers, six random
// SIGKILLs), restart (broker stop/start, and for RabbitMQ stop_app/start_app plus kill -9 of the
// node, under publish and consume), malformed (a flood of bad messages of many kinds mixed with
// good ones), memory (RSS after a burst and after idle), secrets (a password with a raw `@`
// against a refusing broker: no fragment of it in any output line).
// Each case prints sent / executed / lost / duplicated / refused / recovery / RSS, and a JSON
// line per case at the end for docs/reliability.md.
import { spawn, spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { register } from "node:module";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

register("./lib/ts-hooks.mjs", import.meta.url);

const root = fileURLToPath(new URL("..", import.meta.url));
const CLI = join(root, "apps/cli/bin/celeriac.js");
const TASKS = join(root, "bench/fault-tasks.mjs");
const dist = (p) => import(pathToFileURL(join(root, p)).href);
const { createClient, transportFromUrl } = await dist("packages/core/dist/index.js");

const argv = process.argv.slice(2);
const arg = (name, dflt) => {
  const i = argv.indexOf(`--${name}`);
  return i >= 0 ? argv[i + 1] : dflt;
};
const TRANSPORT = arg("transport");
const ONLY = arg("case");
const SCALE = Number(arg("scale", 1));
const CASES = ["kill", "kill3", "restart", "malformed", "memory", "secrets"];
if (!["amqp", "redis", "sqs", "sqlite"].includes(TRANSPORT) || (ONLY && !CASES.includes(ONLY)) || !(SCALE > 0)) {
  process.stderr.write(`usage: node bench/faults.mjs --transport amqp|redis|sqs|sqlite [--case ${CASES.join("|")}] [--scale N]\n`);
  process.exit(2);
}
if (!existsSync(join(root, "apps/cli/dist/bin.js"))) {
  process.stderr.write("faults: build first (npm run build)\n");
  process.exit(2);
}
const n = (x) => Math.max(10, Math.round(x * SCALE));
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const dir = mkdtempSync(join(tmpdir(), "celeriac-faults-"));
const cleanups = [];
let seq = 0;

// ---- brokers ---------------------------------------------------------------------------------
/** { url(extra), publisherUrl, restart(kind), stop(), extra } for the chosen transport. */
async function startBroker() {
  if (TRANSPORT === "sqlite") {
    const file = join(dir, "broker.db");
    return { url: () => `sqlite:///${file}?visibility_timeout=10`, restarts: [], async stop() {} };
  }
  if (TRANSPORT === "redis") {
    const { startRedisServer } = await import("../test-support/redis.ts");
    const r = await startRedisServer();
    return {
      url: () => `${r.url(0)}?visibility_timeout=10`,
      server: r,
      restarts: [
        {
          name: "redis SHUTDOWN SAVE + start",
          async run() {
            await r.stop({ save: true });
            await sleep(2000);
            await r.start();
          },
        },
      ],
      stop: () => r.dispose(),
    };
  }
  if (TRANSPORT === "amqp") {
    const { startRabbit } = await import("../test-support/rabbitmq.ts");
    const rabbit = await startRabbit();
    return {
      url: () => rabbit.url,
      rabbit,
      restarts: [
        {
          name: "rabbitmqctl stop_app / start_app",
          async run() {
            await rabbit.ctl("stop_app");
            await sleep(3000);
            await rabbit.ctl("start_app");
          },
        },
        {
          name: "kill -9 of the node, then start",
          async run() {
            const pid = Number((await rabbit.ctl("eval", "list_to_integer(os:getpid()).")).trim());
            process.kill(pid, "SIGKILL");
            await sleep(2000);
            await rabbit.start();
          },
        },
      ],
      stop: () => rabbit.shutdown(),
    };
  }
  const { startSqsEmulator } = await import("../test-support/sqs-emulator.mjs");
  const emu = await startSqsEmulator();
  return {
    url: () => `sqs://test:test@${emu.endpoint.replace(/^http:\/\//, "")}?region=us-east-1&visibility_timeout=10&wait_time_seconds=1`,
    emulator: emu,
    restarts: [{ name: "SQS endpoint restart (loses every queue and message)", lossy: true, run: () => emu.restart({ downMs: 2000 }) }],
    stop: () => emu.close(),
  };
}

// ---- workers through the CLI -----------------------------------------------------------------
function startWorker(url, queue, record, { concurrency = 10, extra = [] } = {}) {
  const log = join(dir, `worker-${++seq}.log`);
  // A SQLite broker URL is also the default result backend, which takes none of the broker's parameters.
  const results = url.startsWith("sqlite:") ? ["--result-backend", `sqlite:///${join(dir, "results.db")}`] : [];
  const child = spawn(
    process.execPath,
    [CLI, "worker", "--broker", url, "--tasks", TASKS, "-Q", queue, "-c", String(concurrency), "--log-format", "json", ...results, ...extra],
    {
      env: { ...process.env, FAULTS_RECORD: record, CELERIAC_BROKER_URL: "", CELERIAC_RESULT_BACKEND: "" },
      stdio: ["ignore", "pipe", "pipe"],
    },
  );
  let out = "";
  child.stdout.on("data", (d) => (out += d));
  child.stderr.on("data", (d) => (out += d));
  const exited = new Promise((r) => child.once("exit", (code, signal) => r({ code, signal })));
  const w = {
    child,
    output: () => out,
    exited,
    rssMb() {
      try {
        const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${child.pid}/status`, "utf8"));
        return m ? Math.round(Number(m[1]) / 1024) : null;
      } catch {
        return null;
      }
    },
    async kill(signal = "SIGKILL") {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill(signal);
      await exited;
    },
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return exited;
      child.kill("SIGTERM");
      const t = setTimeout(() => child.kill("SIGKILL"), 40_000);
      const r = await exited;
      clearTimeout(t);
      writeFileSync(log, out);
      return r;
    },
  };
  cleanups.push(() => w.kill());
  return w;
}

const readIds = (file) => (existsSync(file) ? readFileSync(file, "utf8").split("\n").filter(Boolean) : []);

function tally(sentIds, file) {
  const ran = readIds(file);
  const counts = new Map();
  for (const id of ran) counts.set(id, (counts.get(id) ?? 0) + 1);
  const sent = new Set(sentIds);
  let lost = 0;
  for (const id of sent) if (!counts.has(id)) lost++;
  let duplicated = 0;
  for (const [id, c] of counts) if (sent.has(id) && c > 1) duplicated += c - 1;
  return { sent: sent.size, executed: [...counts.keys()].filter((id) => sent.has(id)).length, lost, duplicated };
}

async function waitUntil(cond, timeoutMs) {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) return false;
    await sleep(200);
  }
  return true;
}

async function sendMany(client, count, args = [], name = "faults.record") {
  const ids = [];
  const batch = 200;
  for (let i = 0; i < count; i += batch) {
    const rs = await Promise.all(Array.from({ length: Math.min(batch, count - i) }, () => client.sendTask(name, { args })));
    for (const r of rs) ids.push(r.id);
  }
  return ids;
}

async function producer(url, queue) {
  const transport = await transportFromUrl(url);
  await transport.connect();
  const client = createClient({ transport, defaultQueue: queue });
  return { transport, client, close: () => transport.close() };
}

const results = [];
function report(name, row) {
  const r = { transport: TRANSPORT, case: name, scale: SCALE, ...row };
  results.push(r);
  const cols = ["sent", "executed", "lost", "duplicated", "refused", "recoveryS", "rssMb"].map((k) => `${k} ${r[k] ?? "-"}`);
  process.stdout.write(`${TRANSPORT.padEnd(6)} ${name.padEnd(24)} ${cols.join("  ")}${r.note ? `  (${r.note})` : ""}\n`);
}

// ---- cases -------------------------------------------------------------------------------------
async function caseKill(broker) {
  const queue = `faults-kill-${Date.now()}`;
  const record = join(dir, `${queue}.ids`);
  const total = n(5000);
  const p = await producer(broker.url(), queue);
  const ids = await sendMany(p.client, total);
  await p.close();
  const w1 = startWorker(broker.url(), queue, record);
  await waitUntil(() => readIds(record).length >= total * 0.3, 300_000);
  await w1.kill("SIGKILL");
  const killedAt = Date.now();
  const w2 = startWorker(broker.url(), queue, record);
  const done = await waitUntil(() => new Set(readIds(record)).size >= total, 300_000);
  const recoveryS = ((Date.now() - killedAt) / 1000).toFixed(1);
  const rssMb = w2.rssMb();
  await w2.stop();
  report("kill (1 worker, SIGKILL)", {
    ...tally(ids, record),
    recoveryS: done ? recoveryS : `>${recoveryS}`,
    rssMb,
    note: `SIGKILL after ${Math.round(total * 0.3)} of ${total}`,
  });
}

async function caseKill3(broker) {
  const queue = `faults-kill3-${Date.now()}`;
  const record = join(dir, `${queue}.ids`);
  const total = n(10_000);
  const p = await producer(broker.url(), queue);
  const ids = await sendMany(p.client, total);
  await p.close();
  const workers = [0, 1, 2].map(() => startWorker(broker.url(), queue, record));
  // Six kills spread over the run, each at a random worker, each replaced at once.
  const seed = 42;
  let rnd = seed;
  const random = () => (rnd = (rnd * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
  for (let k = 1; k <= 6; k++) {
    await waitUntil(() => readIds(record).length >= (total * k) / 8, 300_000);
    const i = Math.floor(random() * 3);
    await workers[i].kill("SIGKILL");
    workers[i] = startWorker(broker.url(), queue, record);
  }
  const lastKill = Date.now();
  const done = await waitUntil(() => new Set(readIds(record)).size >= total, 300_000);
  const recoveryS = ((Date.now() - lastKill) / 1000).toFixed(1);
  const rssMb = Math.max(...workers.map((w) => w.rssMb() ?? 0));
  await Promise.all(workers.map((w) => w.stop()));
  report("kill3 (3 workers, 6 kills)", { ...tally(ids, record), recoveryS: done ? recoveryS : `>${recoveryS}`, rssMb });
}

async function caseRestart(broker) {
  if (broker.restarts.length === 0) return report("restart", { note: "no broker process (embedded SQLite file)" });
  for (const restart of broker.restarts) {
    const queue = `faults-restart-${Date.now()}`;
    const record = join(dir, `${queue}.ids`);
    const total = n(10_000);
    const w = startWorker(broker.url(), queue, record);
    const p = await producer(broker.url(), queue);
    const confirmed = [];
    /** Confirmed once the broker was back: what a restart that lost its data must still run. */
    const confirmedAfter = [];
    let failed = 0;
    let restartedAt = 0;
    let upAt = 0;
    // Publish at a steady pace over about 20 s, so publishes straddle the outage.
    const batches = Math.ceil(total / 50);
    const publishing = (async () => {
      for (let i = 0; i < total; i += 50) {
        const rs = await Promise.allSettled(Array.from({ length: Math.min(50, total - i) }, () => p.client.sendTask("faults.record", { args: [5] })));
        for (const r of rs) {
          if (r.status === "fulfilled") (upAt > 0 ? confirmedAfter : confirmed).push(r.value.id);
          else failed++;
        }
        await sleep(20_000 / batches);
      }
    })();
    await sleep(6000);
    const before = readIds(record).length;
    restartedAt = Date.now();
    await restart.run();
    upAt = Date.now();
    // Executions resuming after the broker came back mark the recovery (what ran meanwhile was
    // prefetched before the outage).
    const atUp = readIds(record).length;
    const recovered = await waitUntil(() => readIds(record).length > atUp + 50, 120_000);
    const recoveryS = recovered ? ((Date.now() - upAt) / 1000).toFixed(1) : "never";
    await publishing;
    const all = [...confirmed, ...confirmedAfter];
    await waitUntil(() => new Set(readIds(record)).size >= (restart.lossy ? before + confirmedAfter.length : all.length), 120_000);
    await sleep(2000);
    const rssMb = w.rssMb();
    const outages = w
      .output()
      .split("\n")
      .filter((l) => /broker connection (lost|restored)|reconnecting/i.test(l)).length;
    await p.close();
    await w.stop();
    const after = tally(confirmedAfter, record);
    report(`restart: ${restart.name}`, {
      ...tally(all, record),
      recoveryS,
      rssMb,
      note:
        `${failed} publishes failed and were reported to the caller; of ${after.sent} confirmed after the restart ${after.lost} lost; ` +
        `${outages} outage log lines; down ${((upAt - restartedAt) / 1000).toFixed(1)} s${restart.lossy ? "; the endpoint itself lost what it held when it restarted" : ""}`,
    });
  }
}

/** Messages that must be refused, each kind built from a good envelope. */
function badKinds() {
  const good = (id) => ({
    headers: {
      lang: "py",
      task: "faults.record",
      id,
      root_id: id,
      parent_id: null,
      group: null,
      retries: 0,
      eta: null,
      expires: null,
      timelimit: [null, null],
      argsrepr: "()",
      kwargsrepr: "{}",
      origin: "faults",
    },
    body: JSON.stringify([[], {}, { callbacks: null, errbacks: null, chain: null, chord: null }]),
    contentType: "application/json",
  });
  const pickleCommand = (marker) => Buffer.from(`cos\nsystem\n(S'touch ${marker}'\ntR.`, "latin1");
  return {
    "garbage eta": (id) => ({ ...good(id), headers: { ...good(id).headers, eta: "not-a-date" } }),
    "garbage expires": (id) => ({ ...good(id), headers: { ...good(id).headers, expires: "garbage" } }),
    // An object is the wrong shape unless it holds "args": Celery 5.2.6 runs {"args": ..., "kwargs": ...}
    // as a hybrid protocol 1/2 body (worker/strategy.py hybrid_to_proto2), and so does Celeriac.
    "object body": (id) => ({ ...good(id), body: JSON.stringify({ positional: [], named: {} }) }),
    "body not JSON": (id) => ({ ...good(id), body: "{{{ not json" }),
    "empty body": (id) => ({ ...good(id), body: "" }),
    "args not a list": (id) => ({ ...good(id), body: JSON.stringify(["x", {}, {}]) }),
    "kwargs not a dict": (id) => ({ ...good(id), body: JSON.stringify([[], [1], {}]) }),
    "embed not a dict": (id) => ({ ...good(id), body: JSON.stringify([[], {}, "x"]) }),
    "task name a number": (id) => ({ ...good(id), headers: { ...good(id).headers, task: 42 } }),
    "unknown task": (id) => ({ ...good(id), headers: { ...good(id).headers, task: "faults.nope" } }),
    "retries a string": (id) => ({ ...good(id), headers: { ...good(id).headers, retries: "many" } }),
    "timelimit garbage": (id) => ({ ...good(id), headers: { ...good(id).headers, timelimit: "x" } }),
    "bad compression": (id) => ({ ...good(id), headers: { ...good(id).headers, compression: "application/x-gzip" } }),
    "unknown content-type": (id) => ({ ...good(id), contentType: "application/x-unknown" }),
    "pickle that runs a command": (id, marker) => ({ ...good(id), body: pickleCommand(marker), contentType: "application/x-python-serialize" }),
    yaml: (id) => ({ ...good(id), body: "- []\n- {}\n", contentType: "application/x-yaml" }),
    "utf-16 encoding": (id) => ({ ...good(id), body: Buffer.from(good(id).body, "utf16le") }),
    "huge eta year": (id) => ({ ...good(id), headers: { ...good(id).headers, eta: "99999-01-01T00:00:00" } }),
  };
}

async function caseMalformed(broker) {
  const queue = `faults-bad-${Date.now()}`;
  const record = join(dir, `${queue}.ids`);
  const marker = join(dir, "PICKLE-RAN");
  const perKind = n(50);
  const goodCount = n(1000);
  const kinds = badKinds();
  const transport = await transportFromUrl(broker.url());
  await transport.connect();
  const client = createClient({ transport, defaultQueue: queue });
  const badIds = [];
  const goodIds = [];
  let i = 0;
  for (let k = 0; k < perKind; k++) {
    for (const [kind, make] of Object.entries(kinds)) {
      const id = `bad-${kind.replace(/\W+/g, "-")}-${++i}`;
      const m = make(id, marker);
      await transport.publish(queue, {
        body: Buffer.isBuffer(m.body) ? m.body : Buffer.from(m.body),
        contentType: m.contentType,
        contentEncoding: "utf-8",
        headers: m.headers,
        properties: { correlationId: id, deliveryMode: 2 },
      });
      badIds.push(id);
    }
    for (let g = 0; g < goodCount / perKind; g++) goodIds.push((await client.sendTask("faults.record")).id);
  }
  // Bodies that are no kombu envelope at all, written straight to the broker.
  let raw = 0;
  if (TRANSPORT === "sqs") {
    const { SendMessageCommand } = await import("@aws-sdk/client-sqs");
    const url = await transport.queueUrl(queue);
    for (let k = 0; k < perKind * 2; k++)
      await transport.client.send(new SendMessageCommand({ QueueUrl: url, MessageBody: k % 2 ? "hello, not kombu" : '{"x": 1}' }));
    raw = perKind * 2;
  }
  if (TRANSPORT === "redis") {
    const { Redis } = await import("ioredis");
    const r = new Redis(broker.server.url(0));
    for (let k = 0; k < perKind * 2; k++) await r.lpush(queue, k % 2 ? "not json" : '{"body": 5}');
    raw = perKind * 2;
    r.disconnect();
  }
  await transport.close();
  const w = startWorker(broker.url(), queue, record, { extra: ["-l", "info"] });
  const t0 = Date.now();
  const allGood = await waitUntil(() => readIds(record).filter((id) => !id.startsWith("bad-")).length >= goodIds.length, 120_000);
  if (!allGood) process.stderr.write(`malformed: not every good task ran; worker output (tail):\n${w.output().slice(-3000)}\n`);
  await sleep(3000);
  const rssMb = w.rssMb();
  await w.stop();
  const ran = readIds(record);
  const executedBad = new Map();
  for (const id of ran.filter((x) => x.startsWith("bad-"))) {
    const kind = id.replace(/^bad-(.*)-\d+$/, "$1");
    executedBad.set(kind, (executedBad.get(kind) ?? 0) + 1);
  }
  const refused = w
    .output()
    .split("\n")
    .filter((l) => /invalid task message|unregistered task|refus|reject/i.test(l)).length;
  const left = await depthAfter(broker, queue);
  const good = tally(goodIds, record);
  report("malformed flood", {
    sent: goodIds.length + badIds.length + raw,
    executed: good.executed,
    lost: good.lost,
    duplicated: good.duplicated,
    refused,
    recoveryS: ((Date.now() - t0) / 1000).toFixed(1),
    rssMb,
    note:
      `${goodIds.length} good, ${badIds.length} bad of ${Object.keys(kinds).length} kinds${raw ? ` + ${raw} non-kombu bodies` : ""}; ` +
      `bad executed: ${executedBad.size === 0 ? "none" : [...executedBad].map(([k, c]) => `${k} ${c}`).join(", ")}; ` +
      `pickle command ran: ${existsSync(marker) ? "YES" : "no"}; left in queue: ${left}`,
  });
}

async function depthAfter(broker, queue) {
  try {
    if (TRANSPORT === "sqlite") {
      const { default: Database } = await import("better-sqlite3");
      const db = new Database(
        broker
          .url()
          .replace(/^sqlite:\/\/\/?/, "/")
          .replace(/\?.*$/, ""),
        { readonly: true },
      );
      const r = db.prepare("SELECT count(*) AS n FROM kombu_message m JOIN kombu_queue q ON q.id = m.queue_id WHERE q.name = ?").get(queue);
      db.close();
      return r.n;
    }
    if (TRANSPORT === "redis") {
      const { Redis } = await import("ioredis");
      const r = new Redis(broker.server.url(0));
      let total = 0;
      for (const k of await r.keys(`${queue}*`)) total += await r.llen(k);
      total += await r.zcard("unacked_index");
      r.disconnect();
      return total;
    }
    if (TRANSPORT === "amqp") {
      const { connect } = await import("amqplib");
      const c = await connect(broker.url());
      const ch = await c.createChannel();
      const q = await ch.checkQueue(queue);
      await c.close();
      return q.messageCount;
    }
    const { GetQueueAttributesCommand } = await import("@aws-sdk/client-sqs");
    const t = await transportFromUrl(broker.url());
    const r = await t.client.send(new GetQueueAttributesCommand({ QueueUrl: await t.queueUrl(queue), AttributeNames: ["ApproximateNumberOfMessages"] }));
    await t.close();
    return Number(r.Attributes?.ApproximateNumberOfMessages);
  } catch (err) {
    return `unknown (${err.message})`;
  }
}

async function caseMemory(broker) {
  const queue = `faults-mem-${Date.now()}`;
  const record = join(dir, `${queue}.ids`);
  const total = n(20_000);
  const w = startWorker(broker.url(), queue, record, { concurrency: 100 });
  await sleep(3000);
  const idleBefore = w.rssMb();
  const p = await producer(broker.url(), queue);
  let peak = 0;
  const sampler = setInterval(() => (peak = Math.max(peak, w.rssMb() ?? 0)), 200);
  const ids = await sendMany(p.client, total, [], "faults.alloc");
  await p.close();
  await waitUntil(() => readIds(record).length >= total, 600_000);
  const afterBurst = w.rssMb();
  await sleep(30_000);
  clearInterval(sampler);
  const afterIdle = w.rssMb();
  await w.stop();
  report("memory (-c 100, 1 MiB/task)", {
    ...tally(ids, record),
    rssMb: afterIdle,
    note: `RSS idle before ${idleBefore} MiB, peak ${peak} MiB, right after the burst ${afterBurst} MiB, after 30 s idle ${afterIdle} MiB`,
  });
}

async function caseSecrets(broker) {
  // Raw `@` and `:` (a raw `/`, `?` or `#` is refused up front with a clear error: no parser can read it).
  const password = "s3cr@t:p@ss-w0rd";
  const fragments = ["s3cr", "t:p", "p@ss", "w0rd"];
  let url;
  if (TRANSPORT === "amqp") url = `amqp://guest:${password}@127.0.0.1:${broker.rabbit.port}//`;
  else if (TRANSPORT === "redis") {
    spawnSync("redis-cli", ["-p", String(broker.server.port), "CONFIG", "SET", "requirepass", "the-right-one"]);
    url = `redis://:${password}@127.0.0.1:${broker.server.port}/0`;
  } else if (TRANSPORT === "sqs") url = `sqs://AKIA:${password}@127.0.0.1:1?region=us-east-1`;
  else return report("secrets", { note: "sqlite:// URLs carry no password" });
  const record = join(dir, "secrets.ids");
  const w = startWorker(url, "faults-secrets", record, { extra: ["-l", "debug"] });
  const exited = await Promise.race([w.exited.then(() => true), sleep(15_000).then(() => false)]);
  const call = spawnSync(process.execPath, [CLI, "call", "faults.record", "--broker", url], { encoding: "utf8", timeout: 45_000 });
  await w.kill("SIGKILL");
  if (TRANSPORT === "redis") spawnSync("redis-cli", ["-p", String(broker.server.port), "-a", "the-right-one", "CONFIG", "SET", "requirepass", ""]);
  const lines = `${w.output()}\n${call.stdout ?? ""}\n${call.stderr ?? ""}`.split("\n").filter(Boolean);
  const leaking = lines.filter((l) => fragments.some((f) => l.includes(f)));
  report("secrets (raw @ in password)", {
    note: `${lines.length} output lines, ${leaking.length} with a password fragment${leaking.length ? `: ${JSON.stringify(leaking[0]).slice(0, 200)}` : ""}; worker ${exited ? `exited by itself (code ${w.child.exitCode})` : "still running after 15 s (killed)"}; call exit ${call.status}`,
  });
}

// ---- run ---------------------------------------------------------------------------------------
const broker = await startBroker();
const runners = { kill: caseKill, kill3: caseKill3, restart: caseRestart, malformed: caseMalformed, memory: caseMemory, secrets: caseSecrets };
const commit = spawnSync("git", ["-C", root, "rev-parse", "--short", "HEAD"], { encoding: "utf8" }).stdout.trim();
process.stdout.write(`fault suite: ${TRANSPORT}, scale ${SCALE}, commit ${commit}, ${new Date().toISOString()}\n`);
try {
  for (const name of ONLY ? [ONLY] : CASES) {
    try {
      await runners[name](broker);
    } catch (err) {
      report(name, { note: `case failed: ${err?.stack ?? err}` });
    }
  }
} finally {
  for (const c of cleanups) await c().catch(() => undefined);
  await broker.stop().catch(() => undefined);
  rmSync(dir, { recursive: true, force: true });
}
for (const r of results) process.stdout.write(`RESULT ${JSON.stringify(r)}\n`);
process.exit(0);
