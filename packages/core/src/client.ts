import { randomUUID } from "node:crypto";
import { hostname } from "node:os";
import { celeryJsonCodec, type Codec } from "./codec/index.js";
import { createEnvelope, type Signature, type TaskEnvelope } from "./envelope.js";
import { CeleriacError } from "./errors.js";
import { assertKnownOptions, optionKeys } from "./options.js";
import { truncatedRepr } from "./py-repr.js";
import { planCanvas, type CanvasHandle, type CanvasResult, type ResultRef } from "./canvas.js";
import { AsyncResult, GroupResult } from "./result.js";
import type { TaskDefinition, TaskOptions } from "./task.js";
import { currentTraceContext, traceHeaders, type TraceContext } from "./trace-context.js";
import { toCeleryIso } from "./time.js";
import type { ResultBackend, Transport } from "./transport.js";

/** Options of one call, Celery's `apply_async` options in TypeScript's naming. */
export interface SendOptions {
  /** Run no sooner than this many ms from now (Celery's `countdown`, in ms). */
  countdownMs?: number;
  /** Run no sooner than this time (Celery's `eta`). */
  eta?: Date;
  /** Revoke instead of run after this time, or this many ms from now. */
  expires?: Date | number;
  /** 0..9, higher is more urgent. */
  priority?: number;
  /** Queue to send to; default: the task's queue, then `routes`, then the client's default queue. */
  queue?: string;
  /** Routing key on brokers with exchanges; defaults to the queue name, as Celery does. */
  routingKey?: string;
  /** Use this id instead of a new UUID. */
  taskId?: string;
  /** Extra headers, sent verbatim next to Celery's. */
  headers?: Record<string, unknown>;
  /** Starting value of the `retries` header. */
  retries?: number;
  /** Hard time limit for this call. */
  timeLimitMs?: number;
  /** Soft time limit for this call. */
  softTimeLimitMs?: number;
  /** Tasks to run with the result on success. */
  link?: Signature | Signature[];
  /** Tasks to run on failure. */
  linkError?: Signature | Signature[];
  /** Do not store the result. */
  ignoreResult?: boolean;
  /** Display name for logs (Celery's `shadow`). */
  shadow?: string;
  /** Id of the task sending this one, for workflows. */
  parentId?: string;
  /** Id of the first task of the workflow. */
  rootId?: string;
  /** Group membership (Celery's `group_id`/`group_index`). */
  groupId?: string;
  groupIndex?: number;
  /**
   * W3C trace context to send in the `traceparent`/`tracestate` headers. Default: the current one
   * (`withTraceContext`, or the task a worker is running); null sends none. With no context at
   * all the message has no trace headers, byte for byte what Celery sends.
   */
  traceContext?: TraceContext | null;
}

const SEND_OPTION_KEYS = optionKeys<SendOptions>({
  countdownMs: true,
  eta: true,
  expires: true,
  priority: true,
  queue: true,
  routingKey: true,
  taskId: true,
  headers: true,
  retries: true,
  timeLimitMs: true,
  softTimeLimitMs: true,
  link: true,
  linkError: true,
  ignoreResult: true,
  shadow: true,
  parentId: true,
  rootId: true,
  groupId: true,
  groupIndex: true,
  traceContext: true,
});

/** Options of `client.apply(canvas)`. */
export interface ApplyOptions {
  /** Partial args prepended to the first task(s)' args, as `canvas.apply_async(args)`. */
  args?: unknown[];
  /**
   * Save a group's result (Celery's `GroupResult.save()`) when the backend can, so Python's
   * `GroupResult.restore(id)` finds it. Default true.
   */
  saveGroup?: boolean;
}

const APPLY_OPTION_KEYS = optionKeys<ApplyOptions>({ args: true, saveGroup: true });

/** What `client.apply(canvas)` resolves with: an `AsyncResult` or, for a group, a `GroupResult`. */
export type CanvasResultHandle<C> = [CanvasHandle<C>] extends ["group"]
  ? GroupResult<CanvasResult<C> extends unknown[] ? CanvasResult<C> : unknown[]>
  : [CanvasHandle<C>] extends ["task"]
    ? AsyncResult<CanvasResult<C>>
    : AsyncResult | GroupResult;

export interface ClientOptions {
  /** The broker. The client never closes a transport it did not create. */
  transport: Transport;
  /** Where results are read; without one, `AsyncResult.get()` throws. */
  resultBackend?: ResultBackend;
  /** Codec for outgoing tasks. Default: celery-json, what Python Celery reads. */
  codec?: Codec;
  /** Queue for tasks with no queue of their own. Celery's default: "celery". */
  defaultQueue?: string;
  /** Celery's `task_routes`: task name (or glob with `*`) -> queue. */
  routes?: Record<string, string>;
}

const CLIENT_OPTION_KEYS = optionKeys<ClientOptions>({ transport: true, resultBackend: true, codec: true, defaultQueue: true, routes: true });

/** The producer: sends tasks and hands back their `AsyncResult`s. */
export class Client {
  readonly transport: Transport;
  readonly resultBackend: ResultBackend | null;
  private readonly codec: Codec;
  private readonly defaultQueue: string;
  private readonly routes: { pattern: RegExp; queue: string }[];
  private readonly origin = `gen${process.pid}@${hostname()}`;
  private connected: Promise<void> | null = null;

  constructor(options: ClientOptions) {
    assertKnownOptions("createClient", options, CLIENT_OPTION_KEYS);
    if (!options.transport) throw new CeleriacError("invalid_argument", "createClient: transport is required");
    this.transport = options.transport;
    this.resultBackend = options.resultBackend ?? null;
    this.codec = options.codec ?? celeryJsonCodec;
    this.defaultQueue = options.defaultQueue ?? "celery";
    this.routes = Object.entries(options.routes ?? {}).map(([glob, queue]) => ({
      pattern: new RegExp(`^${glob.split("*").map(escapeRegExp).join(".*")}$`),
      queue,
    }));
  }

  /** `task.delay(*args)`: positional args plus options. */
  send<Args extends unknown[], Result, Kwargs extends Record<string, unknown>>(
    task: TaskDefinition<Args, Result, Kwargs>,
    args: NoInfer<Args>,
    options?: SendOptions,
  ): Promise<AsyncResult<Result>> {
    return this.applyAsync(task, { ...options, args });
  }

  /** `task.apply_async(args, kwargs, **options)`. */
  async applyAsync<Args extends unknown[], Result, Kwargs extends Record<string, unknown>>(
    task: TaskDefinition<Args, Result, Kwargs>,
    call: SendOptions & { args?: NoInfer<Args>; kwargs?: NoInfer<Kwargs> },
  ): Promise<AsyncResult<Result>> {
    const { args, kwargs, ...options } = call;
    const merged: SendOptions = { ...taskDefaults(task), ...options };
    return this.sendTask(task.name, { ...merged, args: args ?? [], kwargs: kwargs ?? {} }) as Promise<AsyncResult<Result>>;
  }

  /** `app.send_task(name, ...)`: by name, for tasks this process has no definition of. */
  async sendTask(name: string, call: SendOptions & { args?: unknown[]; kwargs?: Record<string, unknown> } = {}): Promise<AsyncResult> {
    const { args = [], kwargs = {}, ...options } = call;
    assertKnownOptions(`send ${name}`, options, SEND_OPTION_KEYS);
    if (!Array.isArray(args)) throw new CeleriacError("invalid_argument", `send ${name}: args must be an array`);
    if (typeof kwargs !== "object" || kwargs === null || Array.isArray(kwargs)) {
      throw new CeleriacError("invalid_argument", `send ${name}: kwargs must be an object`);
    }
    const envelope = this.buildEnvelope(name, args, kwargs, options);
    const queue = options.queue ?? this.route(name);
    await this.ensureConnected();
    if (this.resultBackend?.replyTo && !envelope.headers.ignoreResult) envelope.properties.replyTo = await this.resultBackend.replyTo();
    const message = this.codec.encode(envelope);
    await this.transport.publish(options.routingKey ?? queue, message);
    return new AsyncResult(envelope.headers.id, this.resultBackend);
  }

  /**
   * Sends a signature, chain, group or chord (`canvas.apply_async()`), publishing what Celery
   * 5.2.6 would. Resolves with the last step's `AsyncResult` (the body's, for a chord), or a
   * `GroupResult` for a group. A chord needs a result backend with the chord capability
   * (`setChordSize`/`onChordPartReturn`); without one this throws `CeleriacError("unsupported")`.
   */
  async apply<C extends Signature>(canvas: C, options: ApplyOptions = {}): Promise<CanvasResultHandle<C>> {
    assertKnownOptions("apply", options, APPLY_OPTION_KEYS);
    if (options.args !== undefined && !Array.isArray(options.args)) throw new CeleriacError("invalid_argument", "apply: args must be an array");
    const plan = planCanvas(canvas, options.args ?? [], { parentId: null, rootId: null, now: new Date(), origin: this.origin });
    const backend = this.resultBackend;
    // A chord may also appear only after planning (a group followed by a step in a chain).
    if (plan.chordSizes.length > 0 || hasChord(canvas) || plan.messages.some((m) => hasChord(m.envelope.embed))) {
      if (!backend?.setChordSize || !backend.onChordPartReturn) {
        throw new CeleriacError(
          "unsupported",
          `apply: chords need a result backend that counts chord parts (setChordSize/onChordPartReturn); ${backend ? `"${backend.name}" does not` : "no result backend is configured"}`,
        );
      }
    }
    await this.ensureConnected();
    for (const c of plan.chordSizes) await backend!.setChordSize!(c.groupId, c.size);
    const replyTo = backend?.replyTo ? await backend.replyTo() : "";
    const trace = currentTraceContext();
    for (const m of plan.messages) {
      if (replyTo && !m.envelope.headers.ignoreResult) m.envelope.properties.replyTo = replyTo;
      m.envelope.headers.extra = withTraceHeaders(m.envelope.headers.extra, trace);
      await this.transport.publish(m.queue ?? this.route(m.envelope.headers.task), this.codec.encode(m.envelope));
    }
    const handle = this.handleFor(plan.result);
    if (handle instanceof GroupResult && options.saveGroup !== false && backend?.saveGroup) await handle.save();
    return handle as CanvasResultHandle<C>;
  }

  private handleFor(ref: ResultRef): AsyncResult | GroupResult {
    if (ref.kind === "task") return new AsyncResult(ref.id, this.resultBackend);
    return new GroupResult(
      ref.id,
      ref.children.map((c) => this.handleFor(c)),
      this.resultBackend,
    );
  }

  /** A handle to an existing task's result. */
  asyncResult<Result = unknown>(taskId: string): AsyncResult<Result> {
    return new AsyncResult<Result>(taskId, this.resultBackend);
  }

  /** Builds the envelope exactly as Celery's `as_task_v2` would for the same call. */
  buildEnvelope(name: string, args: unknown[], kwargs: Record<string, unknown>, options: SendOptions = {}): TaskEnvelope {
    const id = options.taskId ?? randomUUID();
    const now = Date.now();
    let eta: Date | null = options.eta ?? null;
    if (options.countdownMs !== undefined) {
      if (eta) throw new CeleriacError("invalid_argument", `send ${name}: give countdownMs or eta, not both`);
      eta = new Date(now + options.countdownMs);
    }
    const expires = options.expires === undefined ? null : options.expires instanceof Date ? options.expires : new Date(now + options.expires);
    if (options.priority !== undefined && !(Number.isInteger(options.priority) && options.priority >= 0 && options.priority <= 9)) {
      throw new CeleriacError("invalid_argument", `send ${name}: priority must be an integer 0..9, got ${String(options.priority)}`);
    }
    const seconds = (ms: number | undefined) => (ms === undefined ? null : ms / 1000);
    const list = (s: Signature | Signature[] | undefined) => (s === undefined ? null : Array.isArray(s) ? s : [s]);
    return createEnvelope({
      task: name,
      id,
      args,
      kwargs,
      headers: {
        shadow: options.shadow ?? null,
        eta: eta ? toCeleryIso(eta) : null,
        expires: expires ? toCeleryIso(expires) : null,
        group: options.groupId ?? null,
        groupIndex: options.groupIndex ?? null,
        retries: options.retries ?? 0,
        timelimit: [seconds(options.timeLimitMs), seconds(options.softTimeLimitMs)],
        rootId: options.rootId ?? id,
        parentId: options.parentId ?? null,
        argsrepr: truncatedRepr(args, true),
        kwargsrepr: truncatedRepr(kwargs),
        origin: this.origin,
        ignoreResult: options.ignoreResult ?? false,
        extra: withTraceHeaders(options.headers, options.traceContext === undefined ? currentTraceContext() : options.traceContext),
      },
      properties: {
        priority: options.priority ?? null,
        // Celery turns `expires` into the AMQP per-message TTL as well.
        expiration: expires ? String(Math.max(0, expires.getTime() - now)) : null,
      },
      embed: { callbacks: list(options.link), errbacks: list(options.linkError) },
    });
  }

  private route(name: string): string {
    for (const r of this.routes) if (r.pattern.test(name)) return r.queue;
    return this.defaultQueue;
  }

  private ensureConnected(): Promise<void> {
    this.connected ??= this.transport.connect().catch((err: unknown) => {
      this.connected = null;
      throw err;
    });
    return this.connected;
  }

  /** Closes nothing it was given: transports and backends belong to whoever created them. */
  async close(): Promise<void> {
    this.connected = null;
  }
}

function taskDefaults(task: { options: Readonly<TaskOptions> }): SendOptions {
  const o = task.options;
  const d: SendOptions = {};
  if (o.queue !== undefined) d.queue = o.queue;
  if (o.priority !== undefined) d.priority = o.priority;
  if (o.ignoreResult !== undefined) d.ignoreResult = o.ignoreResult;
  if (o.timeLimitMs !== undefined) d.timeLimitMs = o.timeLimitMs;
  if (o.softTimeLimitMs !== undefined) d.softTimeLimitMs = o.softTimeLimitMs;
  return d;
}

/** Whether a canvas holds a chord anywhere (as a step, a member or a header task's option). */
function hasChord(v: unknown, depth = 0): boolean {
  if (depth > 64 || v === null || typeof v !== "object") return false;
  if (Array.isArray(v)) return v.some((x) => hasChord(x, depth + 1));
  const d = v as Record<string, unknown>;
  if (d["subtask_type"] === "chord" || d["subtaskType"] === "chord") return true;
  const options = d["options"];
  if (options && typeof options === "object" && (options as Record<string, unknown>)["chord"]) return true;
  return Object.values(d).some((x) => hasChord(x, depth + 1));
}

/** Trace headers first, then the caller's own: an explicit `traceparent` header wins. */
function withTraceHeaders(headers: Record<string, unknown> | undefined, trace: TraceContext | null): Record<string, unknown> {
  if (!trace) return headers ?? {};
  return { ...traceHeaders(trace), ...headers };
}

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

export function createClient(options: ClientOptions): Client {
  return new Client(options);
}
