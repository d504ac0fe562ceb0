/**
 * The language-neutral model of a task schema that every generator, the runtime validator and the
 * breaking-change check work from. It is plain JSON, so generated code embeds the part it needs.
 */

/** Protobuf scalar types, as written in `.proto` files. */
export type ScalarType =
  | "double"
  | "float"
  | "int32"
  | "uint32"
  | "sint32"
  | "fixed32"
  | "sfixed32"
  | "int64"
  | "uint64"
  | "sint64"
  | "fixed64"
  | "sfixed64"
  | "bool"
  | "string"
  | "bytes";

/** What a field holds: a scalar, an enum (by full name), a message (by full name) or a timestamp. */
export type FieldType = { kind: "scalar"; scalar: ScalarType } | { kind: "enum"; name: string } | { kind: "message"; name: string } | { kind: "timestamp" };

/**
 * How often a field occurs. `required`: a singular field without `optional` (the kwarg must be
 * given); `optional`: proto3 `optional` (may be omitted or None); `repeated`: a list; `map`: a dict.
 */
export type FieldLabel = "required" | "optional" | "repeated" | "map";

export interface FieldModel {
  /** As written in the .proto file (snake_case stays snake_case). */
  name: string;
  number: number;
  label: FieldLabel;
  type: FieldType;
  /** Map fields: the key's scalar type. */
  keyType?: ScalarType;
}

export interface MessageModel {
  /** Full name without a leading dot, e.g. `acme.billing.v1.ChargeInvoiceRequest`. */
  fullName: string;
  fields: FieldModel[];
}

export interface EnumModel {
  fullName: string;
  /** Value name -> number, in declaration order. */
  values: Record<string, number>;
}

/** A task's Celery options, in Celeriac's TaskOptions naming (durations in ms). */
export interface TaskOptionsModel {
  queue?: string;
  maxRetries?: number;
  timeLimitMs?: number;
  softTimeLimitMs?: number;
  priority?: number;
  ignoreResult?: boolean;
  defaultRetryDelayMs?: number;
  acksLate?: boolean;
}

export interface TaskModel {
  /** Registered Celery task name. */
  name: string;
  /** `package.Service`, e.g. `acme.billing.v1.Billing`. */
  service: string;
  /** The rpc name, e.g. `ChargeInvoice`. */
  method: string;
  /** Full name of the request message: the task's kwargs. */
  request: string;
  /** Full name of the response message: the task's result. */
  response: string;
  options: TaskOptionsModel;
  /** The rpc's leading comment, if any. */
  comment?: string;
}

export interface SchemaModel {
  tasks: TaskModel[];
  /** Every message reachable from a task, by full name (sorted). */
  messages: Record<string, MessageModel>;
  enums: Record<string, EnumModel>;
}

export const INT64_TYPES: ReadonlySet<ScalarType> = new Set(["int64", "uint64", "sint64", "fixed64", "sfixed64"]);
export const INT32_TYPES: ReadonlySet<ScalarType> = new Set(["int32", "uint32", "sint32", "fixed32", "sfixed32"]);
export const UNSIGNED_TYPES: ReadonlySet<ScalarType> = new Set(["uint32", "fixed32", "uint64", "fixed64"]);

/** A short human name of a field's type, for error messages and reports. */
export function describeType(field: Pick<FieldModel, "label" | "type" | "keyType">): string {
  const t = field.type;
  const base = t.kind === "scalar" ? t.scalar : t.kind === "timestamp" ? "google.protobuf.Timestamp" : t.name;
  if (field.label === "repeated") return `repeated ${base}`;
  if (field.label === "map") return `map<${field.keyType ?? "string"}, ${base}>`;
  if (field.label === "optional") return `optional ${base}`;
  return base;
}
