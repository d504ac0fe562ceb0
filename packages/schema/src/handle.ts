import {
  AsyncResult,
  CeleriacError,
  defineTask,
  type Client,
  type GetResultOptions,
  type ResultBackend,
  type SendOptions,
  type TaskDefinition,
  type TaskOptions,
} from "@celeriac/core";
import type { TaskContext } from "@celeriac/worker";
import { convertOrThrow, SchemaValidationError } from "./convert.js";
import { taskJsonSchemas, type TaskJsonSchemas } from "./json-schema.js";
import type { SchemaModel, TaskModel } from "./model.js";

/** An AsyncResult whose `get()` checks the stored result against the schema and returns it typed. */
export class TypedAsyncResult<Result> extends AsyncResult<Result> {
  private readonly decode: (wire: unknown) => Result;

  constructor(id: string, backend: ResultBackend | null, decode: (wire: unknown) => Result) {
    super(id, backend);
    this.decode = decode;
  }

  /** Waits for the result and converts it (ISO text -> Date, base64 -> Uint8Array, integers -> bigint for 64-bit fields). */
  override async get(options: GetResultOptions = {}): Promise<Result> {
    return this.decode(await super.get(options));
  }
}

/**
 * A generated task: a `TaskDefinition` (so `client.applyAsync(task, { kwargs })` and
 * `worker.register(task, handler)` type-check) plus calls that validate and convert values against
 * the schema. Tasks take keyword arguments only: the request message is the kwargs.
 */
export interface TaskHandle<Request extends Record<string, unknown>, Result> extends TaskDefinition<[], Result, Request> {
  /** The schema entry of this task. */
  readonly model: Readonly<TaskModel>;
  /** JSON Schemas of the kwargs and the result, as they travel in Celery JSON. */
  readonly jsonSchema: TaskJsonSchemas;
  /**
   * Validates `request` and sends it; a wrong or missing field throws
   * `SchemaValidationError` (a `CeleriacError("invalid_argument")`) before anything is sent.
   */
  applyAsync(client: Client, request: Request, options?: SendOptions): Promise<TypedAsyncResult<Result>>;
  /** Validates and converts kwargs for the wire (what `applyAsync` sends). */
  encodeRequest(request: Request): Record<string, unknown>;
  /** Validates and converts received kwargs (plain JSON values) to the request type. */
  decodeRequest(kwargs: unknown): Request;
  /** Validates and converts a handler's result for the wire. */
  encodeResult(result: Result): Record<string, unknown>;
  /** Validates and converts a stored result to the result type. Unknown fields are dropped. */
  decodeResult(result: unknown): Result;
  /**
   * Wraps an implementation for `worker.register(task, task.implement(fn))`: the received kwargs
   * are validated first (a bad message fails with SchemaValidationError, stored as FAILURE), and
   * the result is validated and converted before the worker stores it.
   */
  implement(fn: (request: Request, ctx: TaskContext<Request>) => Result | Promise<Result>): (ctx: TaskContext<Request>) => Promise<Result>;
}

function definitionOptions(task: TaskModel): TaskOptions {
  const o = task.options;
  const out: TaskOptions = {};
  if (o.queue !== undefined) out.queue = o.queue;
  if (o.maxRetries !== undefined) out.maxRetries = o.maxRetries;
  if (o.timeLimitMs !== undefined) out.timeLimitMs = o.timeLimitMs;
  if (o.softTimeLimitMs !== undefined) out.softTimeLimitMs = o.softTimeLimitMs;
  if (o.priority !== undefined) out.priority = o.priority;
  if (o.ignoreResult !== undefined) out.ignoreResult = o.ignoreResult;
  if (o.defaultRetryDelayMs !== undefined) out.defaultRetryDelayMs = o.defaultRetryDelayMs;
  if (o.acksLate !== undefined) out.acksLate = o.acksLate;
  return out;
}

/** Builds the handle of task `name` of `schema`; generated modules call this once per task. */
export function createTaskHandle<Request extends Record<string, unknown>, Result>(schema: SchemaModel, name: string): TaskHandle<Request, Result> {
  const model = schema.tasks.find((t) => t.name === name);
  if (!model) throw new CeleriacError("invalid_argument", `schema has no task ${JSON.stringify(name)}`);
  const definition = defineTask<[], Result, Request>(name, definitionOptions(model));
  const encodeRequest = (request: Request) => convertOrThrow(schema, model.request, request, "toWire", `${name}: invalid kwargs`);
  const decodeRequest = (kwargs: unknown) => convertOrThrow(schema, model.request, kwargs, "fromWire", `${name}: invalid kwargs received`) as Request;
  const encodeResult = (result: Result) => convertOrThrow(schema, model.response, result, "toWire", `${name}: invalid result returned by the handler`);
  const decodeResult = (result: unknown) =>
    convertOrThrow(schema, model.response, result, "fromWire", `${name}: invalid result stored`, { ignoreUnknown: true }) as Result;
  let jsonSchema: TaskJsonSchemas | undefined;
  return Object.freeze({
    name: definition.name,
    options: definition.options,
    model,
    get jsonSchema() {
      jsonSchema ??= taskJsonSchemas(schema, model);
      return jsonSchema;
    },
    encodeRequest,
    decodeRequest,
    encodeResult,
    decodeResult,
    async applyAsync(client: Client, request: Request, options: SendOptions = {}) {
      const kwargs = encodeRequest(request);
      const sent = await client.applyAsync(definition, { ...options, kwargs: kwargs as Request });
      return new TypedAsyncResult<Result>(sent.id, client.resultBackend, decodeResult);
    },
    implement(fn: (request: Request, ctx: TaskContext<Request>) => Result | Promise<Result>) {
      return async (ctx: TaskContext<Request>, ...args: unknown[]) => {
        if (args.length > 0) throw new SchemaValidationError(`${name}: invalid call`, [`takes keyword arguments only, got ${args.length} positional`]);
        const request = decodeRequest(ctx.kwargs);
        const result = await fn(request, ctx);
        // The worker stores what the handler returns; the wire form is what Python reads.
        return encodeResult(result) as Result;
      };
    },
  });
}
