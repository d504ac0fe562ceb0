import { spawn, execFile, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";

/**
 * A private RabbitMQ node for tests: its own node name, ports, data and logs in a temp dir,
 * listening on 127.0.0.1 only. Started with Debian's scripts in /usr/lib/rabbitmq/bin (the
 * /usr/sbin wrappers switch to the rabbitmq user). Startup takes several seconds, so test files
 * share one node per file through `sharedRabbit()`.
 */
const BIN = "/usr/lib/rabbitmq/bin";

export interface RabbitNode {
  readonly url: string;
  readonly port: number;
  readonly nodename: string;
  /** Stops the broker process (data kept), for restart tests. */
  stop(): Promise<void>;
  /** Kills the node hard (SIGKILL to the Erlang VM and its shell wrapper; data kept), as a crash. */
  kill(): Promise<void>;
  /** Starts it again on the same port with the same data. */
  start(): Promise<void>;
  /** Runs `rabbitmqctl <args>` against this node. */
  ctl(...args: string[]): Promise<string>;
  /** Stops the node and deletes its directory. */
  shutdown(): Promise<void>;
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const addr = s.address();
      const port = typeof addr === "object" && addr ? addr.port : 0;
      s.close(() => resolve(port));
    });
  });
}

let counter = 0;

/** Nodes of this process still running; killed if the process exits without stopping them. */
const live = new Set<ChildProcess>();
process.once("exit", () => {
  for (const c of live) killGroup(c, "SIGKILL");
});

function killGroup(c: ChildProcess, signal: NodeJS.Signals): void {
  if (c.pid === undefined || c.exitCode !== null || c.signalCode !== null) return;
  try {
    process.kill(-c.pid, signal);
  } catch {
    // already gone
  }
}

export interface StartRabbitOptions {
  consumerTimeoutMs?: number;
  /** Erlang cookie (nodes of one cluster share it); default: a fresh one per node. */
  cookie?: string;
}

export async function startRabbit(options: StartRabbitOptions = {}): Promise<RabbitNode> {
  const dir = mkdtempSync(join(tmpdir(), "celeriac-rabbit-"));
  const port = await freePort();
  const distPort = await freePort();
  const nodename = `celeriac-test-${process.pid}-${counter++}@localhost`;
  const conf = join(dir, "rabbitmq.conf");
  writeFileSync(
    conf,
    [
      `listeners.tcp.default = 127.0.0.1:${port}`,
      `consumer_timeout = ${options.consumerTimeoutMs ?? 1_800_000}`,
      // Disk alarms would stop publishers on a crowded CI disk.
      "disk_free_limit.absolute = 50MB",
      "",
    ].join("\n"),
  );
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    HOME: dir,
    RABBITMQ_NODENAME: nodename,
    RABBITMQ_NODE_PORT: String(port),
    RABBITMQ_NODE_IP_ADDRESS: "127.0.0.1",
    RABBITMQ_DIST_PORT: String(distPort),
    RABBITMQ_MNESIA_BASE: join(dir, "mnesia"),
    RABBITMQ_LOG_BASE: join(dir, "log"),
    RABBITMQ_CONFIG_FILE: conf,
    RABBITMQ_ADVANCED_CONFIG_FILE: join(dir, "advanced.config"),
    RABBITMQ_ENABLED_PLUGINS_FILE: join(dir, "enabled_plugins"),
    RABBITMQ_ENABLED_PLUGINS: "",
    ERL_EPMD_ADDRESS: "127.0.0.1",
  };
  writeFileSync(join(dir, "enabled_plugins"), "[].\n");
  // The node and rabbitmqctl both read $HOME/.erlang.cookie (HOME is the node's dir): a cluster's
  // nodes get the same one, and Erlang refuses a cookie file others can read.
  writeFileSync(join(dir, ".erlang.cookie"), options.cookie ?? `celeriac${process.pid}x${counter}x${Date.now()}`, { mode: 0o400 });
  // consumer_timeout is checked on the channel tick (60 s by default): tick faster when a test
  // sets a short timeout.
  writeFileSync(join(dir, "advanced.config"), options.consumerTimeoutMs !== undefined ? "[{rabbit, [{channel_tick_interval, 500}]}].\n" : "[].\n");

  const ctl = (...args: string[]): Promise<string> =>
    new Promise((resolve, reject) => {
      execFile(`${BIN}/rabbitmqctl`, ["-n", nodename, ...args], { env, timeout: 60_000 }, (err, stdout, stderr) => {
        if (err) reject(new Error(`rabbitmqctl ${args.join(" ")} failed: ${stderr || err.message}`));
        else resolve(stdout);
      });
    });

  let child: ChildProcess | null = null;
  let output = "";
  const start = async (): Promise<void> => {
    output = "";
    // Its own process group: rabbitmq-server is a shell script whose child is the Erlang VM, and
    // killing the group is the only way to be sure both go.
    const c = spawn(`${BIN}/rabbitmq-server`, [], { env, cwd: dir, stdio: ["ignore", "pipe", "pipe"], detached: true });
    child = c;
    live.add(c);
    c.once("exit", () => live.delete(c));
    c.stdout!.on("data", (d: Buffer) => (output += d.toString()));
    c.stderr!.on("data", (d: Buffer) => (output += d.toString()));
    const exited = new Promise<never>((_, reject) =>
      c.once("exit", (code) => reject(new Error(`rabbitmq-server exited (${code}) during startup:\n${output.slice(-3000)}`))),
    );
    exited.catch(() => undefined);
    // await_startup fails at once while the node has not registered with epmd yet: retry.
    const deadline = Date.now() + 90_000;
    const ready = (async () => {
      for (;;) {
        try {
          await ctl("await_startup", "--timeout", "60");
          return;
        } catch (err) {
          if (Date.now() > deadline || c.exitCode !== null) throw err;
          await new Promise((r) => setTimeout(r, 300));
        }
      }
    })();
    try {
      await Promise.race([ready, exited]);
    } catch (err) {
      // A node that never answered may still be booting: do not leave it behind.
      killGroup(c, "SIGKILL");
      throw err;
    }
  };

  const stop = async (): Promise<void> => {
    const c = child;
    if (!c || c.exitCode !== null || c.signalCode !== null) return;
    const gone = new Promise<void>((r) => c.once("exit", () => r()));
    try {
      await ctl("stop");
    } catch {
      killGroup(c, "SIGTERM");
    }
    const timer = setTimeout(() => killGroup(c, "SIGKILL"), 20_000);
    await gone;
    clearTimeout(timer);
    child = null;
  };

  const kill = async (): Promise<void> => {
    const c = child;
    if (!c || c.exitCode !== null || c.signalCode !== null) return;
    const gone = new Promise<void>((r) => c.once("exit", () => r()));
    killGroup(c, "SIGKILL");
    await gone;
    child = null;
  };

  try {
    await start();
  } catch (err) {
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
  return {
    url: `amqp://guest:guest@127.0.0.1:${port}//`,
    port,
    nodename,
    stop,
    kill,
    start,
    ctl,
    async shutdown() {
      await stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

let shared: Promise<RabbitNode> | null = null;

/** One node per test file (vitest runs files in separate workers); shut it down in afterAll. */
export function sharedRabbit(): Promise<RabbitNode> {
  shared ??= startRabbit();
  return shared;
}

export async function shutdownSharedRabbit(): Promise<void> {
  const s = shared;
  shared = null;
  if (s) await (await s).shutdown();
}

export interface RabbitCluster {
  readonly nodes: readonly RabbitNode[];
  /** Celery's failover list: every node's URL, `;`-separated. */
  readonly url: string;
  /** The node name (`name@localhost`) leading a quorum queue. */
  leaderOf(queue: string): Promise<string>;
  shutdown(): Promise<void>;
}

/**
 * A RabbitMQ cluster of `size` private nodes on loopback: the nodes boot in parallel with one
 * cookie, then each joins the first (`join_cluster` needs the joining app stopped). Slow (tens of
 * seconds on a busy machine): start one per test file.
 */
export async function startRabbitCluster(size = 3): Promise<RabbitCluster> {
  const cookie = `celeriaccluster${process.pid}x${Date.now()}`;
  const started = await Promise.allSettled(Array.from({ length: size }, () => startRabbit({ cookie })));
  const nodes = started.flatMap((r) => (r.status === "fulfilled" ? [r.value] : []));
  const failed = started.find((r): r is PromiseRejectedResult => r.status === "rejected");
  const shutdown = async (): Promise<void> => {
    await Promise.all(nodes.map((n) => n.shutdown().catch(() => undefined)));
  };
  try {
    if (failed) throw failed.reason;
    const first = nodes[0]!;
    for (const n of nodes.slice(1)) {
      await n.ctl("stop_app");
      await n.ctl("join_cluster", first.nodename);
      await n.ctl("start_app");
    }
    await first.ctl("await_online_nodes", String(size));
  } catch (err) {
    await shutdown();
    throw err;
  }
  return {
    nodes,
    url: nodes.map((n) => n.url).join(";"),
    async leaderOf(queue) {
      // Any running node answers for the cluster.
      for (const n of nodes) {
        try {
          const rows = JSON.parse(await n.ctl("list_queues", "name", "leader", "--formatter", "json")) as { name: string; leader: string }[];
          const row = rows.find((r) => r.name === queue);
          if (row) return row.leader;
        } catch {
          // this node is down: ask the next
        }
      }
      throw new Error(`no node knows the leader of ${queue}`);
    },
    shutdown,
  };
}
