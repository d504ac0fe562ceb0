import { spawn, type ChildProcess } from "node:child_process";
import { randomUUID } from "node:crypto";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createClient } from "@celeriac/core";
import { createAmqpTransport } from "@celeriac/amqp";
import { createWorker } from "@celeriac/worker";
import { sharedRabbit, shutdownSharedRabbit, type RabbitNode } from "../../../test-support/rabbitmq.js";

const CLI = fileURLToPath(new URL("../../../apps/cli/dist/bin.js", import.meta.url));
const TASKS = fileURLToPath(new URL("./fixtures/amqp-record-tasks.mjs", import.meta.url));

let rabbit: RabbitNode;
let dir: string;
beforeAll(async () => {
  rabbit = await sharedRabbit();
  dir = mkdtempSync(join(tmpdir(), "celeriac-amqp-rel-"));
}, 120_000);
afterAll(async () => {
  await shutdownSharedRabbit();
  if (dir) rmSync(dir, { recursive: true, force: true });
}, 60_000);

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function readIds(path: string): string[] {
  return existsSync(path) ? readFileSync(path, "utf8").split("\n").filter(Boolean) : [];
}

function startCliWorker(queue: string): { child: ChildProcess; output: () => string } {
  const child = spawn(process.execPath, [CLI, "worker", "--broker", rabbit.url, "--tasks", TASKS, "-Q", queue, "-c", "10", "-q"], {
    env: { ...process.env, CELERIAC_BROKER_URL: "", CELERIAC_RESULT_BACKEND: "" },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  child.stdout!.on("data", (d: Buffer) => (out += d.toString()));
  child.stderr!.on("data", (d: Buffer) => (out += d.toString()));
  return { child, output: () => out };
}

async function waitFor(cond: () => boolean, timeoutMs: number, what: () => string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting: ${what()}`);
    await sleep(50);
  }
}

describe("reliability on a real RabbitMQ", () => {
  it("a worker killed with SIGKILL mid-batch loses none of 1,000 late-ack tasks", async () => {
    const queue = `amqp-kill-${randomUUID().slice(0, 8)}`;
    const file = join(dir, `${queue}.txt`);
    const transport = createAmqpTransport({ url: rabbit.url });
    const client = createClient({ transport, defaultQueue: queue });
    const ids = new Set<string>();
    await Promise.all(
      Array.from({ length: 1000 }, async () => {
        const r = await client.sendTask("amqp.record", { args: [file] });
        ids.add(r.id);
      }),
    );
    expect(ids.size).toBe(1000);

    const first = startCliWorker(queue);
    await waitFor(
      () => readIds(file).length >= 200,
      60_000,
      () => `first worker ran ${readIds(file).length}\n${first.output()}`,
    );
    const exited = new Promise((r) => first.child.once("exit", r));
    first.child.kill("SIGKILL");
    await exited;
    const ranBeforeKill = new Set(readIds(file)).size;
    expect(ranBeforeKill).toBeLessThan(1000);

    const second = startCliWorker(queue);
    try {
      await waitFor(
        () => new Set(readIds(file)).size >= 1000,
        90_000,
        () => `ran ${new Set(readIds(file)).size} of 1000\n${second.output()}`,
      );
      const ran = new Set(readIds(file));
      const missing = [...ids].filter((id) => !ran.has(id));
      expect(missing).toEqual([]);
      // Nothing is left behind in the queue once the second worker is done.
      await sleep(500);
      expect(await transport.purge(queue)).toBe(0);
    } finally {
      const gone = new Promise((r) => second.child.once("exit", r));
      second.child.kill("SIGTERM");
      await gone;
      await transport.close();
    }
  }, 180_000);

  it("producer and worker recover by themselves when RabbitMQ stops and starts under load; no confirmed task is lost", async () => {
    const queue = `amqp-restart-${randomUUID().slice(0, 8)}`;
    const events: string[] = [];
    const options = { url: rabbit.url, reconnectInitialDelayMs: 100, reconnectMaxDelayMs: 500, publishTimeoutMs: 90_000 };
    const producer = createAmqpTransport({ ...options, onEvent: (e) => events.push(`producer:${e}`) });
    const workerTransport = createAmqpTransport({ ...options, onEvent: (e) => events.push(`worker:${e}`) });
    // The one typed stream the CLI logs: the outage must open and close on it.
    const lifecycle: string[] = [];
    workerTransport.lifecycle.subscribe((e) => lifecycle.push(e.type));
    await producer.connect();
    await workerTransport.connect();
    const seen = new Set<string>();
    const worker = createWorker({ transport: workerTransport, queues: [queue], concurrency: 20, silent: true });
    worker.register("amqp.mark", (ctx) => void seen.add(ctx.id), { acksLate: true });
    await worker.start();
    const client = createClient({ transport: producer, defaultQueue: queue });

    const confirmed = new Set<string>();
    const failed: unknown[] = [];
    let done = false;
    // Sends pending while the broker was down and confirmed after it came back.
    const spans: [number, number][] = [];
    const sendLoop = async () => {
      while (!done) {
        const began = Date.now();
        try {
          const r = await client.sendTask("amqp.mark");
          confirmed.add(r.id);
          spans.push([began, Date.now()]);
        } catch (err) {
          failed.push(err);
        }
        await sleep(5);
      }
    };
    const senders = Promise.all(Array.from({ length: 8 }, sendLoop));

    await waitFor(
      () => confirmed.size >= 300,
      60_000,
      () => `confirmed ${confirmed.size}`,
    );
    await rabbit.stop();
    const downAt = Date.now();
    await sleep(1000);
    const restartAt = Date.now();
    await rabbit.start();
    const atRestart = confirmed.size;
    await waitFor(
      () => confirmed.size >= atRestart + 300,
      90_000,
      () => `confirmed ${confirmed.size}, failed ${failed.length}`,
    );
    done = true;
    await senders;

    expect(failed).toEqual([]);
    expect(spans.filter(([b, e]) => b <= downAt && e >= restartAt).length).toBeGreaterThan(0);
    await waitFor(
      () => [...confirmed].every((id) => seen.has(id)),
      90_000,
      () => `worker saw ${[...confirmed].filter((id) => seen.has(id)).length} of ${confirmed.size}; events ${events.join(",")}`,
    );
    expect(events).toContain("producer:reconnected");
    expect(events).toContain("worker:consumer-recovered");
    const lost = lifecycle.indexOf("disconnected");
    expect(lost, lifecycle.join(",")).toBeGreaterThan(0);
    expect(lifecycle.slice(lost + 1), lifecycle.join(",")).toContain("reconnecting");
    expect(lifecycle.slice(lost + 1), lifecycle.join(",")).toContain("connected");
    expect(workerTransport.lifecycle.state).toBe("connected");
    await worker.stop();
    await workerTransport.close();
    await producer.close();
  }, 240_000);
});
