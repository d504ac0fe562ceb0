/**
 * Canvas: chains, groups and chords, built as Celery's signature dicts and expanded into task
 * messages the way Celery 5.2.6 does it (celery/canvas.py), so a workflow started here runs on
 * Python Celery workers, Celeriac workers, or both.
 *
 * A canvas value is an envelope `Signature` whose nested signatures (chain steps, group members,
 * chord header and body, links) are kept in Celery's wire form (`subtask_type`, snake_case
 * options): exactly what goes into a message, so a worker of either language can continue it.
 */
import { randomUUID } from "node:crypto";
import { createEnvelope, type ExceptionInfo, type Signature, type TaskEnvelope, type TaskState } from "./envelope.js";
import { CeleriacError } from "./errors.js";
import { pyRepr, truncatedRepr } from "./py-repr.js";
import type { TaskDefinition, TaskOptions } from "./task.js";
import { toCeleryIso } from "./time.js";

declare const canvasTypes: unique symbol;

/**
 * A signature with its result type attached for the compiler. `Handle` says what sending it
 * gives back: "task" an `AsyncResult`, "group" a `GroupResult`. A plain `Signature` is a
 * `Canvas` of unknown result.
 */
export interface Canvas<Result = unknown, Handle extends "task" | "group" = "task" | "group"> extends Signature {
  readonly [canvasTypes]?: { result: Result; handle: Handle };
}

/** The result type a canvas produces: a task's result, a chain's last step's, a group's tuple. */
export type CanvasResult<C> = C extends Canvas<infer R, infer _H> ? R : unknown;
/** "task" when sending it gives an `AsyncResult`, "group" when a `GroupResult`. */
export type CanvasHandle<C> = C extends Canvas<infer _R, infer H> ? H : "task" | "group";

type DropFirst<T extends unknown[]> = T extends [unknown, ...infer Rest] ? Rest : T;
type Last<T extends unknown[]> = T extends [...unknown[], infer L] ? L : never;

/** Celery's signature dict as it appears inside messages and other signatures. */
export type WireSignature = Record<string, unknown>;

/** Options of a signature, Celery's `apply_async` options in TypeScript's naming. */
export interface SignatureOptions {
  queue?: string;
  taskId?: string;
  countdownMs?: number;
  eta?: Date;
  /** A time, or ms from when the message is sent. */
  expires?: Date | number;
  priority?: number;
  timeLimitMs?: number;
  softTimeLimitMs?: number;
  ignoreResult?: boolean;
  /** Called with the result on success. */
  link?: Signature | Signature[];
  /** Called with the failed task's id on failure. */
  linkError?: Signature | Signature[];
}

const SIGNATURE_OPTION_KEYS = new Set<string>([
  "queue",
  "taskId",
  "countdownMs",
  "eta",
  "expires",
  "priority",
  "timeLimitMs",
  "softTimeLimitMs",
  "ignoreResult",
  "link",
  "linkError",
]);

function plain(task: string, args: unknown[], kwargs: Record<string, unknown>, options: Record<string, unknown>, immutable: boolean): Signature {
  return { task, args, kwargs, options, subtaskType: null, immutable };
}

/**
 * A task definition's own defaults travel with its signature (as `client.send` applies them), so
 * whichever worker sends the step routes and limits it the same.
 */
function taskOptions(task: { options: Readonly<TaskOptions> }): Record<string, unknown> {
  const t = task.options;
  const o: Record<string, unknown> = {};
  if (t.queue !== undefined) o["queue"] = t.queue;
  if (t.priority !== undefined) o["priority"] = t.priority;
  if (t.ignoreResult !== undefined) o["ignore_result"] = t.ignoreResult;
  if (t.timeLimitMs !== undefined) o["time_limit"] = t.timeLimitMs / 1000;
  if (t.softTimeLimitMs !== undefined) o["soft_time_limit"] = t.softTimeLimitMs / 1000;
  return o;
}

/**
 * Celery's `task.s(*args)`: a step whose parent's result is prepended to `args` (so a chain step
 * gives all arguments but the first). Typed by the task's definition.
 */
export function s<Args extends unknown[], Result, Kwargs extends Record<string, unknown>>(
  task: TaskDefinition<Args, Result, Kwargs>,
  ...args: Args | DropFirst<Args>
): Canvas<Result, "task"> {
  return plain(task.name, [...args], {}, taskOptions(task), false);
}

/** Celery's `task.si(*args)`: immutable, the parent's result is not passed. */
export function si<Args extends unknown[], Result, Kwargs extends Record<string, unknown>>(
  task: TaskDefinition<Args, Result, Kwargs>,
  ...args: Args
): Canvas<Result, "task"> {
  return plain(task.name, [...args], {}, taskOptions(task), true);
}

/** The same signature with keyword arguments merged in (Celery's `sig.clone(kwargs=...)`). */
export function withKwargs<C extends Signature>(sig: C, kwargs: Record<string, unknown>): C {
  return { ...sig, kwargs: { ...sig.kwargs, ...kwargs } };
}

/** The same signature with more options (Celery's `sig.set(**options)`, `link`, `link_error`). */
export function withOptions<C extends Signature>(sig: C, options: SignatureOptions): C {
  const unknown = Object.keys(options).filter((k) => !SIGNATURE_OPTION_KEYS.has(k));
  if (unknown.length > 0)
    throw new CeleriacError("invalid_argument", `withOptions: unknown option(s) ${unknown.join(", ")}; known: ${[...SIGNATURE_OPTION_KEYS].join(", ")}`);
  const o: Record<string, unknown> = { ...sig.options };
  if (options.queue !== undefined) o["queue"] = options.queue;
  if (options.taskId !== undefined) o["task_id"] = options.taskId;
  if (options.countdownMs !== undefined) o["countdown"] = options.countdownMs / 1000;
  if (options.eta !== undefined) o["eta"] = toCeleryIso(options.eta);
  if (options.expires !== undefined) o["expires"] = options.expires instanceof Date ? toCeleryIso(options.expires) : options.expires / 1000;
  if (options.priority !== undefined) o["priority"] = options.priority;
  if (options.timeLimitMs !== undefined) o["time_limit"] = options.timeLimitMs / 1000;
  if (options.softTimeLimitMs !== undefined) o["soft_time_limit"] = options.softTimeLimitMs / 1000;
  if (options.ignoreResult !== undefined) o["ignore_result"] = options.ignoreResult;
  const add = (key: string, v: Signature | Signature[] | undefined) => {
    if (v === undefined) return;
    const prev = Array.isArray(o[key]) ? (o[key] as unknown[]) : [];
    o[key] = [...prev, ...(Array.isArray(v) ? v : [v]).map(toWireSignature)];
  };
  if (sig.subtaskType === "group" && options.link !== undefined) {
    // celery/canvas.py group.apply_async: "Cannot add link to group: use a chord".
    throw new CeleriacError("invalid_argument", "a group cannot have a link (Celery refuses it too): use a chord");
  }
  add("link", options.link);
  add("link_error", options.linkError);
  return { ...sig, options: o };
}

/** Runs the steps one after the other, each getting the previous result (Celery's `chain`). */
export function chain<T extends [Signature, ...Signature[]]>(...steps: T): Canvas<CanvasResult<Last<T>>, CanvasHandle<Last<T>>> {
  if (steps.length === 0) throw new CeleriacError("invalid_argument", "chain: needs at least one step");
  return { task: "celery.chain", args: [], kwargs: { tasks: steps.map(toWireSignature) }, options: {}, subtaskType: "chain", immutable: false };
}

/** Runs the members in parallel; the result is their results in member order (Celery's `group`). */
export function group<T extends Signature[]>(members: [...T]): Canvas<{ [K in keyof T]: CanvasResult<T[K]> }, "group"> {
  return { task: "celery.group", args: [], kwargs: { tasks: members.map(toWireSignature) }, options: {}, subtaskType: "group", immutable: false };
}

/** Runs the header in parallel, then the body with the header's results in order (Celery's `chord`). */
export function chord<B extends Signature>(header: Signature[] | Canvas<unknown[], "group">, body: B): Canvas<CanvasResult<B>, CanvasHandle<B>> {
  const headerGroup = Array.isArray(header) ? group(header) : header;
  if (headerGroup.subtaskType !== "group") throw new CeleriacError("invalid_argument", "chord: the header must be a list of signatures or a group");
  // Key order of celery/canvas.py _chord.__init__: the header's own kwargs, then header, body.
  return {
    task: "celery.chord",
    args: [],
    kwargs: { kwargs: {}, header: toWireSignature(headerGroup), body: toWireSignature(body) },
    options: {},
    subtaskType: "chord",
    immutable: false,
  };
}

// ---- wire form -------------------------------------------------------------------------------

/** A signature as Celery's dict (`dict(Signature)`), key order as in Celery 5.2. */
export function toWireSignature(sig: Signature): WireSignature {
  const wire: WireSignature = {
    task: sig.task,
    args: sig.args,
    kwargs: sig.kwargs,
    options: sig.options,
    subtask_type: sig.subtaskType,
    immutable: sig.immutable,
  };
  if (sig.chordSize !== undefined) wire["chord_size"] = sig.chordSize;
  return wire;
}

/** A signature dict as found inside options, kwargs or embeds; null when it is not one. */
export function fromWireSignature(v: unknown): Signature | null {
  if (!isRecord(v)) return null;
  // Already in TypeScript's naming (a Signature object put in by this process).
  if (typeof v["task"] !== "string") return null;
  const subtask = "subtaskType" in v ? v["subtaskType"] : v["subtask_type"];
  return {
    task: v["task"],
    args: Array.isArray(v["args"]) ? [...(v["args"] as unknown[])] : [],
    kwargs: isRecord(v["kwargs"]) ? { ...v["kwargs"] } : {},
    options: isRecord(v["options"]) ? { ...v["options"] } : {},
    subtaskType: typeof subtask === "string" ? subtask : null,
    immutable: v["immutable"] === true,
  };
}

function mustSignature(v: unknown, where: string): Signature {
  const sig = fromWireSignature(v);
  if (!sig) throw new CeleriacError("invalid_argument", `${where} is not a signature`);
  return sig;
}

function tasksOf(sig: Signature): Signature[] {
  const raw = sig.kwargs["tasks"];
  if (!Array.isArray(raw)) throw new CeleriacError("invalid_argument", `${sig.subtaskType} signature has no tasks list`);
  return raw.map((t, i) => mustSignature(t, `${sig.subtaskType} task ${i}`));
}

function chordParts(sig: Signature): { header: Signature; body: Signature } {
  const rawHeader = sig.kwargs["header"];
  const header = Array.isArray(rawHeader) ? { ...group([]), kwargs: { tasks: rawHeader } } : mustSignature(rawHeader, "chord header");
  if (header.subtaskType !== "group")
    throw new CeleriacError("unsupported", `a chord header that is a ${header.subtaskType ?? "single task"} is not supported; use a list or a group`);
  return { header, body: mustSignature(sig.kwargs["body"], "chord body") };
}

// ---- expansion into messages -------------------------------------------------------------------

/** What sending a canvas gives back: one task's result, or a group's. */
export type ResultRef = { kind: "task"; id: string } | { kind: "group"; id: string; children: ResultRef[] };

export interface CanvasContext {
  /** The task that sends this (a worker's finished task); null from a client. */
  parentId: string | null;
  /** The workflow's first task; null when each message starts its own workflow. */
  rootId: string | null;
  now: Date;
  /** `origin` header of the messages (`gen<pid>@<host>` for a client). */
  origin?: string | null;
}

export interface PlannedMessage {
  /** `options.queue` of the signature; null to be routed by task name by the sender. */
  queue: string | null;
  envelope: TaskEnvelope;
  /** How long the broker should hide it (countdown / eta). */
  delayMs: number;
}

export interface CanvasPlan {
  /** Messages to publish, in Celery's order. */
  messages: PlannedMessage[];
  /** Celery's `backend.set_chord_size(group_id, size)` calls, made before publishing. */
  chordSizes: { groupId: string; size: number }[];
  result: ResultRef;
}

interface Freeze {
  taskId?: string | undefined;
  groupId?: string | undefined;
  chord?: WireSignature | undefined;
  groupIndex?: number | undefined;
}

interface RunOptions extends Freeze {
  /** Remaining chain steps, reversed (the `chain` message field). */
  chain?: WireSignature[] | undefined;
  /** Options merged into the signature's, as `apply_async(**options)` does. */
  options?: Record<string, unknown> | undefined;
}

function cloneSig(sig: Signature): Signature {
  return { ...sig, args: [...sig.args], kwargs: { ...sig.kwargs }, options: { ...sig.options } };
}

function str(v: unknown): string | undefined {
  return typeof v === "string" && v !== "" ? v : undefined;
}

function withoutNulls(o: Record<string, unknown>): Record<string, unknown> {
  // Signature.apply_async: "Extra options set to None are dismissed".
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== null && v !== undefined));
}

/** Signature._merge: new options override, except `group_id` when the signature has one. */
function mergeOptions(own: Record<string, unknown>, extra: Record<string, unknown>): Record<string, unknown> {
  const out = { ...own };
  for (const [k, v] of Object.entries(withoutNulls(extra))) if (k !== "group_id" || !("group_id" in own)) out[k] = v;
  return out;
}

function prependArgs(sig: Signature, partial: readonly unknown[]): Signature {
  if (partial.length === 0 || sig.immutable) return sig;
  return { ...sig, args: [...partial, ...sig.args] };
}

/** celery/canvas.py _chord._descend: how many completions a header member contributes. */
export function chordSizeOf(sig: Signature): number {
  if (sig.subtaskType === "group") return tasksOf(sig).reduce((n, t) => n + chordSizeOf(t), 0);
  if (sig.subtaskType === "chain") {
    const steps = tasksOf(sig);
    for (let i = steps.length - 1; i >= 0; i--) {
      const n = chordSizeOf(steps[i]!);
      if (n > 0) return n;
    }
    return 0;
  }
  if (sig.subtaskType === "chord") return chordSizeOf(chordParts(sig).body);
  return 1;
}

/** Nested groups are unrolled into one (group._freeze_unroll / group._prepared). */
function unrollGroup(members: Signature[]): Signature[] {
  const out: Signature[] = [];
  for (const m of members) {
    if (m.subtaskType === "group") out.push(...unrollGroup(tasksOf(m).map((t) => (m.immutable ? { ...t, immutable: true } : t))));
    else out.push(m);
  }
  return out;
}

/** Signature.freeze and its chain/group/chord versions: give every task its id up front. */
function freeze(sig: Signature, f: Freeze): { sig: Signature; ref: ResultRef } {
  const out = cloneSig(sig);
  const o = out.options;
  if (sig.subtaskType === "chain") {
    const steps = prepareSteps(tasksOf(sig), [], f, null);
    out.kwargs["tasks"] = steps.map((st) => toWireSignature(st.sig));
    return { sig: out, ref: steps[steps.length - 1]!.ref };
  }
  if (sig.subtaskType === "group") {
    // group._freeze_group_tasks: the group's id is its task_id; members get the *given* group id.
    const gid = str(o["task_id"]) ?? f.groupId ?? randomUUID();
    o["task_id"] = gid;
    if (f.groupId) o["group_id"] = f.groupId;
    if (f.chord) o["chord"] = f.chord;
    if (f.groupIndex !== undefined) o["group_index"] = f.groupIndex;
    if (!("root_id" in o)) o["root_id"] = null;
    if (!("parent_id" in o)) o["parent_id"] = null;
    const members = unrollGroup(tasksOf(sig)).map((m, i) => freeze(m, { groupId: f.groupId, chord: f.chord, groupIndex: i }));
    out.kwargs["tasks"] = members.map((m) => toWireSignature(m.sig));
    return { sig: out, ref: { kind: "group", id: gid, children: members.map((m) => m.ref) } };
  }
  if (sig.subtaskType === "chord") {
    const { header, body } = chordParts(sig);
    const frozenBody = freeze(body, f);
    const frozenHeader = freeze(header, { chord: toWireSignature(frozenBody.sig) });
    out.kwargs["header"] = toWireSignature(frozenHeader.sig);
    out.kwargs["body"] = toWireSignature(frozenBody.sig);
    return { sig: out, ref: frozenBody.ref };
  }
  if (sig.subtaskType !== null) throw new CeleriacError("unsupported", `${sig.subtaskType} signatures are not supported`);
  const id = str(o["task_id"]) ?? f.taskId ?? randomUUID();
  o["task_id"] = id;
  if (f.groupId && !("group_id" in o)) o["group_id"] = f.groupId;
  if (f.chord) o["chord"] = f.chord;
  if (f.groupIndex !== undefined) o["group_index"] = f.groupIndex;
  return { sig: out, ref: { kind: "task", id } };
}

/**
 * celery/canvas.py _chain.prepare_steps: nested chains are spliced, a group followed by a step
 * becomes a chord with that step as its body, every step is frozen (the last one with the
 * chain's own id/group/chord), `link_error` goes to every step. Returns the steps in order.
 */
function prepareSteps(steps: Signature[], partial: readonly unknown[], last: Freeze, linkError: unknown[] | null): { sig: Signature; ref: ResultRef }[] {
  const pending = [...steps];
  const out: { sig: Signature; ref: ResultRef }[] = [];
  let firstArgs: readonly unknown[] = partial;
  while (pending.length > 0) {
    let task = cloneSig(pending.pop()!);
    const isFirst = pending.length === 0;
    if (task.subtaskType === "group") {
      const members = tasksOf(task);
      if (members.length === 1) task = members[0]!; // maybe_unroll_group
    }
    if (task.subtaskType === "chain") {
      // Splice; the chain's own args (and the partial args, if it was first) go to its first step.
      const inner = tasksOf(task);
      if (inner.length === 0) continue;
      const carried = isFirst && !task.immutable ? [...firstArgs, ...task.args] : task.args;
      if (isFirst) firstArgs = carried;
      else if (carried.length > 0) inner[0] = prependArgs(inner[0]!, carried);
      pending.push(...inner);
      continue;
    }
    if (isFirst) task = prependArgs(task, firstArgs);
    const prev = out[out.length - 1];
    if (task.subtaskType === "group" && prev) {
      out.pop();
      // group(...) | body -> chord(group, body); the chord carries the header group's id.
      const made = chord(task, prev.sig);
      task = made;
    }
    let frozen = out.length === 0 ? freeze(task, last) : freeze(task, {});
    if (task.subtaskType === "chord") {
      const header = fromWireSignature(frozen.sig.kwargs["header"])!;
      frozen = { sig: { ...frozen.sig, options: { ...frozen.sig.options, task_id: header.options["task_id"] } }, ref: frozen.ref };
    }
    if (linkError && linkError.length > 0) frozen.sig = addListOption(frozen.sig, "link_error", linkError);
    out.push(frozen);
  }
  return out.reverse();
}

function addListOption(sig: Signature, key: string, values: unknown[]): Signature {
  if (sig.subtaskType === "group") {
    // group.link_error: every member gets it.
    const members = tasksOf(sig).map((m) => toWireSignature(addListOption(m, key, values)));
    return { ...sig, kwargs: { ...sig.kwargs, tasks: members } };
  }
  const prev = sig.options[key];
  const list = prev === undefined || prev === null ? [] : Array.isArray(prev) ? prev : [prev];
  return { ...sig, options: { ...sig.options, [key]: [...list, ...values] } };
}

function listOption(v: unknown): unknown[] | null {
  if (v === undefined || v === null) return null;
  return Array.isArray(v) ? v : [v];
}

/**
 * Expands a canvas into the messages Celery's `sig.apply_async(partial_args, **options)` would
 * publish: `partial` is prepended to the args of the first task(s) unless immutable. Throws
 * `CeleriacError("unsupported")` for shapes that are not supported rather than publish them
 * wrong.
 */
export function planCanvas(sig: Signature, partial: readonly unknown[], ctx: CanvasContext, run: RunOptions = {}): CanvasPlan {
  const plan: CanvasPlan = { messages: [], chordSizes: [], result: { kind: "task", id: "" } };
  plan.result = expand(sig, partial, ctx, run, plan);
  return plan;
}

function expand(sig0: Signature, partial: readonly unknown[], ctx: CanvasContext, run: RunOptions, plan: CanvasPlan): ResultRef {
  const sig = run.options ? { ...sig0, options: mergeOptions(sig0.options, run.options) } : sig0;
  switch (sig.subtaskType) {
    case null:
      return expandTask(sig, partial, ctx, run, plan);
    case "chain":
      return expandChain(sig, partial, ctx, run, plan);
    case "group":
      return expandGroup(sig, partial, ctx, run, plan);
    case "chord":
      return expandChord(sig, partial, ctx, run, plan);
    default:
      throw new CeleriacError("unsupported", `${String(sig.subtaskType)} signatures are not supported`);
  }
}

function expandChain(sig: Signature, partial: readonly unknown[], ctx: CanvasContext, run: RunOptions, plan: CanvasPlan): ResultRef {
  const o = sig.options;
  const args = sig.immutable ? sig.args : [...partial, ...sig.args];
  const steps = prepareSteps(
    tasksOf(sig),
    args,
    {
      taskId: run.taskId ?? str(o["task_id"]),
      groupId: run.groupId ?? str(o["group_id"]),
      chord: run.chord ?? (isRecord(o["chord"]) ? o["chord"] : undefined),
      groupIndex: run.groupIndex ?? numberOr(o["group_index"]),
    },
    listOption(o["link_error"]),
  );
  if (steps.length === 0) throw new CeleriacError("invalid_argument", "chain: no steps");
  const link = listOption(o["link"]);
  if (link) steps[steps.length - 1]!.sig = addListOption(steps[steps.length - 1]!.sig, "link", link);
  const [first, ...rest] = steps;
  // _prepare_chain_from_options: an outer chain's remaining steps come first, ours are popped first.
  const remaining = [...(run.chain ?? []), ...rest.reverse().map((st) => toWireSignature(st.sig))];
  const passOn = withoutNulls(
    Object.fromEntries(Object.entries(o).filter(([k]) => !["task_id", "group_id", "chord", "group_index", "link", "link_error", "chain"].includes(k))),
  );
  expand(first!.sig, [], ctx, { chain: remaining.length > 0 ? remaining : undefined, options: passOn }, plan);
  return steps[steps.length - 1]!.ref;
}

function expandGroup(sig: Signature, partial: readonly unknown[], ctx: CanvasContext, run: RunOptions, plan: CanvasPlan): ResultRef {
  if (run.chain && run.chain.length > 0) {
    throw new CeleriacError(
      "unsupported",
      "a group followed by more chain steps is not supported here (Celery turns group | task into a chord; build it with chord())",
    );
  }
  const { task_id: ownId, link, link_error: linkError, ...rest } = sig.options;
  if (listOption(link)) throw new CeleriacError("invalid_argument", "a group cannot have a link (Celery refuses it too): use a chord");
  // group._freeze_gid: the group's task_id becomes the members' group_id.
  const gid = str(ownId) ?? run.taskId ?? randomUUID();
  // Each member is applied with the group's options (group._apply_tasks); its own index and
  // chord come from its freeze, not from the group's.
  const { chord: _chord, group_index: _index, ...passOn } = rest;
  void _chord;
  void _index;
  const shared = withoutNulls({ ...passOn, group_id: gid });
  const chordBody = run.chord ?? (isRecord(rest["chord"]) ? rest["chord"] : undefined);
  // A group placed first in a chain carries the chain's partial args as its own.
  if (sig.args.length > 0) partial = sig.immutable ? sig.args : [...partial, ...sig.args];
  let members = unrollGroup(tasksOf(sig));
  if (sig.immutable) members = members.map((m) => ({ ...m, immutable: true }));
  const errbacks = listOption(linkError);
  const children: ResultRef[] = [];
  let size = 0;
  for (const [i, m0] of members.entries()) {
    let m = m0;
    if (m.subtaskType === "chord") throw new CeleriacError("unsupported", "a chord inside a group or chord header is not supported");
    if (errbacks) m = addListOption(m, "link_error", errbacks);
    size += chordSizeOf(m);
    const memberChord = chordBody ?? (isRecord(m.options["chord"]) ? m.options["chord"] : undefined);
    if (memberChord && i === members.length - 1) plan.chordSizes.push({ groupId: gid, size });
    if (m.subtaskType === "chain") {
      children.push(expand(m, partial, ctx, { groupId: gid, chord: memberChord, options: withoutNulls({ ...passOn }) }, plan));
    } else {
      const frozen = freeze(prependArgs(m, partial), { groupId: gid });
      children.push(expand(frozen.sig, [], ctx, { options: shared, chord: memberChord }, plan));
    }
  }
  return { kind: "group", id: gid, children };
}

function expandChord(sig: Signature, partial: readonly unknown[], ctx: CanvasContext, run: RunOptions, plan: CanvasPlan): ResultRef {
  const { header, body: body0 } = chordParts(sig);
  const args = sig.immutable ? sig.args : [...partial, ...sig.args];
  const { task_id: ownId, link, link_error: linkError, chord: outerChord, group_id: outerGroup, group_index: outerIndex, ...rest } = sig.options;
  if (outerChord || outerGroup) throw new CeleriacError("unsupported", "a chord inside a group or chord header is not supported");
  void outerIndex;
  // chord.run: the chord's options (and a chain to continue with) go to the body.
  let body = cloneSig(body0);
  body.options = mergeOptions(body.options, withoutNulls(rest));
  if (run.chain && run.chain.length > 0) {
    const prev = listOption(body.options["chain"]) ?? [];
    body.options["chain"] = [...prev, ...run.chain];
  }
  if (listOption(link)) body = addListOption(body, "link", listOption(link)!);
  if (listOption(linkError)) body = addListOption(body, "link_error", listOption(linkError)!);
  const frozenBody = freeze(body, { taskId: run.taskId ?? str(ownId) });
  const members = unrollGroup(tasksOf(header));
  if (members.length === 0) {
    // chord.run: an empty header never completes, so the body is sent at once with [].
    expand(frozenBody.sig, [[]], ctx, {}, plan);
    return frozenBody.ref;
  }
  const gid = str(header.options["task_id"]) ?? randomUUID();
  const bodyWire = toWireSignature(frozenBody.sig);
  const frozenHeader = freeze({ ...header, kwargs: { tasks: members.map(toWireSignature) } }, { groupId: gid, chord: bodyWire });
  const headerOptions = withoutNulls(Object.fromEntries(Object.entries(rest).filter(([k]) => k !== "chain")));
  const headerSig = { ...frozenHeader.sig, options: { ...mergeOptions(frozenHeader.sig.options, headerOptions), task_id: gid } };
  expand(headerSig, args, ctx, {}, plan);
  return frozenBody.ref;
}

function expandTask(sig: Signature, partial: readonly unknown[], ctx: CanvasContext, run: RunOptions, plan: CanvasPlan): ResultRef {
  const o = sig.options;
  const id = run.taskId ?? str(o["task_id"]) ?? randomUUID();
  const args = sig.immutable ? [...sig.args] : [...partial, ...sig.args];
  const now = ctx.now;
  let delayMs = 0;
  let eta: string | null = null;
  if (typeof o["countdown"] === "number" && o["countdown"] > 0) {
    delayMs = o["countdown"] * 1000;
    eta = toCeleryIso(new Date(now.getTime() + delayMs));
  } else if (typeof o["eta"] === "string") {
    eta = o["eta"];
    const at = Date.parse(eta);
    if (!Number.isNaN(at)) delayMs = Math.max(0, at - now.getTime());
  }
  let expires: string | null = null;
  let expiration: string | null = null;
  if (typeof o["expires"] === "number") {
    expires = toCeleryIso(new Date(now.getTime() + o["expires"] * 1000));
    expiration = String(Math.max(0, Math.round(o["expires"] * 1000)));
  } else if (typeof o["expires"] === "string") {
    expires = o["expires"];
    const at = Date.parse(expires);
    if (!Number.isNaN(at)) expiration = String(Math.max(0, at - now.getTime()));
  }
  const chainList = run.chain ?? (Array.isArray(o["chain"]) ? (o["chain"] as unknown[]) : null);
  const chordBody = run.chord ?? o["chord"];
  const kwargs = { ...sig.kwargs };
  const envelope = createEnvelope({
    task: sig.task,
    id,
    args,
    kwargs,
    headers: {
      eta,
      expires,
      rootId: ctx.rootId ?? id,
      parentId: ctx.parentId,
      group: run.groupId ?? str(o["group_id"]) ?? null,
      groupIndex: run.groupIndex ?? numberOr(o["group_index"]) ?? null,
      timelimit: [numberOr(o["time_limit"]) ?? null, numberOr(o["soft_time_limit"]) ?? null],
      ignoreResult: o["ignore_result"] === true,
      argsrepr: truncatedRepr(args, true),
      kwargsrepr: truncatedRepr(kwargs),
      origin: ctx.origin ?? null,
      ...(str(o["shadow"]) ? { shadow: str(o["shadow"])! } : {}),
    },
    properties: { priority: numberOr(o["priority"]) ?? null, expiration },
    embed: {
      callbacks: signatureList(o["link"]),
      errbacks: signatureList(o["link_error"]),
      chain: chainList && chainList.length > 0 ? chainList.map((c, i) => mustSignature(c, `chain step ${i}`)) : null,
      chord: chordBody === undefined || chordBody === null ? null : mustSignature(chordBody, "chord body"),
    },
  });
  plan.messages.push({ queue: queueName(o["queue"]), envelope, delayMs });
  return { kind: "task", id };
}

function numberOr(v: unknown): number | undefined {
  return typeof v === "number" ? v : undefined;
}

function queueName(q: unknown): string | null {
  if (typeof q === "string" && q !== "") return q;
  // kombu serializes a Queue object as a dict carrying its name.
  if (isRecord(q) && typeof q["name"] === "string") return q["name"];
  return null;
}

function signatureList(v: unknown): Signature[] | null {
  const list = listOption(v);
  if (!list) return null;
  const sigs = list.map((s) => fromWireSignature(s)).filter((s): s is Signature => s !== null);
  return sigs.length > 0 ? sigs : null;
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === "object" && !Array.isArray(v);
}

// ---- chords: what the finishing worker does -----------------------------------------------

/** One header task's outcome as the backend kept it for the chord (Celery's `[1, tid, state, result]`). */
export interface ChordPart {
  taskId: string;
  state: TaskState;
  /** The return value, or Celery's exception dict for FAILURE/REVOKED. */
  result: unknown;
}

/**
 * celery/backends/redis.py _unpack_chord_result: the header's values in order, or the ChordError
 * Celery stores as the body's FAILURE when a header task failed or was revoked.
 */
export function chordOutcome(parts: readonly ChordPart[]): { values: unknown[] } | { error: ExceptionInfo } {
  const values: unknown[] = [];
  for (const p of parts) {
    if (p.state === "FAILURE" || p.state === "REVOKED") {
      return { error: { exc_type: "ChordError", exc_message: [`Dependency ${p.taskId} raised ${exceptionRepr(p.result)}`], exc_module: "celery.exceptions" } };
    }
    values.push(p.result);
  }
  return { values };
}

/** Python's repr of the exception Celery rebuilds from its dict: `ValueError('boom')`. */
export function exceptionRepr(result: unknown): string {
  if (isRecord(result) && typeof result["exc_type"] === "string") {
    const msg = result["exc_message"];
    const args = Array.isArray(msg) ? msg : msg === undefined || msg === null ? [] : [msg];
    return `${result["exc_type"]}(${args.map((a) => pyRepr(a)).join(", ")})`;
  }
  return pyRepr(result);
}
