import {
  CeleriacError,
  celeryJsonCodec,
  decodeTask,
  parseRateLimit,
  currentTraceContext,
  Reject,
  Retry,
  withTraceContext,
  type Codec,
  type ExceptionInfo,
  type ResultMeta,
  type TaskDefinition,
  type TaskEnvelope,
  type TaskOptions,
  type TraceContext,
} from "@celeriac/core";
import {
  childTraceContext,
  exceptionRepr,
  stringifyCeleryJson,
  toCeleryNaiveUtc,
  traceContextFromHeaders,
  type Consumer,
  type Delivery,
} from "@celeriac/core/transport";
import { setMaxListeners } from "node:events";
import { startAddons, stopAddons, type WorkerAddon } from "./addons.js";
import { LazyAbortSignal, RunContext, type TaskContext } from "./context.js";
import { Continuations } from "./continuations.js";
import { celeryException, describe, exceptionInfo, SoftTimeLimitExceeded, TimeLimitExceeded, tracebackOf, WorkerShutdownError } from "./errors.js";
import { WORKER_EVENT_TYPES, WorkerEvents, type HeldTask, type WorkerCounters, type WorkerEvent, type WorkerEventListener } from "./events.js";
import { jsonLinesLogger, makeLog, type LogFn } from "./logger.js";
import { resolveOptions, type ResolvedOptions, type WorkerOptions } from "./options.js";
import { RateLimiter } from "./rate-limit.js";
import { resultMeta } from "./results.js";
import { isReject, isRetry, planRetry } from "./retry.js";
import { Revocations } from "./revocations.js";
import { Semaphore } from "./semaphore.js";
import { installSignalHandlers } from "./signals.js";
import { parseCeleryDate, sleep } from "./time.js";

/**
 * The worker's life, after Temporal's: `idle` until `start()`, `running` while consuming,
 * `stopping` while the consumer hands back what has not started, `draining` while running tasks
 * finish (up to the grace time), then `stopped`. `failed` when the consumer broke.
 */
export type WorkerState = "idle" | "running" | "stopping" | "draining" | "stopped" | "failed";

/** A task implementation; its argument, keyword and result types come from the definition. */
export type TaskHandler<Args extends unknown[], Result, Kwargs extends Record<string, unknown>> = (
  ctx: TaskContext<Kwargs>,
  ...args: Args
) => Result | Promise<Result>;

export interface StopOptions {
  /** Overrides `shutdownGraceMs` for this stop; 0 forces at once (also on a stop in progress). */
  graceMs?: number;
}

export interface Worker {
  readonly state: WorkerState;
  readonly hostname: string;
  readonly queues: readonly string[];
  /** Live counters for metrics. */
  readonly counters: Readonly<WorkerCounters>;
  /** Tasks running at once, and messages held per the prefetch window (for stats). */
  readonly concurrency: number;
  readonly prefetch: number;
  /** Epoch ms when `start()` began consuming; null before. */
  readonly startedAt: number | null;
  /** Resolves when the worker has stopped; rejects with the cause when it failed. */
  readonly closed: Promise<void>;
  /**
   * True once a stop was forced (Celery's cold shutdown): `stop({ graceMs: 0 })`, a second
   * signal, or a grace time that ran out with tasks still running. Their late-ack messages went
   * back to the broker and early-acked ones were stored as WorkerLostError. `celeriac worker`
   * exits with a code of its own then.
   */
  readonly forced: boolean;
  /** Registers a task by its definition; the handler's types must match the definition's. */
  register<Args extends unknown[], Result, Kwargs extends Record<string, unknown>>(
    task: TaskDefinition<Args, Result, Kwargs>,
    handler: NoInfer<TaskHandler<Args, Result, Kwargs>>,
  ): this;
  /** Registers a task by name only; arguments arrive untyped. */
  register(name: string, handler: TaskHandler<unknown[], unknown, Record<string, unknown>>, options?: TaskOptions): this;
  /**
   * Calls `listener` for every task event (the same ones `onEvent` gets), or only for `types`.
   * Returns the function that unsubscribes. Errors thrown by a listener are logged, never
   * propagated. Naming the types saves the worker building events nobody reads.
   */
  subscribe(listener: WorkerEventListener, types?: readonly WorkerEvent["type"][]): () => void;
  /** Names of the registered tasks, sorted. */
  registeredTasks(): string[];
  /** The messages this worker holds right now: running, waiting for an ETA, or for a slot. */
  heldTasks(): HeldTask[];
  /**
   * Celery's `revoke`: the ids are remembered (up to 50,000, for 3 hours, as Celery's worker
   * does) and a message with one of them is not run but stored REVOKED. With `terminate`, a task
   * already running has its signal aborted (JS cannot kill it; a handler that honours its signal
   * stops). Returns the ids that were running and got terminated.
   */
  revoke(taskIds: readonly string[], options?: { terminate?: boolean }): string[];
  /** True when `revoke` named this id (and it has not aged out). */
  isRevoked(taskId: string): boolean;
  /** Starts consuming. Resolves once the consumer is open. The transport must be connected. */
  start(): Promise<void>;
  /**
   * Stops taking messages, hands back what has not started, waits for running tasks up to the
   * grace time, then forces: signals abort, late-ack messages are requeued. Resolves as soon as
   * the last task settled, whatever is left of the grace time, and leaves no timer of the
   * worker's behind. Idempotent.
   */
  stop(options?: StopOptions): Promise<void>;
}

export interface CreateWorkerOptions extends WorkerOptions {
  /** Stop gracefully on SIGTERM/SIGINT, force on a second signal (and on SIGQUIT at once, Celery's
   * cold shutdown). Default false: a library does not take over process signals unless asked. */
  installSignalHandlers?: boolean;
}

export function createWorker(options: CreateWorkerOptions): Worker {
  const { installSignalHandlers: install, ...rest } = options;
  const worker = new CeleriacWorker(resolveOptions(rest), rest);
  if (install) {
    const uninstall = installSignalHandlers(worker);
    worker.closed.then(uninstall, uninstall);
  }
  return worker;
}

interface Registered {
  name: string;
  options: TaskOptions;
  handler: (ctx: TaskContext, ...args: unknown[]) => unknown;
  limiter: RateLimiter | null;
}

interface Running {
  acksLate: boolean;
  finished: boolean;
  /** Aborts the run's signal (created only if the handler reads it). */
  abort(reason: unknown): void;
  force(): void;
  /** revoke(..., { terminate }): stop waiting for the handler and report the task REVOKED. */
  terminate(): void;
}

interface Job {
  delivery: Delivery;
  held: boolean;
  running: Running | null;
  /** Decoded envelope, once it decoded. */
  env: TaskEnvelope | null;
  receivedAt: number;
  startedAt: number | null;
}

type Outcome =
  { kind: "ok"; value: unknown } | { kind: "error"; error: unknown } | { kind: "hard"; limitMs: number } | { kind: "forced" } | { kind: "terminated" };

// After forcing, settling (requeue, storing WorkerLostError) still talks to the broker and the
// backend; a hung one must not hang stop() forever.
const SETTLE_AFTER_FORCE_MS = 5_000;

// The visibility heartbeat where a transport names no visibility timeout.
const FALLBACK_HEARTBEAT_MS = 60_000;

class CeleriacWorker implements Worker {
  readonly hostname: string;
  readonly queues: readonly string[];
  readonly counters: WorkerCounters = {
    processed: 0,
    succeeded: 0,
    failed: 0,
    retried: 0,
    rejected: 0,
    revoked: 0,
    inFlight: 0,
    prefetched: 0,
    heldEta: 0,
  };
  readonly closed: Promise<void>;

  private currentState: WorkerState = "idle";
  private readonly opts: ResolvedOptions;
  private readonly log: LogFn;
  /** Whether per-task info/debug lines are logged at all: when not, their fields are never built. */
  private readonly logsInfo: boolean;
  private readonly logsDebug: boolean;
  private readonly registry = new Map<string, Registered>();
  private readonly jobs = new Set<Job>();
  private readonly slots: Semaphore;
  private readonly stopController = new AbortController();
  private readonly codecs: ReadonlyMap<string, Codec> | undefined;
  private consumer: Consumer | null = null;
  private loopDone: Promise<void> = Promise.resolve();
  private stopping: Promise<void> | null = null;
  private forceNow: (() => void) | null = null;
  private forceRequested = false;
  private wasForced = false;
  private heartbeat: ReturnType<typeof setInterval> | null = null;
  private heartbeatMs = Infinity;
  private outageTimer: ReturnType<typeof setTimeout> | null = null;
  private unwatchBroker: (() => void) | null = null;
  private wakeLoop: (() => void) | null = null;
  private wakeDrain: (() => void) | null = null;
  private resolveClosed!: () => void;
  private rejectClosed!: (err: unknown) => void;
  private readonly events: WorkerEvents;
  private readonly revocations = new Revocations();
  private readonly continuations: Continuations;
  private addons: WorkerAddon[] = [];
  private startTime: number | null = null;

  constructor(opts: ResolvedOptions, raw: WorkerOptions) {
    this.opts = opts;
    this.hostname = opts.hostname;
    this.queues = opts.queues;
    this.codecs = opts.codecs;
    this.slots = new Semaphore(opts.concurrency, this.stopController.signal);
    // Every waiting message listens on the stop signal; hundreds of them are expected, not a leak.
    setMaxListeners(0, this.stopController.signal);
    const logger = raw.silent ? null : (raw.logger ?? jsonLinesLogger());
    this.log = makeLog(logger, raw.logLevel ?? "info", { worker: opts.hostname });
    this.logsDebug = logger !== null && raw.logLevel === "debug";
    this.logsInfo = this.logsDebug || (logger !== null && (raw.logLevel ?? "info") === "info");
    this.events = new WorkerEvents(opts.onEvent, this.log);
    this.continuations = new Continuations({
      transport: opts.transport,
      resultBackend: opts.resultBackend,
      defaultQueue: opts.queues[0]!,
      route: opts.route,
      log: this.log,
      store: (meta) => this.store(meta),
    });
    this.closed = new Promise<void>((resolve, reject) => {
      this.resolveClosed = resolve;
      this.rejectClosed = reject;
    });
    // A failed worker rejects `closed`; that must not crash a process that never awaited it.
    this.closed.catch(() => {});
  }

  get state(): WorkerState {
    return this.currentState;
  }

  get concurrency(): number {
    return this.opts.concurrency;
  }

  get prefetch(): number {
    return this.opts.prefetch;
  }

  get startedAt(): number | null {
    return this.startTime;
  }

  get forced(): boolean {
    return this.wasForced;
  }

  subscribe(listener: WorkerEventListener, types?: readonly WorkerEvent["type"][]): () => void {
    if (typeof listener !== "function") throw new CeleriacError("invalid_argument", "subscribe: listener must be a function");
    if (types !== undefined) {
      if (!Array.isArray(types)) throw new CeleriacError("invalid_argument", "subscribe: types must be an array of task event types");
      for (const t of types) {
        if (!WORKER_EVENT_TYPES.includes(t)) {
          throw new CeleriacError("invalid_argument", `subscribe: unknown event type ${JSON.stringify(t)}; one of ${WORKER_EVENT_TYPES.join(", ")}`);
        }
      }
    }
    return this.events.subscribe(listener, types);
  }

  registeredTasks(): string[] {
    return [...this.registry.keys()].sort();
  }

  heldTasks(): HeldTask[] {
    const out: HeldTask[] = [];
    for (const job of this.jobs) {
      const env = job.env;
      if (!env) continue;
      const running = job.running !== null && !job.running.finished;
      out.push({
        id: env.headers.id,
        name: env.headers.task,
        args: env.args,
        kwargs: env.kwargs,
        argsRepr: env.headers.argsrepr,
        kwargsRepr: env.headers.kwargsrepr,
        queue: job.delivery.queue,
        priority: env.properties.priority,
        redelivered: job.delivery.redelivered,
        eta: env.headers.eta,
        phase: running ? "running" : job.held ? "scheduled" : "reserved",
        startedAt: job.startedAt,
        acknowledged: job.delivery.settled,
      });
    }
    return out;
  }

  revoke(taskIds: readonly string[], options: { terminate?: boolean } = {}): string[] {
    return this.revocations.revoke(taskIds, options.terminate ?? false, this.jobs);
  }

  isRevoked(taskId: string): boolean {
    return this.revocations.isRevoked(taskId);
  }

  register(
    task: TaskDefinition<unknown[], unknown, Record<string, unknown>> | string,
    handler: TaskHandler<unknown[], unknown, Record<string, unknown>>,
    options?: TaskOptions,
  ): this {
    if (this.currentState !== "idle") throw new CeleriacError("invalid_argument", "register: tasks must be registered before start()");
    const name = typeof task === "string" ? task : task.name;
    const taskOptions = typeof task === "string" ? { ...options } : task.options;
    if (typeof name !== "string" || name === "") throw new CeleriacError("invalid_argument", "register: a task needs a non-empty name");
    if (typeof handler !== "function") throw new CeleriacError("invalid_argument", `register(${JSON.stringify(name)}): handler must be a function`);
    if (this.registry.has(name)) throw new CeleriacError("invalid_argument", `register: task ${JSON.stringify(name)} is already registered`);
    const limiter = taskOptions.rateLimit !== undefined ? new RateLimiter(parseRateLimit(taskOptions.rateLimit)) : null;
    this.registry.set(name, { name, options: taskOptions, handler, limiter });
    return this;
  }

  async start(): Promise<void> {
    if (this.currentState !== "idle") throw new CeleriacError("invalid_argument", `start: worker is ${this.currentState}, not idle`);
    const { transport, queues, prefetch, maxHeldEta } = this.opts;
    // Events and remote control come up first, so a monitor sees worker-online before any task.
    this.addons = await startAddons({ worker: this, transport, options: this.opts, log: this.log });
    this.startTime = Date.now();
    // Held ETA messages stay unsettled, so the broker must let us have that many more on top of
    // the regular window; the worker itself keeps ready work within `prefetch` (see pull loop).
    this.consumer = transport.consume(queues, { prefetch: prefetch + maxHeldEta });
    this.currentState = "running";
    this.watchBroker();
    this.loopDone = this.pullLoop(this.consumer).catch((err: unknown) => this.fail(err));
    this.log("info", "worker started", {
      queues,
      concurrency: this.opts.concurrency,
      prefetch,
      tasks: [...this.registry.keys()],
      transport: transport.name,
    });
  }

  stop(options: StopOptions = {}): Promise<void> {
    if (options.graceMs === 0) this.forceRequested = true;
    if (this.stopping) {
      if (options.graceMs === 0) {
        // May arrive before draining has begun; remembered so the drain forces at once.
        this.forceRequested = true;
        this.forceNow?.();
      }
      return this.stopping;
    }
    if (this.currentState === "idle") {
      this.currentState = "stopped";
      this.resolveClosed();
      this.stopping = Promise.resolve();
      return this.stopping;
    }
    if (this.currentState === "stopped" || this.currentState === "failed") return Promise.resolve();
    this.stopping = this.shutdown(options.graceMs ?? this.opts.shutdownGraceMs);
    return this.stopping;
  }

  // ---- consuming -------------------------------------------------------------------------

  /** Messages the worker holds that are not parked for an ETA: running or about to. */
  private get ready(): number {
    return this.jobs.size - this.counters.heldEta;
  }

  private notify(): void {
    this.counters.prefetched = this.jobs.size;
    this.wakeLoop?.();
    if (this.jobs.size === 0) this.wakeDrain?.();
  }

  private async pullLoop(consumer: Consumer): Promise<void> {
    const it = consumer[Symbol.asyncIterator]();
    while (this.currentState === "running") {
      if (this.ready >= this.opts.prefetch) {
        await new Promise<void>((resolve) => (this.wakeLoop = resolve));
        this.wakeLoop = null;
        continue;
      }
      // A burst already received is handed out without a wait per message.
      const buffered = consumer.takeBuffered?.();
      if (buffered) {
        void this.dispatch(buffered);
        continue;
      }
      const next = await it.next();
      if (next.done) break;
      if (this.currentState !== "running") {
        // Arrived while the consumer was being stopped: it never started, so it goes back.
        await this.giveBack(next.value);
        break;
      }
      void this.dispatch(next.value);
    }
    if (this.currentState === "running") {
      // Nobody asked us to stop: the transport closed or the broker cancelled the consumer.
      throw new CeleriacError("closed", `the consumer of ${this.queues.join(", ")} ended while the worker was running`);
    }
  }

  private async dispatch(delivery: Delivery): Promise<void> {
    const job: Job = { delivery, held: false, running: null, env: null, receivedAt: Date.now(), startedAt: null };
    this.jobs.add(job);
    this.armExtension(delivery);
    this.notify();
    try {
      await this.handle(job);
    } catch (err) {
      this.log("error", "internal error while handling a message; requeueing it", { error: describe(err), stack: tracebackOf(err) });
      await this.giveBack(delivery);
    } finally {
      if (job.held) {
        job.held = false;
        this.counters.heldEta--;
      }
      this.jobs.delete(job);
      this.notify();
    }
  }

  /**
   * Hands an ETA further away than `handBackEtaBeyondMs` back to the broker, delayed by at most
   * what it honours for this delivery, instead of holding it. True when handed back. It happens
   * before task-received: the task is received (and announced) once, on the hop that brings it
   * within the threshold of its ETA.
   */
  private async handBackFarEta(delivery: Delivery, env: TaskEnvelope): Promise<boolean> {
    const limitMs = delivery.maxNackDelayMs;
    if (limitMs <= 0) return false;
    const eta = parseCeleryDate(env.headers.eta);
    const waitMs = eta ? eta.getTime() - Date.now() : 0;
    if (waitMs <= this.opts.handBackEtaBeyondMs) return false;
    await delivery.nack({ requeue: true, delayMs: Math.min(waitMs, limitMs) });
    this.log("debug", "ETA task handed back to the broker until it is near", { taskId: env.headers.id, task: env.headers.task, eta: env.headers.eta });
    return true;
  }

  private async handle(job: Job): Promise<void> {
    const { delivery } = job;
    let env: TaskEnvelope;
    try {
      env = decodeTask(delivery.message, this.codecs);
    } catch (err) {
      return this.onMalformed(delivery, err);
    }
    job.env = env;
    // Checked before awaiting: most tasks have no ETA, and an await per task is not free.
    if (env.headers.eta !== null && delivery.maxNackDelayMs > 0 && (await this.handBackFarEta(delivery, env))) return;
    const h = env.headers;
    const { task: name, id } = h;
    if (this.events.wants("task-received")) {
      this.events.emit(
        "task-received",
        subject(delivery, env),
        {
          eta: h.eta,
          expires: h.expires,
          retries: h.retries,
          args: env.args,
          kwargs: env.kwargs,
          argsRepr: h.argsrepr,
          kwargsRepr: h.kwargsrepr,
          rootId: h.rootId,
          parentId: h.parentId,
        },
        job.receivedAt,
      );
    }
    if (this.logsInfo)
      this.log("info", `Task ${name}[${id}] received`, { taskId: id, task: name, queue: delivery.queue, eta: env.headers.eta, retries: env.headers.retries });
    const reg = this.registry.get(name);
    if (!reg) return this.onUnknown(delivery, env);
    if (env.embed.chord && !this.opts.resultBackend?.onChordPartReturn) {
      const backend = this.opts.resultBackend ? `result backend "${this.opts.resultBackend.name}" cannot` : "worker has no result backend to";
      this.log("warn", `Task ${name}[${id}] is part of a chord, but this ${backend} count chord parts, so the chord body will not be triggered by it`, {
        taskId: id,
        task: name,
      });
    }
    const discard = this.revocations.discardReason(env);
    if (discard) return this.discardRevoked(delivery, env, reg, discard);

    const stop = this.stopController.signal;
    const eta = parseCeleryDate(env.headers.eta);
    const waitMs = eta ? eta.getTime() - Date.now() : 0;
    if (waitMs > 0) {
      if (this.counters.heldEta >= this.opts.maxHeldEta && this.opts.transport.capabilities.delayedDelivery) {
        // Out of room to hold it: let the broker keep it until its ETA instead.
        await delivery.nack({ requeue: true, delayMs: waitMs });
        this.log("debug", "ETA task handed back to the broker until its ETA", { taskId: id, task: name, eta: env.headers.eta });
        return;
      }
      if (this.counters.heldEta < this.opts.maxHeldEta) {
        job.held = true;
        this.counters.heldEta++;
        this.notify();
      }
      this.log("debug", "holding task until its ETA", { taskId: id, task: name, eta: env.headers.eta });
      try {
        await sleep(waitMs, stop);
      } catch {
        return this.giveBack(delivery);
      }
      if (job.held) {
        job.held = false;
        this.counters.heldEta--;
        this.notify();
      }
    }

    if (reg.limiter) {
      try {
        await reg.limiter.take(stop);
      } catch {
        return this.giveBack(delivery);
      }
    }
    if (!this.slots.tryAcquire()) {
      try {
        await this.slots.acquire();
      } catch {
        return this.giveBack(delivery);
      }
    }
    try {
      if (stop.aborted) return await this.giveBack(delivery);
      if (delivery.settled) {
        // The broker took it back while it waited (visibility timeout without extension) and
        // has handed it out again; running this copy too would run the task twice.
        this.log("warn", `Task ${name}[${id}] was redelivered by the broker while waiting; skipping this copy`, { taskId: id, task: name });
        return;
      }
      // Celery checks again right before running: the message may have waited past it.
      const discardNow = this.revocations.discardReason(env);
      if (discardNow) return await this.discardRevoked(delivery, env, reg, discardNow);
      // The run is a new span in the sender's trace (W3C trace context); no traceparent, no
      // context, even if the worker itself was started inside one.
      const incoming = traceContextFromHeaders(delivery.message.headers);
      // AsyncLocalStorage turns on promise hooks for the whole process: enter it only when
      // there is a context to carry in, or one of the worker's own to leave behind.
      if (incoming || currentTraceContext()) {
        const trace = incoming ? childTraceContext(incoming) : null;
        await withTraceContext(trace, () => this.execute(job, env, reg, trace));
      } else {
        await this.execute(job, env, reg, null);
      }
    } finally {
      this.slots.release();
    }
  }

  // ---- running a task --------------------------------------------------------------------

  private async execute(job: Job, env: TaskEnvelope, reg: Registered, trace: TraceContext | null): Promise<void> {
    const { delivery } = job;
    const h = env.headers;
    const acksLate = reg.options.acksLate ?? false;
    if (!acksLate) {
      try {
        await delivery.ack();
      } catch (err) {
        // Not acked means the broker still owns it and will redeliver; running it too would
        // run it twice.
        this.log("warn", "could not ack before running; leaving the message to the broker", { taskId: h.id, task: h.task, error: describe(err) });
        return;
      }
    }

    const [hardS, softS] = h.timelimit;
    const hardMs = typeof hardS === "number" && hardS > 0 ? hardS * 1000 : reg.options.timeLimitMs;
    const softMs = typeof softS === "number" && softS > 0 ? softS * 1000 : reg.options.softTimeLimitMs;
    const signal = new LazyAbortSignal();
    // Shutdown forcing, revoke-terminate and the hard limit end the wait for the handler from
    // outside; `endRun` is set only while the worker waits for a handler that returned a promise.
    let endRun: ((outcome: Outcome) => void) | null = null;
    let endedEarly: Outcome | null = null;
    const endFromOutside = (outcome: Outcome) => {
      if (endRun) endRun(outcome);
      else endedEarly ??= outcome;
    };
    const running: Running = {
      acksLate,
      finished: false,
      abort: (reason) => signal.abort(reason),
      force: () => endFromOutside({ kind: "forced" }),
      terminate: () => endFromOutside({ kind: "terminated" }),
    };
    job.running = running;

    const ctx = this.contextFor(env, delivery, signal, trace);
    if (this.opts.trackStarted && this.shouldStore(env, reg)) {
      await this.store(resultMeta(env, "STARTED", { pid: process.pid, hostname: this.hostname }, null), env);
    }
    this.counters.inFlight++;
    const started = Date.now();
    job.startedAt = started;
    const etaAt = h.eta === null ? 0 : (parseCeleryDate(h.eta)?.getTime() ?? 0);
    if (this.events.wants("task-started")) {
      this.events.emit("task-started", subject(delivery, env), { waitMs: Math.max(0, started - Math.max(job.receivedAt, etaAt)) }, started);
    }
    if (this.logsDebug) this.log("debug", "task started", { taskId: h.id, task: h.task, retries: h.retries });

    // Timers exist only for a task with a time limit; a synchronous handler is not awaited at all.
    let softTimer: ReturnType<typeof setTimeout> | null = null;
    let hardTimer: ReturnType<typeof setTimeout> | null = null;
    if (softMs !== undefined && softMs > 0) softTimer = setTimeout(() => signal.abort(new SoftTimeLimitExceeded(softMs)), softMs);
    let outcome: Outcome | null = null;
    let returned: unknown;
    try {
      returned = reg.handler(ctx as TaskContext, ...env.args);
    } catch (error) {
      outcome = { kind: "error", error };
    }
    if (!outcome) {
      if (!isThenable(returned)) outcome = endedEarly ?? { kind: "ok", value: returned };
      else if (endedEarly) outcome = endedEarly;
      else {
        outcome = await this.settleRun(
          returned,
          hardMs,
          (end) => (endRun = end),
          (t) => (hardTimer = t),
        );
      }
    }
    endRun = null;
    running.finished = true;
    // A handler the worker stopped waiting for is watched so its late outcome is dropped (and said).
    if (outcome.kind !== "ok" && outcome.kind !== "error" && isThenable(returned)) this.watchAbandoned(returned, env, outcome.kind);
    if (softTimer) clearTimeout(softTimer);
    if (hardTimer) clearTimeout(hardTimer);
    this.counters.inFlight--;
    this.counters.processed++;
    const runtimeMs = Date.now() - started;

    switch (outcome.kind) {
      case "ok":
        return this.onSuccess(delivery, env, reg, outcome.value, runtimeMs, acksLate);
      case "error":
        if (isRetry(outcome.error)) return this.onRetry(delivery, env, reg, outcome.error, acksLate);
        if (isReject(outcome.error)) return this.onReject(delivery, env, outcome.error);
        return this.onFailure(delivery, env, reg, outcome.error, exceptionInfo(outcome.error), tracebackOf(outcome.error), runtimeMs, acksLate);
      case "hard": {
        // JS cannot kill a promise: the handler may still be running. It is abandoned, its
        // slot is freed, and whatever it returns later is dropped.
        const err = new TimeLimitExceeded(outcome.limitMs);
        signal.abort(err);
        this.log("error", `hard time limit (${outcome.limitMs / 1000}s) exceeded for ${h.task}[${h.id}]; task abandoned`, { taskId: h.id, task: h.task });
        return this.onFailure(delivery, env, reg, err, exceptionInfo(err), null, runtimeMs, acksLate);
      }
      case "forced":
        signal.abort(new WorkerShutdownError());
        return this.onForced(delivery, env, reg, acksLate);
      case "terminated":
        return this.onTerminated(delivery, env, reg, acksLate);
    }
  }

  /**
   * A handler the worker stopped waiting for (forced shutdown, hard time limit, terminate) may
   * still run to its end: JS cannot kill it. Its message was settled or handed back already, so
   * whatever it returns is dropped: no ack, no result, no callbacks. Said once in the log, since
   * its side effects may happen again when the handed-back message runs elsewhere.
   */
  private watchAbandoned(handler: PromiseLike<unknown>, env: TaskEnvelope, why: "hard" | "forced" | "terminated"): void {
    const { task: name, id } = env.headers;
    const said = (how: "returned" | "threw") => {
      const after = why === "forced" ? "its message was handed back at shutdown" : why === "hard" ? "its hard time limit" : "it was terminated";
      this.log("warn", `Task ${name}[${id}] ${how} after ${after}; the outcome is discarded (not stored, not acked)`, { taskId: id, task: name });
    };
    // Both callbacks, so a late rejection is never unhandled.
    void handler.then(
      () => said("returned"),
      () => said("threw"),
    );
  }

  /**
   * Waits for a handler's promise, or for what ends it from outside (`setEnd`: force, terminate)
   * or its hard time limit.
   */
  private settleRun(
    returned: PromiseLike<unknown>,
    hardMs: number | undefined,
    setEnd: (end: (outcome: Outcome) => void) => void,
    setHardTimer: (t: ReturnType<typeof setTimeout>) => void,
  ): Promise<Outcome> {
    return new Promise<Outcome>((resolve) => {
      let ended = false;
      const end = (outcome: Outcome) => {
        if (ended) return;
        ended = true;
        resolve(outcome);
      };
      setEnd(end);
      if (hardMs !== undefined && hardMs > 0) setHardTimer(setTimeout(() => end({ kind: "hard", limitMs: hardMs }), hardMs));
      returned.then(
        (value) => end({ kind: "ok", value }),
        (error: unknown) => end({ kind: "error", error }),
      );
    });
  }

  private contextFor(env: TaskEnvelope, delivery: Delivery, signal: LazyAbortSignal, trace: TraceContext | null): TaskContext {
    const h = env.headers;
    return new RunContext(
      h.id,
      h.task,
      h.retries,
      h.eta === null ? null : parseCeleryDate(h.eta),
      h.expires === null ? null : parseCeleryDate(h.expires),
      env.kwargs,
      delivery.message.headers,
      h.rootId ?? h.id,
      h.parentId,
      h.group,
      this.hostname,
      { queue: delivery.queue, redelivered: delivery.redelivered, deliveryCount: delivery.deliveryCount, priority: env.properties.priority },
      trace,
      signal,
    );
  }

  /**
   * Not async: a plain task (result not stored, no callbacks, chain or chord, early ack) finishes
   * here without a promise of its own; the rest goes through `finishSuccess`.
   */
  private onSuccess(delivery: Delivery, env: TaskEnvelope, reg: Registered, value: unknown, runtimeMs: number, acksLate: boolean): Promise<void> | void {
    const h = env.headers;
    const result = value === undefined ? null : value;
    const t = typeof result;
    // null, strings, numbers and booleans always serialise; anything else is checked.
    if (result !== null && t !== "string" && t !== "number" && t !== "boolean") {
      try {
        // The dialect every result backend writes (bigint as digits, NaN/Infinity as Python does).
        stringifyCeleryJson(result);
      } catch (err) {
        // A result no backend can store would leave the client waiting forever; say why instead.
        const info = celeryException("EncodeError", [`result of ${h.task} is not JSON-serialisable: ${describe(err)}`], "kombu.exceptions");
        return this.onFailure(delivery, env, reg, err, info, tracebackOf(err), runtimeMs, acksLate);
      }
    }
    const { callbacks, chain, chord } = env.embed;
    const continues = (callbacks?.length ?? 0) > 0 || (chain?.length ?? 0) > 0;
    if (continues || chord || acksLate || this.shouldStore(env, reg)) return this.finishSuccess(delivery, env, reg, result, runtimeMs, acksLate, continues);
    this.counters.succeeded++;
    this.succeeded(delivery, env, result, runtimeMs);
  }

  private async finishSuccess(
    delivery: Delivery,
    env: TaskEnvelope,
    reg: Registered,
    result: unknown,
    runtimeMs: number,
    acksLate: boolean,
    continues: boolean,
  ): Promise<void> {
    const h = env.headers;
    if (continues) {
      try {
        // Celery sends callbacks and the next chain step before it stores SUCCESS.
        await this.continuations.afterSuccess(env, result);
      } catch (err) {
        // The workflow cannot continue; Celery reports this as an internal error of the task.
        this.log("error", `could not publish the callbacks of ${h.task}[${h.id}]`, { taskId: h.id, task: h.task, error: describe(err) });
        return this.onFailure(delivery, env, reg, err, exceptionInfo(err), tracebackOf(err), runtimeMs, acksLate);
      }
    }
    this.counters.succeeded++;
    if (this.shouldStore(env, reg)) await this.store(resultMeta(env, "SUCCESS", result, null), env);
    if (env.embed.chord) await this.continuations.partReturned(env, "SUCCESS", result);
    if (acksLate) await this.settle(delivery, "ack");
    this.succeeded(delivery, env, result, runtimeMs);
  }

  /** task-succeeded and the info line, when someone listens or logs them. */
  private succeeded(delivery: Delivery, env: TaskEnvelope, result: unknown, runtimeMs: number): void {
    const h = env.headers;
    if (this.events.wants("task-succeeded")) this.events.emit("task-succeeded", subject(delivery, env), { runtimeMs, result });
    if (this.logsInfo) this.log("info", `Task ${h.task}[${h.id}] succeeded in ${(runtimeMs / 1000).toFixed(3)}s`, { taskId: h.id, task: h.task, runtimeMs });
  }

  private async onFailure(
    delivery: Delivery,
    env: TaskEnvelope,
    reg: Registered,
    err: unknown,
    info: ExceptionInfo,
    traceback: string | null,
    runtimeMs: number | null,
    acksLate: boolean,
  ): Promise<void> {
    const h = env.headers;
    this.counters.failed++;
    const store = this.shouldStore(env, reg);
    if (store) await this.store(resultMeta(env, "FAILURE", info, traceback), env);
    await this.continuations.afterFailure(env, info, traceback, store);
    // Celery's acks_on_failure_or_timeout defaults to true: a failed task is done with.
    if (acksLate) await this.settle(delivery, "ack");
    this.events.emit("task-failed", subject(delivery, env), { excType: info.exc_type, exception: exceptionRepr(info), traceback, runtimeMs });
    this.log("error", `Task ${h.task}[${h.id}] raised unexpected: ${info.exc_type}(${info.exc_message.map((m) => JSON.stringify(m)).join(", ")})`, {
      taskId: h.id,
      task: h.task,
      excType: info.exc_type,
      stack: traceback ?? (err instanceof Error ? err.stack : undefined),
    });
  }

  private async onRetry(delivery: Delivery, env: TaskEnvelope, reg: Registered, retry: Retry, acksLate: boolean): Promise<void> {
    const h = env.headers;
    const plan = planRetry(env, retry, reg.options, Date.now());
    if (plan.kind === "fail") return this.onFailure(delivery, env, reg, plan.error, plan.exception, plan.traceback, null, acksLate);
    const { retries, delayMs } = plan;
    const { transport } = this.opts;
    try {
      const codec = this.codecs?.get(delivery.message.contentType) ?? celeryJsonCodec;
      const delayed = transport.capabilities.delayedDelivery && delayMs > 0;
      await transport.publish(delivery.queue, codec.encode(plan.envelope), delayed ? { delayMs } : {});
    } catch (err) {
      this.log("error", `could not re-send ${h.task}[${h.id}] for retry`, { taskId: h.id, task: h.task, error: describe(err) });
      return this.onFailure(delivery, env, reg, err, exceptionInfo(err), tracebackOf(err), null, acksLate);
    }
    this.counters.retried++;
    if (this.shouldStore(env, reg)) await this.store(resultMeta(env, "RETRY", plan.exception, plan.traceback), env);
    if (acksLate) await this.settle(delivery, "ack");
    this.events.emit("task-retried", subject(delivery, env), { retries, delayMs, exception: exceptionRepr(plan.exception), traceback: plan.traceback });
    this.log("info", `Task ${h.task}[${h.id}] retry: Retry in ${delayMs / 1000}s`, { taskId: h.id, task: h.task, retries, delayMs });
  }

  private async onReject(delivery: Delivery, env: TaskEnvelope, reject: Reject): Promise<void> {
    const h = env.headers;
    this.counters.rejected++;
    if (delivery.settled) {
      this.log("warn", `Task ${h.task}[${h.id}] raised Reject but its message was already acked (early ack); set acksLate for Reject to act`, {
        taskId: h.id,
        task: h.task,
      });
    } else if (reject.requeue) {
      await this.settle(delivery, "nack");
    } else {
      await this.settle(delivery, "reject", `Reject: ${reject.message}`);
    }
    this.events.emit("task-rejected", subject(delivery, env), { reason: reject.message, requeue: reject.requeue });
    this.log("warn", `Task ${h.task}[${h.id}] rejected: ${reject.message}`, { taskId: h.id, task: h.task, requeue: reject.requeue });
  }

  private async onForced(delivery: Delivery, env: TaskEnvelope, reg: Registered, acksLate: boolean): Promise<void> {
    const h = env.headers;
    if (acksLate) {
      // Not acked yet, so the broker gets it back and another worker runs it from the start.
      await this.settle(delivery, "nack");
      this.log("warn", `Task ${h.task}[${h.id}] still running at shutdown; requeued (acks late)`, { taskId: h.id, task: h.task });
      return;
    }
    // Acked before it ran: nobody will run it again, so say so instead of leaving it PENDING.
    this.counters.failed++;
    const info = celeryException("WorkerLostError", ["Worker exited prematurely: shutdown grace time expired"], "billiard.exceptions");
    if (this.shouldStore(env, reg)) await this.store(resultMeta(env, "FAILURE", info, null), env);
    this.events.emit("task-failed", subject(delivery, env), { excType: info.exc_type, exception: exceptionRepr(info), traceback: null, runtimeMs: null });
    this.log("error", `Task ${h.task}[${h.id}] abandoned at shutdown (acked early, will not run again)`, { taskId: h.id, task: h.task });
  }

  // ---- messages that never run -----------------------------------------------------------

  private async onMalformed(delivery: Delivery, err: unknown): Promise<void> {
    const reason = err instanceof Error ? err.message : String(err);
    const rawId = delivery.message.headers["id"];
    // Protocol 1 keeps the id in the (refused) body; Celery sets correlation_id to it as well.
    const corrId = delivery.message.properties.correlationId;
    const id = typeof rawId === "string" && rawId !== "" ? rawId : typeof corrId === "string" && corrId !== "" ? corrId : null;
    const rawTask = delivery.message.headers["task"];
    const task = typeof rawTask === "string" ? rawTask : null;
    this.counters.rejected++;
    await this.settle(delivery, "reject", `malformed message: ${reason}`);
    this.log("error", `Received invalid task message: ${reason}. The message has been rejected.`, { taskId: id, task, queue: delivery.queue });
    if (id !== null) {
      // The reply destination comes from the wire: without it an rpc:// client would never hear
      // of the refusal and wait until its timeout.
      const replyTo = delivery.message.properties.replyTo;
      await this.store(
        {
          status: "FAILURE",
          result: celeryException("InvalidTaskError", [reason]),
          traceback: null,
          children: [],
          date_done: toCeleryNaiveUtc(new Date()),
          task_id: id,
        },
        undefined,
        typeof replyTo === "string" && replyTo !== "" ? replyTo : undefined,
      );
    }
    this.events.emit("task-rejected", { taskId: id, task, queue: delivery.queue }, { reason, requeue: false });
  }

  private async onUnknown(delivery: Delivery, env: TaskEnvelope): Promise<void> {
    const { task: name, id } = env.headers;
    this.counters.rejected++;
    this.log(
      "error",
      `Received unregistered task of type ${JSON.stringify(name)}. The message has been ignored and discarded. Is the task registered on this worker (worker.register)?`,
      { taskId: id, task: name, queue: delivery.queue },
    );
    await this.settle(delivery, "reject", `NotRegistered: ${name}`);
    // Stored unconditionally, as Celery does: the sender must learn that nobody runs it here.
    await this.store(resultMeta(env, "FAILURE", celeryException("NotRegistered", [name]), null), env);
    this.events.emit("task-rejected", subject(delivery, env), { reason: `NotRegistered: ${name}`, requeue: false });
  }

  /** An expired or revoked message is not run: REVOKED is stored and the message acked, as Celery's Request.revoked does. */
  private async discardRevoked(delivery: Delivery, env: TaskEnvelope, reg: Registered, reason: "expired" | "revoked"): Promise<void> {
    const { task: name, id } = env.headers;
    const error = celeryException("TaskRevokedError", [reason]);
    this.counters.revoked++;
    if (this.shouldStore(env, reg)) await this.store(resultMeta(env, "REVOKED", error, null), env);
    await this.continuations.partReturned(env, "REVOKED", error);
    await this.settle(delivery, "ack");
    this.events.emit("task-revoked", subject(delivery, env), { expired: reason === "expired", terminated: false });
    this.log("info", `Discarding revoked task: ${name}[${id}] (${reason})`, { taskId: id, task: name, expires: env.headers.expires });
  }

  /** A running task named by revoke(terminate): abandoned like a hard time limit, stored REVOKED. */
  private async onTerminated(delivery: Delivery, env: TaskEnvelope, reg: Registered, acksLate: boolean): Promise<void> {
    const { task: name, id } = env.headers;
    const error = celeryException("TaskRevokedError", ["terminated"]);
    this.counters.revoked++;
    if (this.shouldStore(env, reg)) await this.store(resultMeta(env, "REVOKED", error, null), env);
    await this.continuations.partReturned(env, "REVOKED", error);
    if (acksLate) await this.settle(delivery, "ack");
    this.events.emit("task-revoked", subject(delivery, env), { expired: false, terminated: true });
    this.log("warn", `Terminated task ${name}[${id}] on revoke request; its handler was signalled and is no longer awaited`, { taskId: id, task: name });
  }

  // ---- results and settlement ------------------------------------------------------------

  private shouldStore(env: TaskEnvelope, reg: Registered): boolean {
    return this.opts.resultBackend !== null && !env.headers.ignoreResult && !reg.options.ignoreResult;
  }

  private async store(meta: ResultMeta, env?: TaskEnvelope, replyTo = env?.properties.replyTo): Promise<void> {
    const backend = this.opts.resultBackend;
    if (!backend) return;
    try {
      await backend.store(meta, replyTo ? { replyTo } : undefined);
    } catch (err) {
      this.log("error", `could not store ${meta.status} for task ${meta.task_id}`, { taskId: meta.task_id, error: describe(err) });
    }
  }

  private async settle(delivery: Delivery, how: "ack" | "nack" | "reject", reason = ""): Promise<void> {
    if (delivery.settled) return;
    try {
      if (how === "ack") await delivery.ack();
      else if (how === "nack") await delivery.nack({ requeue: true });
      else await delivery.reject(reason);
    } catch (err) {
      this.log("warn", `could not ${how} a message`, { queue: delivery.queue, error: describe(err) });
    }
  }

  /** Returns a message that never started to the broker, for another worker or a later run. */
  private async giveBack(delivery: Delivery): Promise<void> {
    await this.settle(delivery, "nack");
  }

  /**
   * Keeps the visibility heartbeat in step with the transport's visibility timeout: it ticks at a
   * third of the shortest timeout seen (or `etaHeartbeatMs` when set), so every held message is
   * extended at least twice before the broker would give it to someone else. A fixed period
   * longer than the timeout let a healthy worker's late-ack task run twice.
   */
  private armExtension(delivery: Delivery): void {
    if (!this.opts.transport.capabilities.visibilityExtension) return;
    const timeoutMs = delivery.visibilityTimeoutMs;
    const everyMs = this.opts.etaHeartbeatMs ?? (timeoutMs !== null && timeoutMs > 0 ? Math.max(1, Math.floor(timeoutMs / 3)) : FALLBACK_HEARTBEAT_MS);
    if (everyMs >= this.heartbeatMs) return;
    if (this.heartbeat) clearInterval(this.heartbeat);
    this.heartbeatMs = everyMs;
    this.heartbeat = setInterval(() => this.extendHeld(), everyMs);
    this.heartbeat.unref();
  }

  private extendHeld(): void {
    for (const job of this.jobs) {
      if (job.delivery.settled) continue;
      const timeoutMs = job.delivery.visibilityTimeoutMs;
      const byMs = this.opts.visibilityExtensionMs ?? (timeoutMs !== null && timeoutMs > 0 ? timeoutMs : this.heartbeatMs * 5);
      job.delivery.extend(byMs).catch((err: unknown) => {
        this.log("debug", "could not extend visibility", { queue: job.delivery.queue, error: describe(err) });
      });
    }
  }

  // ---- shutdown --------------------------------------------------------------------------

  private async shutdown(graceMs: number): Promise<void> {
    this.currentState = "stopping";
    this.log("info", "worker stopping", { inFlight: this.counters.inFlight, held: this.jobs.size });
    // Everything waiting (ETA, rate limit, a free slot) gives its message back.
    this.stopController.abort(new WorkerShutdownError());
    this.wakeLoop?.();
    try {
      await this.consumer?.stop();
    } catch (err) {
      this.log("warn", "consumer did not stop cleanly", { error: describe(err) });
    }
    await this.loopDone;
    if ((this.currentState as WorkerState) === "failed") return;
    this.currentState = "draining";

    const force = new Promise<void>((resolve) => (this.forceNow = resolve));
    if (this.forceRequested) this.forceNow?.();
    if (this.jobs.size > 0) {
      // The grace timer is cancelled the moment the last task settles: a timer left armed would
      // keep the process alive for the rest of the grace time after the work is done.
      await raceTimer(Promise.race([this.drained(), force]), graceMs);
    }
    if (this.jobs.size > 0) {
      this.wasForced = true;
      const why = this.forceRequested ? "forced stop (cold shutdown)" : "shutdown grace time over";
      this.log("warn", `${why}; handing back running tasks`, { running: this.counters.inFlight });
      this.forceAll();
      await raceTimer(this.drained(), SETTLE_AFTER_FORCE_MS);
    } else if (this.forceRequested) {
      this.wasForced = true;
    }
    this.finish();
    await stopAddons(this.addons, this.log);
    this.currentState = "stopped";
    this.log("info", "worker stopped", { counters: { ...this.counters } });
    this.resolveClosed();
  }

  /**
   * A worker that cannot reach its broker cannot work: once the transport gives up (`failed`) or
   * an outage lasts `brokerOutageLimitMs`, the worker fails, so `closed` rejects and a process
   * supervisor sees it exit. Celery's worker gives up after `broker_connection_max_retries` (100)
   * attempts instead (celery/worker/consumer/consumer.py `ensure_connected`).
   */
  private watchBroker(): void {
    const lifecycle = this.opts.transport.lifecycle;
    const limitMs = this.opts.brokerOutageLimitMs;
    const armOutage = () => {
      if (this.outageTimer || !Number.isFinite(limitMs)) return;
      this.outageTimer = setTimeout(() => {
        this.outageTimer = null;
        this.fail(new CeleriacError("connection", `the broker has been unreachable for ${limitMs / 1000} s (brokerOutageLimitMs); giving up`));
      }, limitMs);
      this.outageTimer.unref();
    };
    this.unwatchBroker = lifecycle.subscribe((event) => {
      switch (event.type) {
        case "disconnected":
          armOutage();
          break;
        case "connected":
          this.clearOutage();
          break;
        case "failed":
          this.fail(event.error);
          break;
        default:
          break;
      }
    });
    if (lifecycle.state === "disconnected") armOutage();
    else if (lifecycle.state === "failed")
      queueMicrotask(() => this.fail(new CeleriacError("connection", `${this.opts.transport.name}: the broker connection has failed`)));
  }

  private clearOutage(): void {
    if (this.outageTimer) clearTimeout(this.outageTimer);
    this.outageTimer = null;
  }

  private forceAll(): void {
    for (const job of this.jobs) if (job.running && !job.running.finished) job.running.force();
  }

  private drained(): Promise<void> {
    if (this.jobs.size === 0) return Promise.resolve();
    return new Promise((resolve) => {
      this.wakeDrain = () => {
        this.wakeDrain = null;
        resolve();
      };
    });
  }

  /** Clears every timer and subscription the worker owns, so nothing of it keeps the process alive. */
  private finish(): void {
    if (this.heartbeat) clearInterval(this.heartbeat);
    this.heartbeat = null;
    this.heartbeatMs = Infinity;
    this.clearOutage();
    this.unwatchBroker?.();
    this.unwatchBroker = null;
  }

  private fail(err: unknown): void {
    if (this.currentState === "stopped" || this.currentState === "failed") return;
    this.currentState = "failed";
    this.log("error", "consumer failed; worker stopped", { error: describe(err), stack: tracebackOf(err) });
    this.stopController.abort(new WorkerShutdownError());
    this.forceAll();
    this.finish();
    void stopAddons(this.addons, this.log);
    this.rejectClosed(CeleriacError.from(err, "connection"));
  }
}

/**
 * Waits for `promise` at most `ms`, and clears its timer either way, so nothing of the wait
 * outlives it.
 */
async function raceTimer(promise: Promise<void>, ms: number): Promise<void> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    await Promise.race([promise, new Promise<void>((resolve) => (timer = setTimeout(resolve, ms)))]);
  } finally {
    clearTimeout(timer);
  }
}

/** Which task and queue an event is about. */
function subject(delivery: Delivery, env: TaskEnvelope): { taskId: string; task: string; queue: string } {
  return { taskId: env.headers.id, task: env.headers.task, queue: delivery.queue };
}

function isThenable(value: unknown): value is PromiseLike<unknown> {
  return value !== null && (typeof value === "object" || typeof value === "function") && typeof (value as { then?: unknown }).then === "function";
}
