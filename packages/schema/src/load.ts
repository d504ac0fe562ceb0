import { existsSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, isAbsolute, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { CeleriacError } from "@celeriac/core";
import protobuf from "protobufjs";
import type { EnumModel, FieldModel, FieldType, MessageModel, ScalarType, SchemaModel, TaskModel, TaskOptionsModel } from "./model.js";

export interface LoadSchemaOptions {
  /** Directories searched for imports, in order (like protoc's `-I`). The files' own directories come first. */
  includePaths?: string[];
}

const SCALARS = new Set<string>([
  "double",
  "float",
  "int32",
  "uint32",
  "sint32",
  "fixed32",
  "sfixed32",
  "int64",
  "uint64",
  "sint64",
  "fixed64",
  "sfixed64",
  "bool",
  "string",
  "bytes",
]);

/** Where `celeriac/v1/options.proto` lives: shipped in this package, or the repository's proto/. */
function bundledProtoRoots(): string[] {
  const here = dirname(fileURLToPath(import.meta.url));
  return [join(here, "..", "proto"), join(here, "..", "..", "..", "proto")].filter((p) => existsSync(join(p, "celeriac", "v1", "options.proto")));
}

function protobufjsRoot(): string {
  const req = createRequire(import.meta.url);
  return dirname(req.resolve("protobufjs/package.json"));
}

/**
 * Parses `.proto` files and returns the tasks they declare with `celeriac.v1` options, with every
 * message and enum those tasks use. Field names are kept as written (`keepCase`).
 */
export function loadSchema(files: readonly string[], options: LoadSchemaOptions = {}): SchemaModel {
  if (files.length === 0) throw new CeleriacError("invalid_argument", "loadSchema: no .proto files given");
  const absFiles = files.map((f) => resolve(f));
  const roots = [...new Set([...absFiles.map((f) => dirname(f)), ...(options.includePaths ?? []).map((p) => resolve(p)), ...bundledProtoRoots()])];
  const pbRoot = protobufjsRoot();
  const root = new protobuf.Root();
  root.resolvePath = (origin, target) => {
    if (isAbsolute(target)) return target;
    for (const r of roots) {
      const candidate = join(r, target);
      if (existsSync(candidate)) return candidate;
    }
    if (target.startsWith("google/protobuf/")) return join(pbRoot, target);
    return resolve(origin ? dirname(origin) : ".", target);
  };
  try {
    root.loadSync(absFiles, { keepCase: true, alternateCommentMode: true });
    root.resolveAll();
  } catch (err) {
    throw new CeleriacError("invalid_argument", `cannot load ${files.join(", ")}: ${(err as Error).message}`);
  }
  return modelFromRoot(root, new Set(absFiles));
}

function stripDot(name: string): string {
  return name.startsWith(".") ? name.slice(1) : name;
}

function parsedOption(obj: protobuf.ReflectionObject, key: string): Record<string, unknown> | undefined {
  for (const entry of obj.parsedOptions ?? []) {
    const value = (entry as Record<string, unknown>)[key];
    if (value && typeof value === "object") return value as Record<string, unknown>;
  }
  return undefined;
}

function modelFromRoot(root: protobuf.Root, files: Set<string>): SchemaModel {
  const tasks: TaskModel[] = [];
  const messages: Record<string, MessageModel> = {};
  const enums: Record<string, EnumModel> = {};
  const services: protobuf.Service[] = [];
  const visit = (ns: protobuf.NamespaceBase) => {
    for (const child of ns.nestedArray) {
      if (child instanceof protobuf.Service && child.filename && files.has(resolve(child.filename))) services.push(child);
      if (child instanceof protobuf.Namespace || child instanceof protobuf.Type) visit(child);
    }
  };
  visit(root);

  const addEnum = (e: protobuf.Enum) => {
    const fullName = stripDot(e.fullName);
    if (enums[fullName]) return;
    enums[fullName] = { fullName, values: { ...e.values } };
  };
  const addMessage = (t: protobuf.Type): string => {
    const fullName = stripDot(t.fullName);
    if (fullName === "google.protobuf.Timestamp") return fullName;
    if (messages[fullName]) return fullName;
    const model: MessageModel = { fullName, fields: [] };
    messages[fullName] = model;
    if (t.oneofsArray.some((o) => !o.name.startsWith("_"))) {
      throw new CeleriacError(
        "invalid_argument",
        `${fullName}: oneof is not supported in task schemas (Python kwargs have no counterpart); use optional fields`,
      );
    }
    for (const f of [...t.fieldsArray].sort((a, b) => a.id - b.id)) {
      const resolved = f.resolvedType;
      let type: FieldType;
      if (SCALARS.has(f.type)) type = { kind: "scalar", scalar: f.type as ScalarType };
      else if (resolved instanceof protobuf.Enum) {
        addEnum(resolved);
        type = { kind: "enum", name: stripDot(resolved.fullName) };
      } else if (resolved instanceof protobuf.Type) {
        if (stripDot(resolved.fullName) === "google.protobuf.Timestamp") type = { kind: "timestamp" };
        else {
          if (stripDot(resolved.fullName).startsWith("google.protobuf.")) {
            throw new CeleriacError("invalid_argument", `${fullName}.${f.name}: ${resolved.fullName} is not supported (only google.protobuf.Timestamp)`);
          }
          type = { kind: "message", name: addMessage(resolved) };
        }
      } else throw new CeleriacError("invalid_argument", `${fullName}.${f.name}: unresolved type ${f.type}`);
      const field: FieldModel = { name: f.name, number: f.id, label: "required", type };
      if (f instanceof protobuf.MapField) {
        field.label = "map";
        field.keyType = f.keyType as ScalarType;
      } else if (f.repeated) field.label = "repeated";
      else if ((f.options as Record<string, unknown> | undefined)?.["proto3_optional"] === true || (f.partOf && f.partOf.name.startsWith("_")))
        field.label = "optional";
      model.fields.push(field);
    }
    return fullName;
  };

  for (const service of services.sort((a, b) => a.fullName.localeCompare(b.fullName))) {
    const serviceOpts = parsedOption(service, "(celeriac.v1.service)") ?? {};
    for (const method of service.methodsArray) {
      const opts = parsedOption(method, "(celeriac.v1.task)");
      const where = `${stripDot(service.fullName)}.${method.name}`;
      if (!opts) throw new CeleriacError("invalid_argument", `${where}: every rpc of a task service needs option (celeriac.v1.task) = { name: "..." }`);
      const name = opts["name"];
      if (typeof name !== "string" || name === "") throw new CeleriacError("invalid_argument", `${where}: (celeriac.v1.task).name is required`);
      if (method.requestStream || method.responseStream) throw new CeleriacError("invalid_argument", `${where}: streaming rpcs cannot be tasks`);
      const req = method.resolvedRequestType;
      const res = method.resolvedResponseType;
      if (!req || !res) throw new CeleriacError("invalid_argument", `${where}: unresolved request or response type`);
      const options = taskOptions(where, opts, serviceOpts);
      const task: TaskModel = { name, service: stripDot(service.fullName), method: method.name, request: addMessage(req), response: addMessage(res), options };
      if (method.comment) task.comment = method.comment;
      if (tasks.some((t) => t.name === name)) throw new CeleriacError("invalid_argument", `${where}: task name ${JSON.stringify(name)} is declared twice`);
      tasks.push(task);
    }
  }
  if (tasks.length === 0) throw new CeleriacError("invalid_argument", "no tasks: declare a service whose rpcs carry option (celeriac.v1.task)");
  const sorted = <T>(r: Record<string, T>) => Object.fromEntries(Object.entries(r).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
  return { tasks, messages: sorted(messages), enums: sorted(enums) };
}

function taskOptions(where: string, opts: Record<string, unknown>, serviceOpts: Record<string, unknown>): TaskOptionsModel {
  const out: TaskOptionsModel = {};
  const known = new Set([
    "name",
    "queue",
    "max_retries",
    "time_limit_ms",
    "soft_time_limit_ms",
    "priority",
    "ignore_result",
    "default_retry_delay_ms",
    "acks_late",
  ]);
  for (const k of Object.keys(opts)) if (!known.has(k)) throw new CeleriacError("invalid_argument", `${where}: unknown task option ${k}`);
  const queue = opts["queue"] ?? serviceOpts["queue"];
  if (typeof queue === "string" && queue !== "") out.queue = queue;
  const num = (k: string) => (typeof opts[k] === "number" ? (opts[k] as number) : undefined);
  const maxRetries = num("max_retries");
  if (maxRetries !== undefined) out.maxRetries = maxRetries;
  const timeLimit = num("time_limit_ms");
  if (timeLimit !== undefined) out.timeLimitMs = timeLimit;
  const soft = num("soft_time_limit_ms");
  if (soft !== undefined) out.softTimeLimitMs = soft;
  const priority = num("priority");
  if (priority !== undefined) {
    if (priority > 9) throw new CeleriacError("invalid_argument", `${where}: priority must be 0..9`);
    out.priority = priority;
  }
  if (typeof opts["ignore_result"] === "boolean") out.ignoreResult = opts["ignore_result"];
  const delay = num("default_retry_delay_ms");
  if (delay !== undefined) out.defaultRetryDelayMs = delay;
  if (typeof opts["acks_late"] === "boolean") out.acksLate = opts["acks_late"];
  return out;
}
