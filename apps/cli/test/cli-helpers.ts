import { spawn, type ChildProcess } from "node:child_process";
import { fileURLToPath } from "node:url";
import { watchProcess } from "../../../test-support/child-process.js";

export const BIN = fileURLToPath(new URL("../dist/bin.js", import.meta.url));
export const TS_TASKS = fileURLToPath(new URL("./fixtures/ts-tasks.mjs", import.meta.url));

export interface RunResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs the built `celeriac` command. */
export function celeriac(args: string[], options: { env?: NodeJS.ProcessEnv; cwd?: string; timeoutMs?: number } = {}): Promise<RunResult> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [BIN, ...args], {
      cwd: options.cwd,
      env: { ...process.env, CELERIAC_BROKER_URL: "", CELERIAC_RESULT_BACKEND: "", ...options.env },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => child.kill("SIGKILL"), options.timeoutMs ?? 60_000);
    child.on("exit", (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

export interface CeleriacWorker {
  child: ChildProcess;
  output(): string;
  stop(): Promise<number | null>;
}

export interface SpawnedWorker {
  child: ChildProcess;
  /** stdout and stderr so far. */
  output(): string;
  /** Resolves with the exit code. */
  exited: Promise<number | null>;
}

export interface SpawnedCli extends SpawnedWorker {
  /** SIGTERM, then SIGKILL if it has not exited after 15 s. */
  stop(): Promise<void>;
}

/** Spawns `celeriac <args>` (the CLI at `bin`) with no broker settings inherited from the environment. */
export function spawnCeleriac(args: string[], bin = BIN): SpawnedCli {
  const child = spawn(process.execPath, [bin, ...args], {
    env: { ...process.env, CELERIAC_BROKER_URL: "", CELERIAC_RESULT_BACKEND: "" },
    stdio: ["ignore", "pipe", "pipe"],
  });
  return watchProcess(child, 15_000);
}

/** Spawns `celeriac worker <args>` (the CLI at `bin`) with no broker settings inherited from the environment. */
export function spawnCeleriacWorker(args: string[], bin = BIN): SpawnedWorker {
  return spawnCeleriac(["worker", ...args], bin);
}

/** Starts `celeriac worker` and resolves once it logged that it is ready. */
export async function startCeleriacWorker(args: string[]): Promise<CeleriacWorker> {
  const { child, output, exited } = spawnCeleriacWorker(args);
  const deadline = Date.now() + 20_000;
  while (!output().includes("celeriac worker ready")) {
    if (child.exitCode !== null) throw new Error(`celeriac worker exited early (${child.exitCode}):\n${output()}`);
    if (Date.now() > deadline) {
      child.kill("SIGKILL");
      throw new Error(`celeriac worker not ready after 20 s:\n${output()}`);
    }
    await new Promise((r) => setTimeout(r, 25));
  }
  return {
    child,
    output,
    async stop() {
      if (child.exitCode === null) child.kill("SIGTERM");
      return exited;
    },
  };
}
