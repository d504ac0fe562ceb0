import { spawn, type ChildProcess } from "node:child_process";
import { expect } from "vitest";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { transportFromUrl } from "@celeriac/core";
import { createWorker } from "@celeriac/worker";
import { BIN } from "./cli-helpers.js";

// The HA scenario every broker runs: three `celeriac beat` replicas on one broker, a 1-second
// schedule; the leader is SIGKILLed mid-run, then the next leader gets SIGTERM. A TypeScript
// worker on the same broker records every run it receives (task id, due-time header).

export const LEASE_S = 3;

export interface Replica {
  child: ChildProcess;
  output(): string;
  exited: Promise<number | null>;
}

export function spawnBeat(args: string[], env: NodeJS.ProcessEnv = {}): Replica {
  const child = spawn(process.execPath, [BIN, "beat", ...args], {
    env: { ...process.env, CELERIAC_BROKER_URL: "", CELERIAC_RESULT_BACKEND: "", ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  child.stdout!.on("data", (d: Buffer) => (out += d.toString()));
  child.stderr!.on("data", (d: Buffer) => (out += d.toString()));
  const exited = new Promise<number | null>((r) => child.once("exit", (code) => r(code)));
  return { child, output: () => out, exited };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function until<T>(what: string, probe: () => T | undefined | null | false, timeoutMs: number, context: () => string): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = probe();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`${what} not within ${timeoutMs} ms\n${context()}`);
    await sleep(20);
  }
}

export interface HaReport {
  /** Due time (ms) -> how many messages the worker received for it. */
  received: Map<number, number>;
  /** Distinct task ids per due time (must be 1). */
  idsPerDue: Map<number, Set<string>>;
  killTakeoverMs: number;
  termTakeoverMs: number;
  outputs: string[];
}

/**
 * Runs the scenario on `brokerUrl` and returns what the worker received once all replicas ended.
 * `queue` isolates runs of parallel test files.
 */
export async function runHaScenario(brokerUrl: string, queue: string): Promise<HaReport> {
  const dir = mkdtempSync(join(tmpdir(), "celeriac-beat-ha-"));
  const schedulePath = join(dir, "schedule.json");
  writeFileSync(
    schedulePath,
    JSON.stringify({ timezone: "Europe/London", entries: { tick: { task: "beat.tick", schedule: 1, missed: "all", options: { queue } } } }),
  );
  const transport = await transportFromUrl(brokerUrl);
  const received = new Map<number, number>();
  const idsPerDue = new Map<number, Set<string>>();
  const worker = createWorker({ transport, queues: [queue], concurrency: 8, silent: true });
  worker.register("beat.tick", (ctx) => {
    const due = Date.parse(String(ctx.headers["celeriac_beat_due"]));
    received.set(due, (received.get(due) ?? 0) + 1);
    const ids = idsPerDue.get(due) ?? new Set<string>();
    ids.add(ctx.id);
    idsPerDue.set(due, ids);
  });
  await transport.connect();
  await worker.start();
  const replicas = [0, 1, 2].map(() => spawnBeat(["-b", brokerUrl, "-s", schedulePath, "--lease", String(LEASE_S), "--max-interval", "1", "--name", queue]));
  const outputs = () => replicas.map((r, i) => `--- replica ${i}:\n${r.output()}`).join("\n");
  try {
    // The current leader: its last leadership line says it leads. `since` ignores older output.
    const leads = (r: Replica, since = 0) => {
      const out = r.output().slice(since);
      return out.lastIndexOf("leader now") > Math.max(out.lastIndexOf("no longer leader"), out.lastIndexOf("released the lease"));
    };
    const leaderOf = (skip: Replica[], since: number[] = [0, 0, 0]) => replicas.find((r, i) => !skip.includes(r) && leads(r, since[i]));
    const first = await until("a first leader", () => leaderOf([]), 20_000, outputs);
    await until("5 runs", () => received.size >= 5, 15_000, outputs);
    // SIGKILL mid-run: no release, the others must wait for the lease to expire.
    let mark = replicas.map((r) => r.output().length);
    first.child.kill("SIGKILL");
    const killedAt = Date.now();
    await first.exited;
    const second = await until("a leader after SIGKILL", () => leaderOf([first], mark), 3 * LEASE_S * 1000, outputs);
    const killTakeoverMs = Date.now() - killedAt;
    const countAtTakeover = received.size;
    await until("4 more runs", () => received.size >= countAtTakeover + 4, 15_000, outputs);
    // SIGTERM: the leader releases the lease; the last replica takes over within one poll.
    mark = replicas.map((r) => r.output().length);
    second.child.kill("SIGTERM");
    const termAt = Date.now();
    expect(await second.exited).toBe(0);
    const third = await until("a leader after SIGTERM", () => leaderOf([first, second], mark), 3 * LEASE_S * 1000, outputs);
    const termTakeoverMs = Date.now() - termAt;
    const countAtSecond = received.size;
    await until("3 more runs", () => received.size >= countAtSecond + 3, 15_000, outputs);
    third.child.kill("SIGTERM");
    expect(await third.exited).toBe(0);
    // Runs already published may still be on their way to the worker.
    await sleep(1500);
    return { received, idsPerDue, killTakeoverMs, termTakeoverMs, outputs: replicas.map((r) => r.output()) };
  } finally {
    for (const r of replicas) if (r.child.exitCode === null && r.child.signalCode === null) r.child.kill("SIGKILL");
    await worker.stop();
    await transport.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Every due time from the first to the last, one second apart, each received once under one id. */
export function assertExactlyOnce(broker: string, report: HaReport): void {
  const dues = [...report.received.keys()].sort((a, b) => a - b);
  console.log(
    `beat HA on ${broker}: ${dues.length} runs received; takeover ${report.killTakeoverMs} ms after SIGKILL, ${report.termTakeoverMs} ms after SIGTERM (lease ${LEASE_S} s)`,
  );
  expect(dues.length).toBeGreaterThanOrEqual(12);
  const gaps = dues
    .slice(1)
    .map((d, i) => d - dues[i]!)
    .filter((g) => g !== 1000);
  expect(gaps, `due times not one second apart: ${dues.map((d) => new Date(d).toISOString()).join(" ")}`).toEqual([]);
  const twice = [...report.received].filter(([, n]) => n !== 1);
  expect(twice, "due times received more than once").toEqual([]);
  expect([...report.idsPerDue.values()].every((ids) => ids.size === 1)).toBe(true);
  // Leadership changed hands only when a leader was killed or stopped: three "leader now" lines.
  expect(report.outputs.join("\n").match(/leader now/g), report.outputs.join("\n")).toHaveLength(3);
  // When the takeover waited for the lease to expire (SQLite, Redis), the due times in between
  // were caught up by the successor, late, once each; RabbitMQ hands over as the socket closes.
  if (report.killTakeoverMs > 1500) expect(report.outputs.join("\n")).toMatch(/late by/);
  // Takeover after SIGKILL within the documented bound: lease + one poll (a quarter lease) + start slack.
  expect(report.killTakeoverMs).toBeLessThan(LEASE_S * 1000 * 1.25 + 1000);
  // After SIGTERM the lease is released: one poll, not a lease.
  expect(report.termTakeoverMs).toBeLessThan(LEASE_S * 1000 * 0.25 + 1000);
}
