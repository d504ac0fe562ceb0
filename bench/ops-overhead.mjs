#!/usr/bin/env node
// What events, remote control and metrics cost a worker, in one run on one private redis-server:
// N no-op tasks drained by `celeriac worker` (a separate process) in four set-ups
//   - bare:           --without-remote-control
//   - default:        remote control on (as Celery's worker_enable_remote_control)
//   - events:         -E (worker and task events on celeryev, Redis pub/sub)
//   - events+metrics: -E --metrics-port 0 (prom-client fed by every task event)
// and by Python Celery 5.2.6 (prefork, concurrency 2) without and with -E, for the same ratio on
// Celery's side. Each set-up runs --runs times, interleaved; medians are reported.
//   npx turbo run build && node bench/ops-overhead.mjs [--tasks 20000] [--concurrency 50] [--runs 3]
// While -E runs, this process subscribes to the event channel and counts task-succeeded events,
// so the table also shows that every task was announced (a fast run that dropped its events would
// not be a fair comparison).

import { spawn } from "node:child_process";
import { join } from "node:path";
import { Redis } from "ioredis";
import { fill, measureDrain, median, numberArg, root, startRedis, stopChild } from "./redis-common.mjs";

const N = numberArg("tasks", 20_000);
const CONCURRENCY = numberArg("concurrency", 50);
const RUNS = numberArg("runs", 3);

const redis = await startRedis();

/**
 * Counts task-succeeded events on db's celeryev channels (kombu: `/{db}.celeryev/<routing key>`),
 * single ones and those inside `task.multi` lists (how both workers group task events).
 */
async function countSucceededEvents(db) {
  const sub = new Redis(redis.url(db));
  let count = 0;
  await sub.psubscribe(`/${db}.celeryev/*`);
  sub.on("pmessage", (_pattern, _channel, payload) => {
    const body = JSON.parse(Buffer.from(JSON.parse(payload).body, "base64").toString("utf8"));
    for (const event of Array.isArray(body) ? body : [body]) if (event.type === "task-succeeded") count++;
  });
  return {
    count: () => count,
    close: () => sub.disconnect(),
  };
}

async function run(setup, db) {
  await fill(redis.url(db), N);
  const events = setup.events ? await countSucceededEvents(db) : null;
  const child = spawn(
    setup.command[0],
    setup.command.slice(1).map((a) => a.replace("{url}", redis.url(db))),
    setup.spawnOptions(db),
  );
  const secs = await measureDrain(redis.url(db), N, child);
  // Events are sent after the ack; give the last ones a moment to arrive before counting.
  if (events) await new Promise((r) => setTimeout(r, 500));
  await stopChild(child);
  const announced = events ? events.count() : null;
  events?.close();
  return { secs, announced };
}

const celeriac = (extra) => ({
  command: [
    process.execPath,
    join(root, "apps/cli/dist/bin.js"),
    "worker",
    "--broker",
    "{url}",
    "--result-backend",
    "none",
    "--tasks",
    join(root, "bench/noop-tasks.mjs"),
    "-c",
    String(CONCURRENCY),
    "-q",
    ...extra,
  ],
  spawnOptions: () => ({ stdio: "inherit" }),
});
const python = (extra) => ({
  command: [
    "/usr/bin/python3",
    "-m",
    "celery",
    "-A",
    "interop_app",
    "worker",
    "--pool",
    "prefork",
    "--concurrency",
    "2",
    "-Q",
    "celery",
    "--loglevel",
    "WARNING",
    "--without-gossip",
    "--without-mingle",
    "--without-heartbeat",
    ...extra,
  ],
  spawnOptions: (db) => ({
    cwd: join(root, "test-support/python"),
    env: { ...process.env, CELERIAC_BROKER_URL: redis.url(db), CELERIAC_RESULT_URL: "", PYTHONDONTWRITEBYTECODE: "1" },
    stdio: ["ignore", "ignore", "inherit"],
  }),
});

const SETUPS = [
  { key: "bare", name: "Celeriac, --without-remote-control", ...celeriac(["--without-remote-control"]) },
  { key: "default", name: "Celeriac, default (remote control on)", ...celeriac([]) },
  { key: "events", name: "Celeriac, -E", events: true, ...celeriac(["-E"]) },
  { key: "metrics", name: "Celeriac, -E --metrics-port 0", events: true, ...celeriac(["-E", "--metrics-port", "0"]) },
  { key: "py", name: "Python Celery 5.2.6 (prefork -c 2)", ...python([]) },
  { key: "pyE", name: "Python Celery 5.2.6 (prefork -c 2), -E", events: true, ...python(["-E"]) },
];

try {
  console.log(
    `Worker overhead of events/remote control/metrics: Redis drain of ${N} no-op tasks, median of ${RUNS} runs, node ${process.version}, ${new Date().toISOString()}`,
  );
  const all = Object.fromEntries(SETUPS.map((s) => [s.key, []]));
  for (let i = 0; i < RUNS; i++) {
    for (const [index, setup] of SETUPS.entries()) all[setup.key].push(await run(setup, index + 1));
    console.log(`run ${i + 1}: ${SETUPS.map((s) => `${s.key} ${all[s.key][i].secs.toFixed(2)} s`).join(", ")}`);
  }
  const rate = (r) => N / r.secs;
  const bare = median(all.bare);
  const py = median(all.py);
  console.log("");
  console.log("| worker set-up | drain time | tasks/s | vs. its bare set-up | task-succeeded events seen |");
  console.log("| --- | ---: | ---: | ---: | ---: |");
  for (const s of SETUPS) {
    const m = median(all[s.key]);
    const base = s.key.startsWith("py") ? py : bare;
    console.log(
      `| ${s.name} | ${m.secs.toFixed(2)} s | ${Math.round(rate(m))} | ${(rate(m) / rate(base)).toFixed(2)}x | ${m.announced === null ? "" : `${m.announced} / ${N}`} |`,
    );
  }
} finally {
  redis.stop();
}
