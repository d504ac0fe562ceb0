import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Redis } from "ioredis";
import { freePort } from "./redis.js";

export interface SentinelCluster {
  masterName: string;
  /** The three Sentinels' ports. */
  sentinelPorts: number[];
  /** The port of the master the cluster started with, and of its replica. */
  firstMasterPort: number;
  replicaPort: number;
  /** kombu's broker URL: `sentinel://127.0.0.1:<p1>/<db>;sentinel://…;…?master_name=<name>`; `masterName: false` leaves the query out. */
  url(db?: number, options?: { masterName?: boolean }): string;
  /** The master's port as the Sentinels see it now. */
  masterPort(): Promise<number>;
  /** SIGKILLs the current master's redis-server and resolves with its port. */
  killMaster(): Promise<number>;
  /** Resolves once the Sentinels name a master other than `oldPort` (throws after `timeoutMs`). */
  waitForFailover(oldPort: number, timeoutMs?: number): Promise<number>;
  /** A plain client of the current master, on database `db` (the caller closes it). */
  masterClient(db?: number): Promise<Redis>;
  /** Kills every process by PID and deletes the directories. */
  dispose(): Promise<void>;
}

interface Proc {
  port: number;
  child: ChildProcess;
  out: string;
}

async function startProc(bin: string, args: string[], port: number): Promise<Proc> {
  const child = spawn(bin, args, { stdio: ["ignore", "pipe", "pipe"] });
  const p: Proc = { port, child, out: "" };
  child.stdout!.on("data", (d: Buffer) => (p.out += d.toString()));
  child.stderr!.on("data", (d: Buffer) => (p.out += d.toString()));
  const deadline = Date.now() + 10_000;
  // redis-server says "Ready to accept connections"; redis-sentinel logs its monitor line.
  while (!/Ready to accept connections|\+monitor master/.test(p.out)) {
    if (child.exitCode !== null) throw new Error(`${bin} exited early:\n${p.out}`);
    if (Date.now() > deadline) throw new Error(`${bin} on port ${port} not ready after 10 s:\n${p.out}`);
    await new Promise((r) => setTimeout(r, 20));
  }
  return p;
}

function alive(p: Proc): boolean {
  return p.child.exitCode === null && p.child.signalCode === null;
}

async function kill(p: Proc): Promise<void> {
  if (!alive(p)) return;
  const exited = new Promise<void>((r) => p.child.once("exit", () => r()));
  p.child.kill("SIGKILL");
  await exited;
}

/**
 * A Redis master, one replica and three Sentinels (quorum 2) on free loopback ports, for one test
 * file. The Sentinels declare the master down after `downAfterMs` (default 1000 ms) without a
 * reply, and a failover may take at most `failoverTimeoutMs` (default 3000 ms), so a killed
 * master is replaced within a few seconds. Debian's `redis-sentinel` and `redis-server`.
 */
export async function startSentinelCluster(options: { masterName?: string; downAfterMs?: number; failoverTimeoutMs?: number } = {}): Promise<SentinelCluster> {
  const masterName = options.masterName ?? "mymaster";
  const dir = mkdtempSync(join(tmpdir(), "celeriac-sentinel-"));
  const procs: Proc[] = [];
  const servers = new Map<number, Proc>();
  const common = ["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"];
  try {
    const masterPort = await freePort();
    const replicaPort = await freePort();
    servers.set(masterPort, await startProc("redis-server", ["--port", String(masterPort), ...common, "--dir", dir, "--dbfilename", "m.rdb"], masterPort));
    servers.set(
      replicaPort,
      await startProc(
        "redis-server",
        ["--port", String(replicaPort), ...common, "--dir", dir, "--dbfilename", "r.rdb", "--replicaof", "127.0.0.1", String(masterPort)],
        replicaPort,
      ),
    );
    procs.push(...servers.values());
    const sentinelPorts: number[] = [];
    for (let i = 0; i < 3; i++) {
      const port = await freePort();
      // Sentinel rewrites its config file (it records the replicas and the other Sentinels).
      const conf = join(dir, `sentinel-${i}.conf`);
      writeFileSync(
        conf,
        [
          `port ${port}`,
          "bind 127.0.0.1",
          `dir ${dir}`,
          `sentinel monitor ${masterName} 127.0.0.1 ${masterPort} 2`,
          `sentinel down-after-milliseconds ${masterName} ${options.downAfterMs ?? 1000}`,
          `sentinel failover-timeout ${masterName} ${options.failoverTimeoutMs ?? 3000}`,
          `sentinel parallel-syncs ${masterName} 1`,
          "",
        ].join("\n"),
      );
      procs.push(await startProc("redis-sentinel", [conf], port));
      sentinelPorts.push(port);
    }
    const ask = async <T>(fn: (s: Redis) => Promise<T>): Promise<T> => {
      let last: unknown;
      for (const port of sentinelPorts) {
        const s = new Redis({ port, host: "127.0.0.1", lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
        s.on("error", () => undefined);
        try {
          return await fn(s);
        } catch (err) {
          last = err;
        } finally {
          s.disconnect();
        }
      }
      throw last;
    };
    const masterPortNow = async () => {
      const addr = (await ask((s) => s.call("SENTINEL", "get-master-addr-by-name", masterName))) as [string, string] | null;
      if (!addr) throw new Error(`no master named ${masterName}`);
      return Number(addr[1]);
    };
    // Ready for a failover once every Sentinel knows the replica and the two other Sentinels
    // (they find each other through the master's hello channel, about every 2 s).
    const deadline = Date.now() + 20_000;
    for (;;) {
      const ok = await Promise.all(
        sentinelPorts.map(async (port) => {
          const s = new Redis({ port, host: "127.0.0.1", lazyConnect: true, maxRetriesPerRequest: 0 });
          s.on("error", () => undefined);
          try {
            const master = (await s.call("SENTINEL", "master", masterName)) as string[];
            const field = (k: string) => Number(master[master.indexOf(k) + 1]);
            return field("num-slaves") >= 1 && field("num-other-sentinels") >= 2;
          } catch {
            return false;
          } finally {
            s.disconnect();
          }
        }),
      );
      if (ok.every(Boolean)) break;
      if (Date.now() > deadline) throw new Error(`Sentinels did not discover each other in 20 s:\n${procs.map((p) => p.out).join("\n")}`);
      await new Promise((r) => setTimeout(r, 200));
    }
    return {
      masterName,
      sentinelPorts,
      firstMasterPort: masterPort,
      replicaPort,
      url: (db = 0, o = {}) =>
        sentinelPorts.map((p) => `sentinel://127.0.0.1:${p}/${db}`).join(";") + (o.masterName === false ? "" : `?master_name=${masterName}`),
      masterPort: masterPortNow,
      async killMaster() {
        const port = await masterPortNow();
        const p = servers.get(port);
        if (!p) throw new Error(`no server of ours on port ${port}`);
        await kill(p);
        return port;
      },
      async waitForFailover(oldPort, timeoutMs = 20_000) {
        const end = Date.now() + timeoutMs;
        for (;;) {
          const port = await masterPortNow().catch(() => oldPort);
          if (port !== oldPort) return port;
          if (Date.now() > end) throw new Error(`no failover from port ${oldPort} within ${timeoutMs} ms`);
          await new Promise((r) => setTimeout(r, 100));
        }
      },
      async masterClient(db = 0) {
        const c = new Redis({ port: await masterPortNow(), host: "127.0.0.1", db });
        c.on("error", () => undefined);
        return c;
      },
      async dispose() {
        for (const p of procs) await kill(p);
        rmSync(dir, { recursive: true, force: true });
      },
    };
  } catch (err) {
    for (const p of procs) await kill(p);
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
}
