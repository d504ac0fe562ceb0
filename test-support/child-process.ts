import type { ChildProcess } from "node:child_process";

/** A child process a test started: its output so far, its exit, and a way to end it. */
export interface WatchedProcess {
  child: ChildProcess;
  /** Everything it printed so far (stdout and stderr), for assertions and failure messages. */
  output(): string;
  /** Resolves with the exit code (null when a signal ended it), by itself or by stop(). */
  exited: Promise<number | null>;
  /** SIGTERM, then SIGKILL if it has not exited after `killAfterMs`; resolves when it exited. */
  stop(): Promise<void>;
}

/** Collects the output of `child` (spawned with piped stdout and stderr) and gives it a stop. */
export function watchProcess(child: ChildProcess, killAfterMs: number): WatchedProcess {
  let out = "";
  child.stdout!.on("data", (d: Buffer) => (out += d.toString()));
  child.stderr!.on("data", (d: Buffer) => (out += d.toString()));
  const exited = new Promise<number | null>((r) => child.once("exit", (code) => r(code)));
  return {
    child,
    output: () => out,
    exited,
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill("SIGTERM");
      const timer = setTimeout(() => child.kill("SIGKILL"), killAfterMs);
      await exited;
      clearTimeout(timer);
    },
  };
}
