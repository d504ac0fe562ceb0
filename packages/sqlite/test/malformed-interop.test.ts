import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { celeryJsonCodec, createEnvelope, createMemoryResultBackend } from "@celeriac/core";
import { createSqliteTransport } from "@celeriac/sqlite";
import { createWorker, type LogRecord } from "@celeriac/worker";
import { describe, expect, it } from "vitest";
import { runPython } from "../../../test-support/python.js";

const enc = new TextEncoder();

// Real Python Celery 5.2.6 messages on the kombu sqla+sqlite tables, with malformed ones around
// them: every good one runs once, every bad one is refused with one log line and never runs, and
// nothing is left in the queue.
describe("malformed messages among Python's on one SQLite broker", () => {
  it("runs every good message and refuses every bad one (garbage eta/expires, object body, args not a list)", async () => {
    const db = join(mkdtempSync(join(tmpdir(), "celeriac-malformed-")), "broker.db");
    const transport = createSqliteTransport({ path: db });
    await transport.connect(); // creates kombu's tables before Python uses them
    const bad = new Map<string, RegExp>();
    const publishBad = async (round: number) => {
      const kinds: [string, Record<string, unknown>, string | null, RegExp][] = [
        ["eta", { eta: "next tuesday" }, null, /header "eta" .* is not an ISO 8601 time/],
        ["expires", { expires: "garbage" }, null, /header "expires" .* is not an ISO 8601 time/],
        ["object", {}, '{"x": 1, "kwargs": {}}', /object without "args"/],
        ["args", {}, '[{"a": 1}, {}, null]', /args must be an array/],
        ["embed", {}, "[[], {}, 7]", /embed must be an object/],
      ];
      for (const [kind, headers, body, reason] of kinds) {
        const id = `bad-${kind}-${round}`;
        const m = celeryJsonCodec.encode(createEnvelope({ task: "ts.add", id, args: [1, 1] }));
        await transport.publish("celery", { ...m, headers: { ...m.headers, ...headers }, ...(body ? { body: enc.encode(body) } : {}) });
        bad.set(id, reason);
      }
    };
    await publishBad(1);
    const specs = Array.from({ length: 20 }, (_, i) => ({ name: "ts.add", args: [i, i] }));
    const good = JSON.parse(await runPython({ brokerUrl: `sqla+sqlite:///${db}` }, "send_many.py", [JSON.stringify(specs)])) as string[];
    await publishBad(2);

    const logs: LogRecord[] = [];
    const ran = new Map<string, number>();
    const backend = createMemoryResultBackend();
    const worker = createWorker({ transport, resultBackend: backend, concurrency: 4, logger: (r) => logs.push(r) });
    worker.register("ts.add", (ctx, a, b) => {
      ran.set(ctx.id, (ran.get(ctx.id) ?? 0) + 1);
      return (a as number) + (b as number);
    });
    await worker.start();
    for (const [i, id] of good.entries()) expect((await backend.waitFor(id, { timeoutMs: 30_000 })).result).toBe(2 * i);
    const deadline = Date.now() + 10_000;
    while (worker.counters.rejected < bad.size && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    await worker.stop();

    expect([...ran.keys()].sort()).toEqual([...good].sort());
    expect([...ran.values()].every((n) => n === 1)).toBe(true);
    expect(worker.counters.rejected).toBe(bad.size);
    for (const [id, reason] of bad) {
      const lines = logs.filter((l) => l.taskId === id);
      expect(lines, id).toHaveLength(1);
      expect(lines[0]).toMatchObject({ level: "error", task: "ts.add" });
      expect(lines[0]!.msg).toMatch(reason);
    }
    expect(await transport.purge("celery")).toBe(0);
    expect((await transport.readDeadLetters!("celery")).length).toBe(bad.size);
    await transport.close();
  }, 90_000);
});
