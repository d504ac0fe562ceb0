import { CeleriacError, type ScheduledTaskInfo, type TaskInfo, type WorkerStats } from "@celeriac/core";
import {
  CONTROL_QUEUE_EXPIRES_MS,
  CONTROL_QUEUE_TTL_MS,
  decodeControlBody,
  encodeControlMessage,
  LamportClock,
  PIDBOX_EXCHANGE,
  pidboxQueueName,
  pyRepr,
  type ExchangeDelivery,
  type WireMessage,
} from "@celeriac/core/transport";
import type { AddonHost, WorkerAddon } from "./addons.js";
import type { HeldTask } from "./events.js";
import type { LogFn } from "./logger.js";
import type { Worker } from "./worker.js";

/*
 * The worker's side of Celery's remote control, so that `celery inspect`, `celery control`,
 * Flower and `celeriac inspect` reach a TypeScript worker as they reach a Python one.
 *
 * Wire facts, from kombu 5.2 and Celery 5.2 source:
 * - Requests arrive on the fanout exchange `celery.pidbox` through the queue
 *   `<hostname>.celery.pidbox` (non-durable, auto-delete, x-message-ttl = control_queue_ttl 300 s,
 *   x-expires = control_queue_expires 10 s): kombu/pidbox.py `Mailbox.get_queue`,
 *   celery/app/control.py `Control.__init__`, celery/app/defaults.py `control`.
 * - Body `{method, arguments, destination, pattern, matcher[, ticket, reply_to]}`; a node acts
 *   when `destination` names it, or `pattern` matches under `matcher`, or neither is given
 *   (kombu/pidbox.py `Node.handle_message`).
 * - When `reply_to` is set the node answers `{hostname: reply}` on `reply_to.exchange` (direct,
 *   non-durable) with `reply_to.routing_key`, transient, headers `{ticket, clock}`
 *   (`Node.dispatch`, `Mailbox._publish_reply`). A handler that raises answers
 *   `{"error": repr(exc)}`, an unknown method `{"error": "KeyError('name')"}`.
 * - `shutdown` raises WorkerShutdown, a SystemExit, which `Node.dispatch` re-raises before
 *   replying: the worker stops and nobody gets an answer.
 * - Handlers and reply shapes: celery/worker/control.py; `stats` is celery/worker/worker.py
 *   `WorkController.stats()`; task entries are celery/worker/request.py `Request.info()`.
 */

/** A handler's answer when Celery's sends none (shutdown). */
const NO_REPLY = Symbol("no reply");
type HandlerResult = unknown;
type Handler = (args: Record<string, unknown>) => HandlerResult;

/** Celery's timer priority for ETA entries, which `inspect scheduled` reports (celery/worker/strategy.py `call_at(..., priority=6)`). */
const ETA_TIMER_PRIORITY = 6;

/** A Python-looking exception repr for an error reply: `TypeError("...")`, as `repr(exc)` reads. */
class ControlCommandError extends Error {
  constructor(
    readonly pyType: string,
    message: string,
  ) {
    super(message);
  }
}

function errorRepr(err: unknown): string {
  if (err instanceof ControlCommandError) return `${err.pyType}(${pyRepr(err.message)})`;
  if (err instanceof Error) return `${err.name}(${pyRepr(err.message)})`;
  return `Exception(${pyRepr(String(err))})`;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** Python's `fnmatch.fnmatchcase` pattern as an anchored RegExp: `*`, `?`, `[seq]`, `[!seq]`. */
export function globToRegExp(pattern: string): RegExp {
  let out = "";
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i]!;
    if (c === "*") out += ".*";
    else if (c === "?") out += ".";
    else if (c === "[") {
      const close = pattern.indexOf("]", i + 2);
      if (close === -1) {
        out += "\\[";
        continue;
      }
      let body = pattern.slice(i + 1, close);
      if (body.startsWith("!")) body = "^" + body.slice(1);
      else if (body.startsWith("^")) body = "\\" + body;
      out += `[${body.replace(/\\/g, "\\\\")}]`;
      i = close;
    } else out += c.replace(/[.+^${}()|\\/\]]/g, "\\$&");
  }
  return new RegExp(`^(?:${out})$`, "s");
}

/**
 * kombu/matcher.py `match(hostname, pattern, matcher)`: "glob" is fnmatch, "pcre" is Python's
 * `re.match` (anchored at the start only). Throws on another matcher, as kombu raises
 * MatcherNotInstalled.
 */
export function hostnameMatches(hostname: string, pattern: string, matcher: string): boolean {
  if (matcher === "glob") return globToRegExp(pattern).test(hostname);
  if (matcher === "pcre") {
    const re = new RegExp(pattern, "y");
    re.lastIndex = 0;
    return re.test(hostname);
  }
  throw new CeleriacError("unsupported", `unknown hostname matcher ${JSON.stringify(matcher)} (kombu has glob and pcre)`);
}

/** kombu `Node.handle_message`: is this request for the node called `hostname`? */
export function isAddressedTo(hostname: string, body: Record<string, unknown>): boolean {
  const { destination, pattern, matcher } = body;
  if (Array.isArray(destination) ? destination.length > 0 : typeof destination === "string" && destination !== "") {
    return Array.isArray(destination) ? destination.includes(hostname) : destination === hostname;
  }
  if (typeof pattern === "string" && pattern !== "" && typeof matcher === "string" && matcher !== "") {
    return hostnameMatches(hostname, pattern, matcher);
  }
  return true;
}

/** Celery's `maybe_list`: one id or a list of ids, in order, without repeats. */
function idList(value: unknown): string[] {
  if (value === null || value === undefined) return [];
  const list = Array.isArray(value) ? value : [value];
  const ids: string[] = [];
  for (const v of list) {
    if (typeof v !== "string") throw new ControlCommandError("TypeError", `task ids must be strings, got ${pyRepr(v)}`);
    if (!ids.includes(v)) ids.push(v);
  }
  return ids;
}

function truthy(value: unknown): boolean {
  return value !== undefined && value !== null && value !== false && value !== 0 && value !== "";
}

/** `resource.getrusage(RUSAGE_SELF)` as celery/worker/worker.py `rusage()` names its fields. */
function rusage(): Record<string, number> {
  const u = process.resourceUsage();
  return {
    utime: u.userCPUTime / 1e6,
    stime: u.systemCPUTime / 1e6,
    maxrss: u.maxRSS,
    ixrss: u.sharedMemorySize,
    idrss: u.unsharedDataSize,
    isrss: u.unsharedStackSize,
    minflt: u.minorPageFault,
    majflt: u.majorPageFault,
    nswap: u.swappedOut,
    inblock: u.fsRead,
    oublock: u.fsWrite,
    msgsnd: u.ipcSent,
    msgrcv: u.ipcReceived,
    nsignals: u.signalsCount,
    nvcsw: u.voluntaryContextSwitches,
    nivcsw: u.involuntaryContextSwitches,
  };
}

export interface MailboxNodeOptions {
  worker: Worker;
  /** Reported as `broker.transport` in stats. */
  transportName: string;
  log: LogFn;
  /** Publishes a reply to `exchange` (direct) with `routingKey`. */
  sendReply(exchange: string, routingKey: string, message: WireMessage): Promise<void>;
}

/**
 * kombu's `Node` with Celery's worker `Panel` of commands, for one worker. `handle()` takes a
 * request message and never throws: a bad control message is logged and dropped, as Celery's
 * `Pidbox.on_message` does.
 */
export class MailboxNode {
  readonly clock = new LamportClock();
  private readonly worker: Worker;
  private readonly log: LogFn;
  private readonly transportName: string;
  private readonly sendReply: MailboxNodeOptions["sendReply"];
  /** Tasks started per name: `state.total_count` (celery/worker/state.py `task_accepted`). */
  private readonly totals = new Map<string, number>();
  private readonly handlers = new Map<string, Handler>();
  private readonly unsubscribe: () => void;

  constructor(options: MailboxNodeOptions) {
    this.worker = options.worker;
    this.unsubscribe = this.worker.subscribe(
      (event) => {
        if (event.type === "task-started") this.totals.set(event.task, (this.totals.get(event.task) ?? 0) + 1);
      },
      ["task-started"],
    );
    this.log = options.log;
    this.transportName = options.transportName;
    this.sendReply = options.sendReply;
    const h = this.handlers;
    h.set("ping", () => ({ ok: "pong" }));
    h.set("clock", () => ({ clock: this.clock.value }));
    h.set("stats", () => this.stats());
    h.set("active", (a) => this.tasksIn("running", truthy(a["safe"])));
    h.set("reserved", () => this.tasksIn("reserved", false));
    h.set("scheduled", () => this.scheduled());
    h.set("registered", (a) => this.registered(a));
    h.set("active_queues", () => this.worker.queues.map(queueInfo));
    h.set("revoke", (a) => this.revoke(a));
    h.set("terminate", (a) => this.revoke({ ...a, terminate: true }));
    h.set("hello", (a) => this.hello(a));
    h.set("shutdown", (a) => this.shutdown(a));
    // Celery's aliases (celery/worker/control.py `alias=`).
    h.set("dump_active", h.get("active")!);
    h.set("dump_reserved", h.get("reserved")!);
    h.set("dump_schedule", h.get("scheduled")!);
    h.set("dump_tasks", h.get("registered")!);
  }

  /** Names of the commands this node answers. */
  get methods(): string[] {
    return [...this.handlers.keys()].sort();
  }

  /** Stops counting task starts (the worker is stopping). */
  dispose(): void {
    this.unsubscribe();
  }

  /** Handles one request message. Resolves once the reply, if any, was published. Never rejects. */
  async handle(message: WireMessage): Promise<void> {
    // celery/worker/pidbox.py `on_message` forwards the clock, `Node.handle_message` adjusts it.
    this.clock.forward();
    this.clock.adjust(message.headers["clock"]);
    let body: unknown;
    try {
      body = decodeControlBody(message);
    } catch (err) {
      this.log("warn", "cannot decode control message", { error: err instanceof Error ? err.message : String(err) });
      return;
    }
    if (!isRecord(body) || typeof body["method"] !== "string") {
      this.log("warn", "control message without a method; ignored", {});
      return;
    }
    let forMe: boolean;
    try {
      forMe = isAddressedTo(this.worker.hostname, body);
    } catch (err) {
      this.log("error", "control command error", { method: body["method"], error: err instanceof Error ? err.message : String(err) });
      return;
    }
    if (!forMe) return;
    const method = body["method"];
    const args = isRecord(body["arguments"]) ? body["arguments"] : {};
    const reply = this.dispatch(method, args);
    if (reply === NO_REPLY) return;
    const replyTo = body["reply_to"];
    if (!isRecord(replyTo) || typeof replyTo["exchange"] !== "string" || typeof replyTo["routing_key"] !== "string") return;
    await this.publishReply(replyTo["exchange"], replyTo["routing_key"], body["ticket"], reply);
  }

  /** Runs `method`; an error becomes Celery's `{"error": repr(exc)}` reply. */
  dispatch(method: string, args: Record<string, unknown>): unknown {
    const handler = this.handlers.get(method);
    if (!handler) {
      this.log("error", `pidbox command error: no such method ${method}`, { method });
      return { error: `KeyError(${pyRepr(method)})` };
    }
    try {
      const reply = handler(args);
      if (reply !== NO_REPLY) this.log("debug", `pidbox received method ${method}`, { method });
      return reply;
    } catch (err) {
      this.log("error", "pidbox command error", { method, error: err instanceof Error ? err.message : String(err) });
      return { error: errorRepr(err) };
    }
  }

  private async publishReply(exchange: string, routingKey: string, ticket: unknown, reply: unknown): Promise<void> {
    const headers = { ticket: typeof ticket === "string" ? ticket : null, clock: this.clock.forward() };
    let message: WireMessage;
    try {
      message = encodeControlMessage({ [this.worker.hostname]: reply }, headers, 1);
    } catch (err) {
      // e.g. a task argument JSON cannot carry: say so instead of staying silent.
      message = encodeControlMessage({ [this.worker.hostname]: { error: errorRepr(err) } }, headers, 1);
    }
    try {
      await this.sendReply(exchange, routingKey, message);
    } catch (err) {
      // The asking client may be gone (its reply queue expired): nobody is waiting.
      this.log("warn", "could not publish control reply", { exchange, routingKey, error: err instanceof Error ? err.message : String(err) });
    }
  }

  // ---- commands ------------------------------------------------------------------------------

  private stats(): WorkerStats {
    const started = this.worker.startedAt;
    return {
      total: Object.fromEntries(this.totals),
      pid: process.pid,
      clock: String(this.clock.value),
      uptime: started === null ? 0 : Math.round((Date.now() - started) / 1000),
      pool: {
        "max-concurrency": this.worker.concurrency,
        // One process runs every task; a slot is taken before a task is handed on, as pool_putlocks.
        processes: [process.pid],
        "max-tasks-per-child": null,
        "put-guarded-by-semaphore": true,
        timeouts: [],
      },
      // The worker's broker connection details are its transport's; only the kind is known here.
      broker: { transport: this.transportName },
      prefetch_count: this.worker.prefetch,
      rusage: rusage(),
    };
  }

  private info(task: HeldTask, safe: boolean): TaskInfo {
    return {
      id: task.id,
      name: task.name,
      args: safe ? (task.argsRepr ?? pyRepr(task.args)) : task.args,
      kwargs: safe ? (task.kwargsRepr ?? pyRepr(task.kwargs)) : task.kwargs,
      type: task.name,
      hostname: this.worker.hostname,
      time_start: task.startedAt === null ? null : task.startedAt / 1000,
      acknowledged: task.acknowledged,
      // Celery's producer publishes to the default exchange with the queue as routing key.
      delivery_info: { exchange: "", routing_key: task.queue, priority: task.priority, redelivered: task.redelivered },
      worker_pid: task.phase === "running" ? process.pid : null,
    };
  }

  private tasksIn(phase: HeldTask["phase"], safe: boolean): TaskInfo[] {
    return this.worker
      .heldTasks()
      .filter((t) => t.phase === phase)
      .map((t) => this.info(t, safe));
  }

  private scheduled(): ScheduledTaskInfo[] {
    return this.worker
      .heldTasks()
      .filter((t) => t.phase === "scheduled")
      .map((t) => ({ eta: t.eta, priority: ETA_TIMER_PRIORITY, request: this.info(t, false) }));
  }

  /**
   * Celery lists `name [attr=value ...]` for the task attributes asked for that are set; a
   * TypeScript task has no such Python attributes, so names come plain (as for most Python tasks).
   */
  private registered(args: Record<string, unknown>): string[] {
    const names = this.worker.registeredTasks();
    return truthy(args["builtins"]) ? names : names.filter((n) => !n.startsWith("celery."));
  }

  private revoke(args: Record<string, unknown>): { ok: string } {
    if (!("task_id" in args)) throw new ControlCommandError("TypeError", "revoke() missing 1 required positional argument: 'task_id'");
    const ids = idList(args["task_id"]);
    const terminate = truthy(args["terminate"]);
    // A JS task cannot be sent a signal: terminate aborts its `ctx.signal`, whatever `signal` says.
    const terminated = this.worker.revoke(ids, { terminate });
    if (terminate) {
      this.log("info", terminated.length ? `Terminating ${terminated.join(", ")}` : "terminate: tasks unknown", { taskIds: ids });
      return { ok: terminated.length ? `terminate: ${terminated.join(", ")}` : "terminate: tasks unknown" };
    }
    const idstr = ids.join(", ");
    this.log("info", `Tasks flagged as revoked: ${idstr}`, { taskIds: ids });
    return { ok: `tasks ${idstr} flagged as revoked` };
  }

  /**
   * Mingle's hello from a starting Python worker: take the revoked ids it sends, answer with our
   * clock. The ids this worker revoked are not listed back (the worker keeps no exportable list),
   * which leaves the other worker's set as it is.
   */
  private hello(args: Record<string, unknown>): unknown {
    if (args["from_node"] === this.worker.hostname) return null;
    const revoked = args["revoked"];
    const ids = isRecord(revoked) ? Object.keys(revoked) : Array.isArray(revoked) ? revoked.filter((v): v is string => typeof v === "string") : [];
    if (ids.length > 0) this.worker.revoke(ids);
    return { revoked: {}, clock: this.clock.forward() };
  }

  private shutdown(args: Record<string, unknown>): typeof NO_REPLY {
    const msg = typeof args["msg"] === "string" ? args["msg"] : "Got shutdown from remote";
    this.log("warn", msg, {});
    void this.worker.stop().catch(() => undefined);
    return NO_REPLY;
  }
}

/** kombu `Queue.as_dict(recurse=True)` of a task queue as Celery declares it by default. */
function queueInfo(name: string): Record<string, unknown> {
  return {
    name,
    exchange: { name, type: "direct", arguments: null, durable: true, passive: false, auto_delete: false, delivery_mode: null, no_declare: false },
    routing_key: name,
    queue_arguments: null,
    binding_arguments: null,
    consumer_arguments: null,
    durable: true,
    exclusive: false,
    auto_delete: false,
    no_ack: false,
    alias: null,
    bindings: [],
    no_declare: null,
    expires: null,
    message_ttl: null,
    max_length: null,
    max_length_bytes: null,
    max_priority: null,
  };
}

/**
 * The remote-control addon: consumes `<hostname>.celery.pidbox` for as long as the worker runs.
 * Requests are handled one at a time in arrival order, as kombu's consumer callback does.
 */
export async function startRemoteControl(host: AddonHost): Promise<WorkerAddon | null> {
  const { worker, transport, options, log } = host;
  const exchanges = transport.exchanges;
  if (!options.remoteControl || !exchanges) return null;
  const node = new MailboxNode({
    worker,
    transportName: transport.name,
    log,
    sendReply: (exchange, routingKey, message) =>
      exchanges.publishToExchange({ name: exchange, type: "direct", durable: false, autoDelete: false }, routingKey, message),
  });
  let queue: Promise<void> = Promise.resolve();
  const onRequest = (delivery: ExchangeDelivery): void => {
    // handle() does not reject; the catch keeps one surprise from silencing every later request.
    queue = queue.then(() => node.handle(delivery.message)).catch((err: unknown) => log("error", "control command error", { error: String(err) }));
  };
  let subscription;
  try {
    subscription = await exchanges.subscribe(
      PIDBOX_EXCHANGE,
      { bindingKey: "", queue: pidboxQueueName(worker.hostname), messageTtlMs: CONTROL_QUEUE_TTL_MS, queueExpiresMs: CONTROL_QUEUE_EXPIRES_MS },
      onRequest,
    );
  } catch (err) {
    node.dispose();
    throw err;
  }
  log("info", "remote control: listening", { queue: pidboxQueueName(worker.hostname) });
  return {
    name: "remote control",
    async stop() {
      await subscription.close();
      await queue;
      node.dispose();
    },
  };
}
