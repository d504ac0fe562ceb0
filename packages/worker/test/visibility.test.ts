import { defineTask } from "@celeriac/core";
import { afterEach, describe, expect, it } from "vitest";
import { delay, harness, result, type Harness } from "./helpers.js";

let h: Harness;
afterEach(async () => h?.cleanup());

describe("visibility extension in step with the transport's timeout", () => {
  it("a late-ack task lasting 3x a 1 s visibility timeout runs exactly once, with a second worker waiting for redeliveries", async () => {
    h = harness({ visibilityTimeoutMs: 1000 });
    const runs: string[] = [];
    const t = defineTask<[number], number>("tasks.long", { acksLate: true });
    const handler = async (ctx: { id: string }, ms: number) => {
      runs.push(ctx.id);
      await delay(ms);
      return ms;
    };
    const a = h.worker({ concurrency: 1 }).register(t, handler);
    const b = h.worker({ concurrency: 1 }).register(t, handler);
    await a.start();
    await b.start();
    const id = await h.send("tasks.long", { args: [3000] });
    expect(await result(h, id, 10_000)).toMatchObject({ status: "SUCCESS", result: 3000 });
    await delay(200);
    expect(runs).toEqual([id]);
    expect(h.transport.size("celery") + h.transport.inflightCount("celery")).toBe(0);
  });
});
