import { spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import { watchProcess, type WatchedProcess } from "./child-process.js";

/** Debian's Python with python3-celery; the `python3` on PATH is another interpreter. */
export const PYTHON = "/usr/bin/python3";
/** Directory of `interop_app.py` and the helper scripts, used as the Python processes' cwd. */
export const PYTHON_DIR = fileURLToPath(new URL("./python/", import.meta.url));

export interface PythonEnv {
  brokerUrl: string;
  resultUrl?: string;
  /** Module in test-support/python whose `app` the helper scripts use. Default: interop_app. */
  app?: string;
  /** More variables for the Python process (e.g. what the app module reads). */
  env?: Record<string, string>;
  /** kombu's `master_name` for sentinel:// URLs (read by redis_app.py). */
  masterName?: string;
}

function pyEnv(e: PythonEnv): NodeJS.ProcessEnv {
  return {
    ...process.env,
    CELERIAC_BROKER_URL: e.brokerUrl,
    CELERIAC_RESULT_URL: e.resultUrl ?? "",
    CELERIAC_PY_APP: e.app ?? "",
    CELERIAC_MASTER_NAME: e.masterName ?? "",
    PYTHONPATH: PYTHON_DIR,
    PYTHONUNBUFFERED: "1",
    PYTHONDONTWRITEBYTECODE: "1",
    ...e.env,
  };
}

/** A Python process the test started (stop: SIGTERM, then SIGKILL after 5 s). */
export type PythonProcess = WatchedProcess;

export type PythonWorker = PythonProcess;

/** Starts `/usr/bin/python3 <args>` in test-support/python with the env of `e`. */
export function spawnPython(e: PythonEnv, args: string[]): PythonProcess {
  const child = spawn(PYTHON, args, { cwd: PYTHON_DIR, env: pyEnv(e), stdio: ["ignore", "pipe", "pipe"] });
  return watchProcess(child, 5000);
}

export interface PythonRun {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs Celery's own CLI, `celery -A <e.app or interop_app> <args>`, to its exit (SIGKILL after `timeoutMs`). */
export function runCelery(e: PythonEnv, args: string[], timeoutMs = 30_000): Promise<PythonRun> {
  return new Promise((resolve) => {
    const child = spawn(PYTHON, ["-m", "celery", "-A", e.app ?? "interop_app", ...args], { cwd: PYTHON_DIR, env: pyEnv(e), stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
    child.on("exit", (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

/** Starts a real Celery worker (`celery -A interop_app worker`, or `e.app`) and resolves once it is ready. */
export async function startPythonWorker(e: PythonEnv & { queues?: string[]; pool?: string; concurrency?: number }): Promise<PythonWorker> {
  const args = ["-m", "celery", "-A", e.app ?? "interop_app", "worker", "--loglevel", "INFO", "-Q", (e.queues ?? ["celery"]).join(",")];
  args.push("--pool", e.pool ?? "solo");
  if (e.concurrency) args.push("--concurrency", String(e.concurrency));
  args.push("--without-gossip", "--without-mingle", "--without-heartbeat", "-n", `py-${process.pid}-${Date.now()}@localhost`);
  const worker = spawnPython(e, args);
  const { child } = worker;
  const deadline = Date.now() + 30_000;
  while (!/ ready\.?/.test(worker.output())) {
    if (child.exitCode !== null) throw new Error(`Python worker exited early (${child.exitCode}):\n${worker.output()}`);
    if (Date.now() > deadline) {
      await worker.stop();
      throw new Error(`Python worker not ready after 30 s:\n${worker.output()}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  return worker;
}

/** Runs a Python script from test-support/python and returns its stdout, failing on a non-zero exit. */
export function runPython(e: PythonEnv, script: string, args: string[], timeoutMs = 60_000): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(PYTHON, [script, ...args], { cwd: PYTHON_DIR, env: pyEnv(e), stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
    child.on("exit", (code) => {
      clearTimeout(timer);
      if (code === 0) resolve(stdout);
      else reject(new Error(`${script} exited with ${code}:\n${stderr}\n${stdout}`));
    });
  });
}
