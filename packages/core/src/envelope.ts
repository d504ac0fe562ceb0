/**
 * The task envelope: Celery message protocol v2, field by field, in TypeScript's naming.
 * `proto/celeriac/v1/envelope.proto` is the language-neutral spec of the same shape, and
 * `docs/protocol.md` maps each field to Celery's wire name.
 *
 * Codecs turn a `TaskEnvelope` into a `WireMessage` and back; nothing else in the SDK reads
 * Celery's wire names.
 */

/** A Celery signature (`celery.canvas.Signature` as a dict on the wire). */
export interface Signature {
  task: string;
  args: unknown[];
  kwargs: Record<string, unknown>;
  /** apply_async options (queue, countdown, link, ...) kept with Celery's names. */
  options: Record<string, unknown>;
  /** `subtask_type`: null for a plain task, or "chain" | "group" | "chord". */
  subtaskType: string | null;
  immutable: boolean;
  /** `chord_size`, present on chord bodies. */
  chordSize?: number | null;
}

/** The third element of the body: the task's workflow continuation. */
export interface TaskEmbed {
  /** `callbacks`: link signatures applied with the result on success. */
  callbacks: Signature[] | null;
  /** `errbacks`: link_error signatures applied on failure. */
  errbacks: Signature[] | null;
  /** `chain`: remaining chain steps, in reverse order (the next step is last). */
  chain: Signature[] | null;
  /** `chord`: the chord body this task is a header member of. */
  chord: Signature | null;
}

export interface TaskHeaders {
  /** `lang`: "py" from Python Celery; Celeriac writes "py" too, since Python workers check it. */
  lang: string;
  /** `task`: the registered task name. */
  task: string;
  /** `id`: the task id (a UUID string). */
  id: string;
  /** `shadow`: alternative name for logs. */
  shadow: string | null;
  /** `eta`: ISO 8601 time before which the task must not run. */
  eta: string | null;
  /** `expires`: ISO 8601 time after which the task is revoked instead of run. */
  expires: string | null;
  /** `group`: id of the group this task belongs to. */
  group: string | null;
  /** `group_index`: position in that group. */
  groupIndex: number | null;
  /** `retries`: how many times this task has been retried. */
  retries: number;
  /** `timelimit`: `[hard, soft]` in seconds (Celery's code order; the protocol doc is wrong). */
  timelimit: [number | null, number | null];
  /** `root_id`: id of the first task in the workflow. */
  rootId: string | null;
  /** `parent_id`: id of the task that sent this one. */
  parentId: string | null;
  /** `argsrepr`: display string of args. */
  argsrepr: string | null;
  /** `kwargsrepr`: display string of kwargs. */
  kwargsrepr: string | null;
  /** `origin`: `gen<pid>@<host>` of the producer. */
  origin: string | null;
  /** `ignore_result`: do not store a result. */
  ignoreResult: boolean;
  /** `replaced_task_nesting`: depth of `Task.replace` (Celery 5.3+). Absent -> 0. */
  replacedTaskNesting: number;
  /** `stamps`: canvas stamping (Celery 5.3+). Absent -> {}. */
  stamps: Record<string, unknown>;
  /** Any other header, kept verbatim with its wire name. */
  extra: Record<string, unknown>;
}

export interface TaskProperties {
  /** `correlation_id`: equals the task id. */
  correlationId: string;
  /** `reply_to`: the rpc:// result queue; empty when none. */
  replyTo: string;
  /** `content_type` of the body on the wire. */
  contentType: string;
  /** `content_encoding` of the body on the wire. */
  contentEncoding: string;
  /** `delivery_mode`: 2 persistent, 1 transient. */
  deliveryMode: number;
  /** `priority`: Celeriac priority 0..9, higher is more urgent; null when unset. */
  priority: number | null;
  /** `expiration`: per-message TTL in ms (AMQP), as a string; null when unset. */
  expiration: string | null;
}

export interface TaskEnvelope {
  headers: TaskHeaders;
  properties: TaskProperties;
  args: unknown[];
  kwargs: Record<string, unknown>;
  embed: TaskEmbed;
}

/** The Celery task states, as stored in result metas. */
export type TaskState = "PENDING" | "RECEIVED" | "STARTED" | "SUCCESS" | "FAILURE" | "RETRY" | "REVOKED" | "REJECTED";

export const READY_STATES: ReadonlySet<TaskState> = new Set(["SUCCESS", "FAILURE", "REVOKED"]);

/**
 * The result meta exactly as Celery stores it (Redis, rpc, file backends), so it keeps Celery's
 * snake_case keys: it is written and read as JSON verbatim.
 */
export interface ResultMeta {
  status: TaskState;
  /** The return value on SUCCESS; `{exc_type, exc_message, exc_module}` on FAILURE. */
  result: unknown;
  traceback: string | null;
  children: unknown[];
  date_done: string | null;
  task_id: string;
  group_id?: string | null;
  parent_id?: string | null;
  [extra: string]: unknown;
}

/** Celery's serialized exception, the `result` of a FAILURE meta. */
export interface ExceptionInfo {
  exc_type: string;
  exc_message: unknown[];
  exc_module: string | null;
}

export function emptyEmbed(): TaskEmbed {
  return { callbacks: null, errbacks: null, chain: null, chord: null };
}

/** Fills every header and property with Celery's defaults; `id` and `task` are required. */
export function createEnvelope(init: {
  task: string;
  id: string;
  args?: unknown[];
  kwargs?: Record<string, unknown>;
  headers?: Partial<TaskHeaders>;
  properties?: Partial<TaskProperties>;
  embed?: Partial<TaskEmbed>;
}): TaskEnvelope {
  const headers: TaskHeaders = {
    lang: "py",
    task: init.task,
    id: init.id,
    shadow: null,
    eta: null,
    expires: null,
    group: null,
    groupIndex: null,
    retries: 0,
    timelimit: [null, null],
    rootId: init.id,
    parentId: null,
    argsrepr: null,
    kwargsrepr: null,
    origin: null,
    ignoreResult: false,
    replacedTaskNesting: 0,
    stamps: {},
    extra: {},
    ...init.headers,
  };
  const properties: TaskProperties = {
    correlationId: init.id,
    replyTo: "",
    contentType: "application/json",
    contentEncoding: "utf-8",
    deliveryMode: 2,
    priority: null,
    expiration: null,
    ...init.properties,
  };
  return {
    headers,
    properties,
    args: init.args ?? [],
    kwargs: init.kwargs ?? {},
    embed: { ...emptyEmbed(), ...init.embed },
  };
}
