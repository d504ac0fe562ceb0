import { describe, expect, expectTypeOf, it } from "vitest";
import {
  AsyncResult,
  CeleriacError,
  celeryJsonCodec,
  chain,
  chord,
  createClient,
  createMemoryResultBackend,
  createMemoryTransport,
  defineTask,
  group,
  GroupResult,
  s,
  si,
  signature,
  withOptions,
  type CanvasResultHandle,
  type Signature,
} from "@celeriac/core";
import { chordOutcome, chordSizeOf, planCanvas, type CanvasPlan } from "@celeriac/core/transport";
import { runPython } from "../../../test-support/python.js";

const add = defineTask<[number, number], number>("ts.add");
const upper = defineTask<[string], string>("ts.upper");
const length = defineTask<[string], number>("py.length");

const routes: Record<string, string> = { "py.": "py-q", "ts.": "ts-q" };
const route = (task: string) => Object.entries(routes).find(([p]) => task.startsWith(p))?.[1] ?? "celery";
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** The same normalisation as test-support/python/canvas_capture.py. */
function norm(v: unknown): unknown {
  if (typeof v === "string" && UUID.test(v)) return "<id>";
  if (Array.isArray(v)) return v.map(norm);
  if (v !== null && typeof v === "object") {
    return Object.fromEntries(
      Object.entries(v as Record<string, unknown>)
        .filter(([k, x]) => k !== "reply_to" && !((k === "root_id" || k === "parent_id") && x === null))
        .map(([k, x]) => [k, norm(x)]),
    );
  }
  return v;
}

/** What would be published, in canvas_capture.py's shape. */
function wireOf(plan: CanvasPlan): unknown[] {
  return plan.messages.map((m) => {
    const wire = celeryJsonCodec.encode(m.envelope);
    const h = wire.headers;
    return norm({
      task: h["task"],
      queue: m.queue ?? route(m.envelope.headers.task),
      headers: { group: h["group"], group_index: h["group_index"], root_id: h["root_id"], parent_id: h["parent_id"] },
      body: JSON.parse(Buffer.from(wire.body).toString("utf8")) as unknown,
    });
  });
}

const byName = (task: string, ...args: unknown[]): Signature => signature(task, { args });
const ctx = () => ({ parentId: null, rootId: null, now: new Date() });

describe("canvas on the wire, compared with what Python Celery 5.2.6 publishes", () => {
  const cases: [string, () => Signature][] = [
    ["chain", () => chain(byName("py.a", 1), byName("ts.b", 2), byName("py.c"))],
    ["group", () => group([byName("py.a", 1), byName("ts.b", 2)])],
    ["chord", () => chord([byName("py.a", 1), byName("ts.b", 2)], byName("ts.sum"))],
    ["chain_with_group", () => chain(byName("py.a", 1), group([byName("ts.b"), byName("py.c")]), byName("ts.sum"))],
    ["links", () => withOptions(byName("ts.fail"), { link: byName("py.ok"), linkError: byName("py.err") })],
  ];
  for (const [kind, build] of cases) {
    it(kind, async () => {
      const python = JSON.parse(await runPython({ brokerUrl: "memory://" }, "canvas_capture.py", [kind])) as unknown[];
      expect(wireOf(planCanvas(build(), [], ctx()))).toEqual(python);
    });
  }
});

describe("canvas ids and relations", () => {
  it("chain: remaining steps reversed with ids; the result is the last step's", () => {
    const plan = planCanvas(chain(s(add, 1, 2), s(add, 10), s(add, 100)), [], ctx());
    expect(plan.messages).toHaveLength(1);
    const steps = plan.messages[0]!.envelope.embed.chain!;
    expect(steps.map((st) => st.args)).toEqual([[100], [10]]);
    expect(plan.result).toEqual({ kind: "task", id: steps[0]!.options["task_id"] });
  });

  it("chain: nested chains are spliced and partial args go to the very first step", () => {
    const plan = planCanvas(chain(chain(s(add, 1), s(add, 2)), s(add, 3)), [10], ctx());
    expect(plan.messages.map((m) => m.envelope.args)).toEqual([[10, 1]]);
    expect(plan.messages[0]!.envelope.embed.chain!.map((st) => st.args)).toEqual([[3], [2]]);
  });

  it("chord: every header task carries the body with its id, the group id and its index; the size is set", () => {
    const plan = planCanvas(chord([s(add, 1, 1), s(add, 2, 2), si(add, 3, 3)], s(add, 0)), [], ctx());
    const [first, second, third] = plan.messages.map((m) => m.envelope);
    const gid = first!.headers.group!;
    expect(plan.chordSizes).toEqual([{ groupId: gid, size: 3 }]);
    expect([first, second, third].map((e) => [e!.headers.group, e!.headers.groupIndex])).toEqual([
      [gid, 0],
      [gid, 1],
      [gid, 2],
    ]);
    const bodyId = first!.embed.chord!.options["task_id"];
    expect(plan.result).toEqual({ kind: "task", id: bodyId });
    expect(third!.embed.chord!.options["task_id"]).toBe(bodyId);
  });

  it("chord header with a chain member counts it once, and its last step carries the chord", () => {
    const body = s(add, 0);
    const header = [chain(s(add, 1, 1), s(add, 5)), s(add, 2, 2)];
    expect(chordSizeOf(group(header))).toBe(2);
    const plan = planCanvas(chord(header, body), [], ctx());
    const chainFirst = plan.messages[0]!.envelope;
    expect(chainFirst.embed.chord).toBeNull();
    const last = chainFirst.embed.chain![0]!;
    expect(last.options["chord"]).toBeTruthy();
    expect(last.options["group_index"]).toBe(0);
    expect(last.options["group_id"]).toBe(plan.chordSizes[0]!.groupId);
  });

  it("an empty chord header sends the body at once with []", () => {
    const plan = planCanvas(chord([], s(add, 1)), [], ctx());
    expect(plan.messages.map((m) => m.envelope.args)).toEqual([[[], 1]]);
    expect(plan.chordSizes).toEqual([]);
  });

  it("a chord in a group is refused, not published wrong", () => {
    expect(() => planCanvas(group([chord([s(add, 1, 1)], s(add, 1))]), [], ctx())).toThrow(CeleriacError);
  });

  it("a group cannot take a link (Celery refuses it too)", () => {
    expect(() => withOptions(group([s(add, 1, 1)]), { link: s(add, 1) })).toThrow(/use a chord/);
  });

  it("chordOutcome: values in order, or Celery's ChordError for the first failed part", () => {
    expect(
      chordOutcome([
        { taskId: "a", state: "SUCCESS", result: 1 },
        { taskId: "b", state: "SUCCESS", result: [2] },
      ]),
    ).toEqual({ values: [1, [2]] });
    expect(
      chordOutcome([
        { taskId: "a", state: "SUCCESS", result: 1 },
        { taskId: "b", state: "FAILURE", result: { exc_type: "ValueError", exc_message: ["it's bad"], exc_module: "builtins" } },
      ]),
    ).toEqual({ error: { exc_type: "ChordError", exc_message: [`Dependency b raised ValueError("it's bad")`], exc_module: "celery.exceptions" } });
  });
});

describe("the typed API", () => {
  it("types a chain as its last step, a group as its members, a chord as its body", () => {
    const c = chain(s(add, 1, 2), s(add, 3), s(upper, "x"));
    expectTypeOf(c).toMatchTypeOf<Signature>();
    const g = group([s(add, 1, 2), s(length, "abc")]);
    const k = chord([s(add, 1, 2)], s(upper));
    expectTypeOf<CanvasResultHandle<typeof c>>().toEqualTypeOf<AsyncResult<string>>();
    expectTypeOf<CanvasResultHandle<typeof g>>().toEqualTypeOf<GroupResult<[number, number]>>();
    expectTypeOf<CanvasResultHandle<typeof k>>().toEqualTypeOf<AsyncResult<string>>();
    expectTypeOf<CanvasResultHandle<Signature>>().toEqualTypeOf<AsyncResult | GroupResult>();
    // s() takes all args, or all but the first (the parent's result); si() takes all of them.
    // @ts-expect-error: wrong argument type
    s(add, "1");
    // @ts-expect-error: si needs every argument
    si(add, 1);
    expect([c, g, k].map((x) => x.subtaskType)).toEqual(["chain", "group", "chord"]);
  });

  it("client.apply: a group gives a GroupResult in member order; a chord without a chord-capable backend is refused", async () => {
    const transport = createMemoryTransport();
    const client = createClient({ transport, resultBackend: createMemoryResultBackend(), routes: { "ts.*": "ts-q" } });
    const g = await client.apply(group([s(add, 1, 2), s(add, 3, 4)]));
    expect(g).toBeInstanceOf(GroupResult);
    expect(g.results).toHaveLength(2);
    expect(transport.size("ts-q")).toBe(2);
    await expect(client.apply(chord([s(add, 1, 2)], s(add, 1)))).rejects.toMatchObject({ code: "unsupported" });
    await expect(client.apply(chain(s(add, 1, 2), group([s(add, 1), s(add, 2)]), s(add, 1)))).rejects.toMatchObject({ code: "unsupported" });
    expect(transport.size("ts-q")).toBe(2);
  });
});
