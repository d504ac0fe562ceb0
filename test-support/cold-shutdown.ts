import { randomUUID } from "node:crypto";
import { describe, expect, it } from "vitest";
import { createClient, type Transport } from "@celeriac/core";
import { createWorker } from "@celeriac/worker";

async function until(what: string, check: () => boolean, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/**
 * Celery's cold shutdown on a real broker: a worker draining late-ack tasks whose handlers never
 * end is stopped a second time (`stop({ graceMs: 0 })`, what a second SIGTERM does); it must stop
 * at once and every unfinished message must be back on the queue, where a second worker runs it.
 * Run by each transport package against its own server.
 */
export function describeColdShutdown(name: string, makeTransport: () => Transport): void {
  describe(`${name}: cold shutdown of a worker`, () => {
    it("a second stop hands every unfinished late-ack message back at once, and another worker runs each", async () => {
      const queue = `cold-${randomUUID().slice(0, 8)}`;
      const transport = makeTransport();
      await transport.connect();
      try {
        const client = createClient({ transport, defaultQueue: queue });
        let started = 0;
        const first = createWorker({ transport, queues: [queue], concurrency: 3, shutdownGraceMs: 60_000, silent: true });
        // Ignores its abort signal: only handing the message back ends this task.
        first.register("cold.stuck", () => (started++, new Promise(() => {})), { acksLate: true });
        await first.start();
        const ids = new Set<string>();
        for (let i = 0; i < 3; i++) ids.add((await client.sendTask("cold.stuck")).id);
        await until("three tasks running", () => started === 3, 30_000);

        const warm = first.stop();
        await until("the warm shutdown draining", () => first.state === "draining", 10_000);
        const t0 = Date.now();
        await first.stop({ graceMs: 0 });
        await warm;
        expect(Date.now() - t0).toBeLessThan(2000);
        expect(first.forced).toBe(true);
        expect(first.state).toBe("stopped");

        const ran = new Set<string>();
        const second = createWorker({ transport, queues: [queue], concurrency: 3, silent: true });
        second.register("cold.stuck", (ctx) => void ran.add(ctx.id), { acksLate: true });
        await second.start();
        await until("the handed-back messages to run again", () => ran.size === ids.size, 30_000);
        expect(ran).toEqual(ids);
        await second.stop();
      } finally {
        await transport.close();
      }
    }, 90_000);
  });
}
