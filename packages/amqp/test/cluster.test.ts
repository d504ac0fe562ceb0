import { randomUUID } from "node:crypto";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CeleriacError, createClient } from "@celeriac/core";
import { createAmqpTransport } from "@celeriac/amqp";
import { startRabbitCluster, type RabbitCluster } from "../../../test-support/rabbitmq.js";
import { runPython, startPythonWorker, type PythonWorker } from "../../../test-support/python.js";
import { spawnCeleriac } from "../../../apps/cli/test/cli-helpers.js";

// A 3-node RabbitMQ cluster on loopback, started once for this file: quorum queues, failover
// URLs, a node killed under load, and queues declared by Python that Celeriac adopts.

const CLI = fileURLToPath(new URL("../../../apps/cli/dist/bin.js", import.meta.url));
const TASKS = fileURLToPath(new URL("./fixtures/cluster-tasks.mjs", import.meta.url));
const QUORUM = { "x-queue-type": "quorum" };

let cluster: RabbitCluster;
let dir: string;
beforeAll(async () => {
  const t0 = Date.now();
  cluster = await startRabbitCluster(3);
  console.log(`3-node cluster up in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  dir = mkdtempSync(join(tmpdir(), "celeriac-amqp-cluster-"));
}, 300_000);
afterAll(async () => {
  await cluster?.shutdown();
  if (dir) rmSync(dir, { recursive: true, force: true });
}, 120_000);

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface Line {
  id: string;
  tag: string;
  by: "py" | "ts";
}

function readLines(path: string): Line[] {
  if (!existsSync(path)) return [];
  return readFileSync(path, "utf8")
    .split("\n")
    .filter(Boolean)
    .map((l) => {
      const [id, tag, by] = l.split(" ");
      return { id: id!, tag: tag!, by: by as "py" | "ts" };
    });
}

const cli = (args: string[]) => spawnCeleriac(args, CLI);

async function waitFor(cond: () => boolean, timeoutMs: number, what: () => string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting: ${what()}`);
    await sleep(100);
  }
}

describe("queues declared elsewhere, refused early", () => {
  it("a quorum queue with a priority is refused before anything is declared", () => {
    expect(() => createAmqpTransport({ queueArguments: QUORUM, maxPriority: 10 })).toThrow(/quorum queues do not support priorities/);
    expect(() => createAmqpTransport({ queueArguments: { ...QUORUM, "x-max-priority": 5 } })).toThrow(CeleriacError);
    expect(() => createAmqpTransport({ queues: { q: { arguments: { "x-queue-type": "stream" } } } })).toThrow(/stream/);
    expect(() => createAmqpTransport({ url: "amqp://a;;amqp://b" })).toThrow(/empty AMQP URL/);
  });

  it("the CLI refuses queue flags on a broker that has no AMQP queues", async () => {
    const c = cli(["worker", "-b", `sqlite:///${join(dir, "x.db")}`, "--tasks", TASKS, "--max-priority", "10"]);
    expect(await c.exited).toBe(2);
    expect(c.output()).toMatch(/apply to amqp:\/\/ brokers/);
  });
});

describe("failover URLs", () => {
  it("the first connection skips a node that does not answer; with none answering it names each", async () => {
    const dead = "amqp://guest:guest@127.0.0.1:1//";
    const t = createAmqpTransport({ url: `${dead};${cluster.nodes[1]!.url}` });
    await t.connect();
    await t.publish(`failover-${randomUUID().slice(0, 8)}`, {
      body: new TextEncoder().encode("{}"),
      contentType: "application/json",
      contentEncoding: "utf-8",
      headers: {},
      properties: {},
    });
    await t.close();
    const none = createAmqpTransport({ url: [dead, "amqp://guest:guest@127.0.0.1:2//"] });
    await expect(none.connect()).rejects.toThrow(/cannot connect to any of the 2 AMQP brokers: .*127\.0\.0\.1:1.*; .*127\.0\.0\.1:2/);
    await none.close();
  });
});

describe("a Python-declared priority queue (x-max-priority 10) on the cluster", () => {
  const queue = `prio-${randomUUID().slice(0, 8)}`;
  const pyEnv = () => ({
    brokerUrl: cluster.url,
    app: "cluster_app",
    env: { CELERIAC_QUEUE: queue, CELERIAC_QUEUE_ARGS: JSON.stringify({ "x-max-priority": 10 }) },
  });
  let file: string;
  let sent: string[];

  beforeAll(async () => {
    file = join(dir, `${queue}.txt`);
    // Python declares the queue (kombu declares task_queues on publish) and sends 27 tasks with
    // priorities 0..8, interleaved so sending order is not priority order.
    const calls = Array.from({ length: 27 }, (_, i) => [`p${(i * 4) % 9}-${i}`, (i * 4) % 9]);
    sent = JSON.parse(await runPython(pyEnv(), "cluster_send.py", [file, JSON.stringify(calls)])) as string[];
    expect(sent).toHaveLength(27);
  }, 60_000);

  it("a worker that declares the queue differently exits non-zero within seconds, with the broker's reason", async () => {
    for (const extra of [[], ["--max-priority", "5"]]) {
      const t0 = Date.now();
      const c = cli(["worker", "-b", cluster.url, "--tasks", TASKS, "-Q", queue, "--log-format", "json", ...extra]);
      const code = await Promise.race([c.exited, sleep(60_000).then(() => "still running")]);
      const took = Date.now() - t0;
      await c.stop();
      console.log(
        `mismatching worker (${extra.join(" ") || "no queue flags"}) exited ${String(code)} after ${took} ms: ${c.output().trim().split("\n").at(-1)}`,
      );
      expect(code, c.output()).not.toBe("still running");
      expect(code, c.output()).not.toBe(0);
      expect(c.output()).toMatch(/inequivalent arg 'x-max-priority'/);
      expect(c.output()).toContain(`queue "${queue}" already exists`);
    }
    expect(readLines(file)).toHaveLength(0);
  }, 150_000);

  it("a passive worker on a missing queue exits non-zero saying so", async () => {
    const c = cli(["worker", "-b", cluster.url, "--tasks", TASKS, "-Q", `missing-${queue}`, "--passive-queues", "--log-format", "json"]);
    const code = await Promise.race([c.exited, sleep(60_000).then(() => "still running")]);
    await c.stop();
    expect(code, c.output()).not.toBe("still running");
    expect(code, c.output()).not.toBe(0);
    expect(c.output()).toMatch(/does not exist/);
  }, 90_000);

  it("`celeriac call --passive-queues` adds to it, and a worker started with --max-priority 10 runs everything in priority order", async () => {
    // Priority 9, above everything Python sent: it must run first.
    const call = cli([
      "call",
      "cluster.record",
      "-b",
      cluster.url,
      "-Q",
      queue,
      "--passive-queues",
      "--priority",
      "9",
      "-a",
      JSON.stringify([file, "p9-call"]),
    ]);
    expect(await call.exited, call.output()).toBe(0);
    const w = cli([
      "worker",
      "-b",
      cluster.url,
      "--tasks",
      TASKS,
      "-Q",
      queue,
      "--max-priority",
      "10",
      "-c",
      "1",
      "--prefetch-multiplier",
      "1",
      "--log-format",
      "json",
    ]);
    try {
      await waitFor(
        () => readLines(file).length >= 28,
        60_000,
        () => `${readLines(file).length}/28 ran; worker said:\n${w.output()}`,
      );
    } finally {
      await w.stop();
    }
    const lines = readLines(file);
    const priorities = lines.map((l) => Number(/^p(\d)/.exec(l.tag)![1]));
    expect(lines[0]!.tag).toBe("p9-call");
    expect(priorities).toEqual([...priorities].sort((a, b) => b - a));
    expect(new Set(lines.map((l) => l.id))).toEqual(new Set([...sent, lines[0]!.id]));
  }, 120_000);
});

describe("a quorum queue on the cluster", () => {
  it("loses no confirmed task of 5,000 while its leader node is killed (SIGKILL) and restarted; Python and TypeScript workers share it", async () => {
    const queue = `quorum-${randomUUID().slice(0, 8)}`;
    const file = join(dir, `${queue}.txt`);
    const options = { url: cluster.url, queueArguments: QUORUM, reconnectMaxDelayMs: 1_000 };
    const transport = createAmqpTransport(options);
    await transport.connect();
    // Declares the quorum queue; its leader is the node the connection went to.
    await transport.purge(queue);
    const leader = await cluster.leaderOf(queue);
    const leaderNode = cluster.nodes.find((n) => n.nodename === leader)!;
    expect(leaderNode, `leader ${leader}`).toBeDefined();

    const env = { CELERIAC_QUEUE: queue, CELERIAC_QUEUE_ARGS: JSON.stringify(QUORUM), CELERIAC_PY_LOCAL_QOS: "1" };
    let py: PythonWorker | null = null;
    const ts = cli([
      "worker",
      "-b",
      cluster.url,
      "--tasks",
      TASKS,
      "-Q",
      queue,
      "--queue-arguments",
      JSON.stringify(QUORUM),
      "-c",
      "20",
      "--log-format",
      "json",
    ]);
    const client = createClient({ transport, defaultQueue: queue });
    const confirmed = new Set<string>();
    let refused = 0;
    const reasons = new Set<string>();
    let killedAt = -1;
    // Resolves once the killed node is back (set when it is killed).
    let restarted: Promise<void> = Promise.resolve();
    const t0 = Date.now();
    const at = () => `${((Date.now() - t0) / 1000).toFixed(1)} s`;
    try {
      py = await startPythonWorker({ brokerUrl: cluster.url, app: "cluster_app", queues: [queue], env });
      await waitFor(
        () => /celeriac worker ready/.test(ts.output()) || ts.child.exitCode !== null,
        60_000,
        () => ts.output(),
      );
      expect(ts.child.exitCode, ts.output()).toBeNull();

      const total = 5_000;
      let next = 0;
      // 50 publishes in flight: each resolves only once the broker confirmed it.
      const publisher = async (): Promise<void> => {
        while (next < total) {
          const i = next++;
          if (i === 1_500) {
            killedAt = confirmed.size;
            await leaderNode.kill();
            console.log(`${at()}: leader ${leader} killed`);
            restarted = sleep(5_000).then(async () => {
              await leaderNode.start();
              console.log(`${at()}: ${leader} restarted`);
            });
          }
          try {
            const r = await client.sendTask("cluster.record", { args: [file, `t${i}`] });
            confirmed.add(r.id);
          } catch (err) {
            refused++;
            reasons.add(String(err));
          }
        }
      };
      await Promise.all(Array.from({ length: 50 }, publisher));
      console.log(`${at()}: publishing done`);
      await restarted;
      console.log(`published: ${confirmed.size} confirmed, ${refused} refused (leader ${leader} killed after ${killedAt} confirmed)`, [...reasons].slice(0, 5));
      const executed = () => new Set(readLines(file).map((l) => l.id));
      const missing = () => {
        const ran = executed();
        return [...confirmed].filter((id) => !ran.has(id));
      };
      await waitFor(
        () => missing().length === 0,
        120_000,
        () => `${missing().length} confirmed tasks never ran; ts worker:\n${ts.output().slice(-3000)}\npy worker:\n${py?.output().slice(-3000)}`,
      );
      console.log(`${at()}: every confirmed task ran`);
      const lines = readLines(file);
      const by = { py: lines.filter((l) => l.by === "py").length, ts: lines.filter((l) => l.by === "ts").length };
      console.log(`executed ${lines.length} (${executed().size} distinct; ${lines.length - executed().size} duplicates): py ${by.py}, ts ${by.ts}`);
      expect(missing()).toEqual([]);
      expect(confirmed.size).toBeGreaterThan(4_000);
      expect(by.py).toBeGreaterThan(0);
      expect(by.ts).toBeGreaterThan(0);
      // The TypeScript worker saw the outage and came back by itself.
      expect(ts.output()).toMatch(/broker connection lost/);
      expect(ts.child.exitCode, ts.output()).toBeNull();
    } finally {
      await restarted;
      await ts.stop();
      await py?.stop();
      await transport.close();
    }
  }, 300_000);
});
