// Small helpers every benchmark module shares: paths, child processes, RSS, statistics.
import { spawn } from "node:child_process";
import { randomUUID } from "node:crypto";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

export const root = fileURLToPath(new URL("../..", import.meta.url));
/** Imports a workspace package's build output (run `npm run build` first). */
export const dist = (pkg) => import(pathToFileURL(join(root, "packages", pkg, "dist", "index.js")).href);
/** The `celeriac` command as users run it: the bin file, its shebang's node flags included. */
export const CLI = join(root, "apps/cli/bin/celeriac.js");
/**
 * The node flags of that shebang, for a Celeriac worker started as `node <file>` (the SQS
 * contender, which the CLI cannot point at the emulator), so it runs as the CLI's worker does.
 */
export const CLI_NODE_FLAGS = readFileSync(CLI, "utf8")
  .split("\n", 1)[0]
  .split(/\s+/)
  .filter((a) => a.startsWith("--"));
export const CONSUMERS = join(root, "bench/lib/consumers.mjs");
export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** The no-op task every contender runs (result ignored), encoded as Celeriac and kombu send it. */
export async function noopEncoder() {
  const { createEnvelope, celeryJsonCodec } = await dist("core");
  return (i, task = "bench.noop", id = randomUUID()) => celeryJsonCodec.encode(createEnvelope({ task, id, args: [i], headers: { ignoreResult: true } }));
}

/** Publishes `n` no-op tasks to `queue` through a Celeriac transport, 1,000 in flight at a time. */
export async function publishNoops(transport, queue, n) {
  const noop = await noopEncoder();
  for (let i = 0; i < n; i += 1000) {
    const batch = [];
    for (let j = i; j < Math.min(n, i + 1000); j++) batch.push(transport.publish(queue, noop(j)));
    await Promise.all(batch);
  }
}

/**
 * A child process the benchmark started, in its own process group (Python's prefork pool and
 * anything else it forks go with it). `output()` keeps the last 20 kB for error messages.
 */
export function startProcess(cmd, args, options = {}) {
  const launchedAt = performance.now();
  const child = spawn(cmd, args, { cwd: options.cwd ?? root, env: options.env ?? process.env, stdio: ["ignore", "pipe", "pipe"], detached: true });
  let out = "";
  const keep = (d) => {
    out += d.toString();
    if (out.length > 40_000) out = out.slice(-20_000);
  };
  child.stdout.on("data", keep);
  child.stderr.on("data", keep);
  const exited = new Promise((r) => child.once("exit", (code, signal) => r({ code, signal })));
  const alive = () => child.exitCode === null && child.signalCode === null;
  const signalGroup = (sig) => {
    try {
      process.kill(-child.pid, sig);
    } catch {
      // already gone
    }
  };
  live.add(signalGroup);
  void exited.then(() => live.delete(signalGroup));
  return {
    child,
    launchedAt,
    alive,
    exited,
    output: () => out,
    /** SIGTERM to the group, SIGKILL after `graceMs`; resolves when the leader exited. */
    async stop(graceMs = 10_000) {
      if (!alive()) return;
      signalGroup("SIGTERM");
      const t = setTimeout(() => signalGroup("SIGKILL"), graceMs);
      await exited;
      clearTimeout(t);
      signalGroup("SIGKILL"); // pool children that outlived their parent
    },
    /** kill -9 of the whole group, at once. */
    async kill() {
      signalGroup("SIGKILL");
      await exited;
    },
  };
}

/** Process groups still running; killed if the benchmark exits without stopping them. */
const live = new Set();
process.once("exit", () => {
  for (const kill of live) kill("SIGKILL");
});

/** Resident set size in bytes of `pid` and all its descendants (a Python prefork pool is several processes). */
export function treeRss(pid) {
  let total = 0;
  const visit = (p) => {
    try {
      const status = readFileSync(`/proc/${p}/status`, "utf8");
      total += Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0) * 1024;
      const children = readFileSync(`/proc/${p}/task/${p}/children`, "utf8").trim();
      for (const c of children ? children.split(/\s+/) : []) visit(c);
    } catch {
      // exited meanwhile
    }
  };
  visit(pid);
  return total;
}

/** Polls `check()` every `everyMs` until it returns a truthy value; fails after `timeoutMs` or when `proc` exits. */
export async function waitFor(what, check, { everyMs = 10, timeoutMs = 30 * 60_000, proc } = {}) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await check();
    if (v) return v;
    if (proc && !proc.alive()) throw new Error(`${what}: the process exited first:\n${proc.output().slice(-3000)}`);
    if (Date.now() > deadline) throw new Error(`${what}: not done after ${timeoutMs / 1000} s`);
    await sleep(everyMs);
  }
}

export function median(values) {
  const v = values.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (v.length === 0) return NaN;
  const m = Math.floor(v.length / 2);
  return v.length % 2 ? v[m] : (v[m - 1] + v[m]) / 2;
}

/** The p-th percentile (0..1) of `samples`, nearest rank. */
export function percentile(samples, p) {
  const s = [...samples].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil(p * s.length) - 1))];
}
