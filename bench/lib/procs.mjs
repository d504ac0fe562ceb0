// Starting the contenders as processes, and timing a drain from outside.
import { join } from "node:path";
import { CLI, CLI_NODE_FLAGS, CONSUMERS, root, startProcess, treeRss, sleep, waitFor } from "./common.mjs";
import { PYTHON, PYTHON_DIR } from "./support.mjs";

/** `celeriac worker` (the real CLI) on `broker`, quiet, no result backend unless given. */
export function startCeleriacWorker({ broker, queue = "celery", concurrency = 10, tasks = "bench/noop-tasks.mjs", resultBackend = "none", env = {} }) {
  const args = ["worker", "--broker", broker, "--result-backend", resultBackend, "--tasks", join(root, tasks), "-Q", queue, "-c", String(concurrency), "-q"];
  // Run as users run it, so the shebang's node flags apply.
  return startProcess(CLI, args, { env: { ...process.env, ...env } });
}

/**
 * A suite's `celeriac worker -c k` contender; `start(target)` starts it on the suite's queue,
 * database or file. The label names the worker's default prefetch (4 per slot, as Celery's).
 */
export function celeriacContender(k, start, extra = {}) {
  return { id: `celeriac-c${k}`, kind: "celeriac", ...extra, label: `Celeriac worker \`-c ${k}\` (prefetch ${4 * k})`, start };
}

/**
 * `celery worker` of Python Celery 5.2.6 on test-support/python's `app` module, prefork pool
 * (one process per core by default here: 2), no gossip/mingle/heartbeat.
 */
export function startPythonWorker({ broker, queue = "celery", concurrency = 2, app = "interop_app", env = {} }) {
  const args = ["-m", "celery", "-A", app, "worker", "--pool", "prefork", "--concurrency", String(concurrency), "-Q", queue, "--loglevel", "WARNING"];
  args.push("--without-gossip", "--without-mingle", "--without-heartbeat", "-n", `bench-${process.pid}-${Date.now()}@localhost`);
  return startProcess(PYTHON, args, {
    cwd: PYTHON_DIR,
    env: { ...process.env, CELERIAC_BROKER_URL: broker, CELERIAC_RESULT_URL: "", PYTHONPATH: PYTHON_DIR, PYTHONDONTWRITEBYTECODE: "1", ...env },
  });
}

/** One of bench/lib/consumers.mjs's roles. */
export function startConsumer(role, { broker, queue = "celery", prefetch, concurrency, pollers }) {
  const args = [CONSUMERS, "--role", role, "--broker", broker, "--queue", queue];
  if (prefetch !== undefined) args.push("--prefetch", String(prefetch));
  if (concurrency !== undefined) args.push("--concurrency", String(concurrency));
  if (pollers !== undefined) args.push("--pollers", String(pollers));
  return startProcess(process.execPath, role === "sqs-celeriac" ? [...CLI_NODE_FLAGS, ...args] : args);
}

/**
 * Times a drain of `n` messages, polling `state()` ({ left, taken }) from outside every `everyMs`
 * (5 ms by default): from process launch, and from the first message taken, to nothing left.
 * Stops the process.
 */
export async function timeDrain(what, n, proc, state, { everyMs = 5 } = {}) {
  let first = null;
  let end = null;
  try {
    await waitFor(
      what,
      async () => {
        const s = await state();
        const now = performance.now();
        if (first === null && (s.taken || s.left < n)) first = now;
        if (first !== null && s.left === 0) end = now;
        return end !== null;
      },
      { everyMs, proc, timeoutMs: 20 * 60_000 },
    );
  } finally {
    // The drain is over: a short grace (Python's warm shutdown of a prefork pool takes seconds).
    await proc.stop(3000);
  }
  return { n, fromLaunchS: (end - proc.launchedAt) / 1000, fromFirstS: (end - first) / 1000 };
}

/**
 * Worker memory: RSS (with its child processes) once idle on an empty queue, then after `fill()`
 * has sent `n` tasks and `isEmpty()` says they are done. `ready()` says the worker consumes.
 */
export async function measureMemory(what, proc, { ready, fill, isEmpty }) {
  try {
    await waitFor(`${what}: ready`, ready, { everyMs: 50, proc, timeoutMs: 60_000 });
    await sleep(2000);
    const idle = treeRss(proc.child.pid);
    await fill();
    await waitFor(`${what}: drained`, isEmpty, { everyMs: 50, proc, timeoutMs: 20 * 60_000 });
    await sleep(1000);
    return { idleMb: idle / 2 ** 20, afterMb: treeRss(proc.child.pid) / 2 ** 20 };
  } finally {
    await proc.stop();
  }
}
