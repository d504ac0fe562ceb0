import type { Signature } from "@celeriac/core";
import { afterEach, describe, expect, it } from "vitest";
import { harness, result, until, type Harness } from "./helpers.js";

let h: Harness;
afterEach(async () => h?.cleanup());

function sig(task: string, args: unknown[] = [], options: Record<string, unknown> = {}, immutable = false): Signature {
  return { task, args, kwargs: {}, options, subtaskType: null, immutable };
}

interface Seen {
  args: unknown[];
  parentId: string | null;
  rootId: string;
  queue: string;
}

function recordingWorker(h: Harness, queues = ["celery"]) {
  const seen = new Map<string, Seen>();
  const w = h
    .worker({ queues })
    .register("tasks.add", (ctx, ...args) => {
      seen.set(ctx.id, { args, parentId: ctx.parentId, rootId: ctx.rootId, queue: ctx.delivery.queue });
      return (args as number[]).reduce((a, b) => a + b, 0);
    })
    .register("tasks.mul", (ctx, ...args) => {
      seen.set(ctx.id, { args, parentId: ctx.parentId, rootId: ctx.rootId, queue: ctx.delivery.queue });
      return (args as number[]).reduce((a, b) => a * b, 1);
    })
    .register("tasks.fail", () => {
      throw new Error("boom");
    })
    .register("tasks.on_error", (ctx, ...args) => {
      seen.set(ctx.id, { args, parentId: ctx.parentId, rootId: ctx.rootId, queue: ctx.delivery.queue });
      return "handled";
    });
  return { w, seen };
}

describe("link, link_error and chain", () => {
  it("link: the callback gets the result prepended; parent and root ids point back", async () => {
    h = harness();
    const { w, seen } = recordingWorker(h, ["celery", "other"]);
    await w.start();
    const id = await h.send("tasks.add", {
      args: [2, 3],
      embed: { callbacks: [sig("tasks.mul", [10], { task_id: "cb-1", queue: "other" }), sig("tasks.mul", [7], { task_id: "cb-2" }, true)] },
    });
    expect((await result(h, id)).result).toBe(5);
    expect((await result(h, "cb-1")).result).toBe(50);
    expect(seen.get("cb-1")).toEqual({ args: [5, 10], parentId: id, rootId: id, queue: "other" });
    // Immutable: the result is not prepended.
    expect((await result(h, "cb-2")).result).toBe(7);
    expect(seen.get("cb-2")!.args).toEqual([7]);
    expect(seen.get("cb-2")!.queue).toBe("celery");
  });

  it("link_error: the errback is called the old way, with the failed task's id", async () => {
    h = harness();
    const { w, seen } = recordingWorker(h);
    await w.start();
    const id = await h.send("tasks.fail", {
      headers: { rootId: "root-9" },
      embed: { errbacks: [sig("tasks.on_error", [], { task_id: "eb-1" })], callbacks: [sig("tasks.mul", [1], { task_id: "never" })] },
    });
    expect((await result(h, id)).status).toBe("FAILURE");
    expect((await result(h, "eb-1")).result).toBe("handled");
    expect(seen.get("eb-1")).toMatchObject({ args: [id], parentId: id, rootId: "root-9" });
    expect(await h.backend.get("never")).toBeNull();
  });

  it("chain: pops the last step, prepends the result and carries the rest", async () => {
    h = harness();
    const { w, seen } = recordingWorker(h);
    await w.start();
    // add(1, 2) | mul(10) | add(4): remaining steps travel in reverse order.
    const chain = [sig("tasks.add", [4], { task_id: "step-3" }), sig("tasks.mul", [10], { task_id: "step-2" })];
    const id = await h.send("tasks.add", { args: [1, 2], embed: { chain } });
    expect((await result(h, "step-3")).result).toBe(34);
    expect((await result(h, "step-2")).result).toBe(30);
    expect(seen.get("step-2")).toMatchObject({ args: [3, 10], parentId: id, rootId: id });
    expect(seen.get("step-3")).toMatchObject({ args: [30, 4], parentId: "step-2", rootId: id });
  });

  it("chain: a failing step fails the remaining steps that have ids", async () => {
    h = harness();
    const { w } = recordingWorker(h);
    await w.start();
    const id = await h.send("tasks.fail", { embed: { chain: [sig("tasks.add", [1], { task_id: "after-fail" })] } });
    expect((await result(h, id)).status).toBe("FAILURE");
    const step = await result(h, "after-fail");
    expect(step.status).toBe("FAILURE");
    expect(step.result).toMatchObject({ exc_type: "Error", exc_message: ["boom"] });
    await until("nothing else queued", () => h.transport.size("celery") === 0);
  });

  it("a chain given as a link signature is expanded into its steps", async () => {
    h = harness();
    const { w } = recordingWorker(h);
    await w.start();
    const wireChain: Signature = {
      task: "celery.chain",
      args: [],
      kwargs: {
        tasks: [
          { task: "tasks.mul", args: [2], kwargs: {}, options: { task_id: "c-1" }, subtask_type: null, immutable: false },
          { task: "tasks.add", args: [1], kwargs: {}, options: { task_id: "c-2" }, subtask_type: null, immutable: false },
        ],
      },
      options: {},
      subtaskType: "chain",
      immutable: false,
    };
    await h.send("tasks.add", { args: [5], embed: { callbacks: [wireChain] } });
    expect((await result(h, "c-1")).result).toBe(10);
    expect((await result(h, "c-2")).result).toBe(11);
  });
});

describe("groups as callbacks", () => {
  it("publishes every member with the result and the group's id; no index, as group.apply_async in Celery 5.2.6", async () => {
    h = harness();
    const seen = new Map<string, { args: unknown[]; group: string | null; index: unknown }>();
    const w = h
      .worker()
      .register("tasks.src", () => 4)
      .register("tasks.member", (ctx, ...args) => {
        seen.set(ctx.id, { args, group: ctx.groupId, index: ctx.headers["group_index"] });
        return args;
      });
    await w.start();
    const member = (id: string, extra: number) => ({
      task: "tasks.member",
      args: [extra],
      kwargs: {},
      options: { task_id: id },
      subtask_type: null,
      immutable: false,
    });
    const group: Signature = {
      task: "celery.group",
      args: [],
      kwargs: { tasks: [member("m-0", 1), member("m-1", 2)] },
      // group._freeze_gid: the group's task_id becomes its members' group id.
      options: { task_id: "grp-1" },
      subtaskType: "group",
      immutable: false,
    };
    await h.send("tasks.src", { embed: { callbacks: [group] } });
    expect((await result(h, "m-0")).result).toEqual([4, 1]);
    expect((await result(h, "m-1")).result).toEqual([4, 2]);
    expect(seen.get("m-0")).toEqual({ args: [4, 1], group: "grp-1", index: null });
    expect(seen.get("m-1")).toEqual({ args: [4, 2], group: "grp-1", index: null });
    expect((await result(h, "m-1")).group_id).toBe("grp-1");
  });
});

describe("routing and grouping of follow-ups", () => {
  it("routes: a step without a queue goes where the worker's routes say, else to its first queue", async () => {
    h = harness();
    const seen = new Map<string, string>();
    const w = h
      .worker({ queues: ["celery", "py-only"], routes: { "py.*": "py-only" } })
      .register("tasks.src", () => 1)
      .register("py.step", (ctx) => void seen.set(ctx.id, ctx.delivery.queue))
      .register("tasks.step", (ctx) => void seen.set(ctx.id, ctx.delivery.queue));
    await w.start();
    await h.send("tasks.src", { embed: { callbacks: [sig("py.step", [], { task_id: "routed" })], chain: [sig("tasks.step", [], { task_id: "unrouted" })] } });
    await until("both ran", () => seen.size === 2);
    expect(Object.fromEntries(seen)).toEqual({ routed: "py-only", unrouted: "celery" });
  });

  it("several callbacks are applied as one group, as Celery's trace does; errbacks too", async () => {
    h = harness();
    const { w } = recordingWorker(h);
    await w.start();
    const src = await h.send("tasks.add", {
      args: [1, 1],
      embed: { callbacks: [sig("tasks.mul", [2], { task_id: "cb-a" }), sig("tasks.mul", [3], { task_id: "cb-b" })] },
    });
    const [a, b] = [await result(h, "cb-a"), await result(h, "cb-b")];
    expect([a.result, b.result]).toEqual([4, 6]);
    expect(a.group_id).toBeTruthy();
    expect(a.group_id).toBe(b.group_id);
    expect(a.parent_id).toBe(src);
    const failed = await h.send("tasks.fail", { embed: { errbacks: [sig("tasks.on_error", [], { task_id: "eb-a" })] } });
    const eb = await result(h, "eb-a");
    expect(eb.result).toBe("handled");
    expect(eb.group_id).toBeTruthy();
    expect(eb.parent_id).toBe(failed);
  });

  it("a chord as a callback is not published when the backend cannot count chord parts", async () => {
    h = harness();
    const { w } = recordingWorker(h);
    await w.start();
    const chordSig: Signature = {
      task: "celery.chord",
      args: [],
      kwargs: {
        kwargs: {},
        header: {
          task: "celery.group",
          args: [],
          kwargs: { tasks: [{ task: "tasks.add", args: [1], kwargs: {}, options: { task_id: "hdr" }, subtask_type: null, immutable: false }] },
          options: {},
          subtask_type: "group",
          immutable: false,
        },
        body: { task: "tasks.mul", args: [], kwargs: {}, options: { task_id: "body" }, subtask_type: null, immutable: false },
      },
      options: {},
      subtaskType: "chord",
      immutable: false,
    };
    const id = await h.send("tasks.add", { args: [1, 1], embed: { callbacks: [chordSig] } });
    expect((await result(h, id)).result).toBe(2);
    await until("nothing else queued", () => h.transport.size("celery") === 0);
    expect(await h.backend.get("hdr")).toBeNull();
  });
});
