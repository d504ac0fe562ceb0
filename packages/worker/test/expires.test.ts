import { afterEach, describe, expect, it } from "vitest";
import { delay, harness, ISO_NAIVE_MICROS, result, until, type Harness } from "./helpers.js";

let h: Harness;
afterEach(async () => h?.cleanup());

const revokedResult = { exc_type: "TaskRevokedError", exc_message: ["expired"], exc_module: "celery.exceptions" };

describe("expires", () => {
  it("stores REVOKED and acks an already expired task without running it", async () => {
    h = harness();
    let runs = 0;
    const w = h.worker().register("tasks.stale", () => ++runs);
    await w.start();
    const id = await h.send("tasks.stale", { headers: { expires: new Date(Date.now() - 1000).toISOString() } });
    const meta = await result(h, id);
    expect(meta).toMatchObject({ status: "REVOKED", result: revokedResult, traceback: null, task_id: id });
    expect(meta.date_done).toMatch(ISO_NAIVE_MICROS);
    expect(runs).toBe(0);
    expect(w.counters.revoked).toBe(1);
    await until("acked", () => h.transport.inflightCount("celery") === 0);
    expect(h.transport.size("celery")).toBe(0);
    expect(h.transport.deadLetters).toHaveLength(0);
  });

  it("checks again before running: a task that expired while waiting for a slot is revoked", async () => {
    h = harness();
    const ran: string[] = [];
    const w = h.worker({ concurrency: 1 }).register("tasks.slow", async (ctx) => {
      ran.push(ctx.id);
      await delay(250);
    });
    await w.start();
    const first = await h.send("tasks.slow");
    const second = await h.send("tasks.slow", { headers: { expires: new Date(Date.now() + 80).toISOString() } });
    expect((await result(h, second)).status).toBe("REVOKED");
    expect((await result(h, first)).status).toBe("SUCCESS");
    expect(ran).toEqual([first]);
  });

  it("runs a task whose expiry is still ahead", async () => {
    h = harness();
    const w = h.worker().register("tasks.fresh", () => "ran");
    await w.start();
    const id = await h.send("tasks.fresh", { headers: { expires: new Date(Date.now() + 60_000).toISOString() } });
    expect(await result(h, id)).toMatchObject({ status: "SUCCESS", result: "ran" });
  });
});
