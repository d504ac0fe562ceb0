import { INT32_TYPES, INT64_TYPES, UNSIGNED_TYPES, type FieldModel, type SchemaModel, type TaskModel } from "./model.js";

/** A JSON Schema document (draft 2020-12), as plain JSON. */
export type JsonSchema = { [key: string]: unknown };

export interface TaskJsonSchemas {
  /** The task's kwargs as they travel in Celery JSON. */
  kwargs: JsonSchema;
  /** The task's result as it is stored. */
  result: JsonSchema;
}

const DRAFT = "https://json-schema.org/draft/2020-12/schema";

function singleSchema(field: FieldModel): JsonSchema {
  const t = field.type;
  switch (t.kind) {
    case "message":
      return { $ref: `#/$defs/${t.name}` };
    case "enum":
      return { $ref: `#/$defs/${t.name}` };
    case "timestamp":
      return { type: "string", format: "date-time", description: "google.protobuf.Timestamp as ISO 8601 text (Celery's datetime in JSON)" };
    case "scalar": {
      const s = t.scalar;
      if (INT64_TYPES.has(s)) {
        const unsigned = UNSIGNED_TYPES.has(s);
        // JSON Schema numbers are exact only as text; the bounds are kept as comments of intent.
        return { type: "integer", ...(unsigned ? { minimum: 0 } : {}), description: `${s}: JSON digits, a Python int, a TypeScript bigint` };
      }
      if (INT32_TYPES.has(s)) {
        return UNSIGNED_TYPES.has(s) ? { type: "integer", minimum: 0, maximum: 2 ** 32 - 1 } : { type: "integer", minimum: -(2 ** 31), maximum: 2 ** 31 - 1 };
      }
      if (s === "double" || s === "float") return { type: "number" };
      if (s === "bool") return { type: "boolean" };
      if (s === "bytes") return { type: "string", contentEncoding: "base64" };
      return { type: "string" };
    }
  }
}

function fieldSchema(field: FieldModel): JsonSchema {
  const single = singleSchema(field);
  if (field.label === "repeated") return { type: "array", items: single };
  if (field.label === "map") {
    const key = field.keyType ?? "string";
    const names = key === "string" ? {} : key === "bool" ? { propertyNames: { enum: ["true", "false"] } } : { propertyNames: { pattern: "^-?[0-9]+$" } };
    return { type: "object", ...names, additionalProperties: single };
  }
  if (field.label === "optional") return { anyOf: [single, { type: "null" }] };
  return single;
}

function messageSchema(schema: SchemaModel, name: string): JsonSchema {
  const message = schema.messages[name];
  const fields = message?.fields ?? [];
  const properties: Record<string, JsonSchema> = {};
  for (const f of fields) properties[f.name] = fieldSchema(f);
  const required = fields.filter((f) => f.label !== "optional").map((f) => f.name);
  return { type: "object", properties, required, additionalProperties: false };
}

/** Messages and enums reachable from `root`, in sorted order, for `$defs`. */
function reachable(schema: SchemaModel, root: string): string[] {
  const seen = new Set<string>();
  const walk = (name: string) => {
    if (seen.has(name)) return;
    seen.add(name);
    for (const f of schema.messages[name]?.fields ?? []) if (f.type.kind === "message" || f.type.kind === "enum") walk(f.type.name);
  };
  walk(root);
  seen.delete(root);
  return [...seen].sort();
}

/** The JSON Schema of message `root` of `schema`, self-contained (`$defs` for nested types). */
export function messageJsonSchema(schema: SchemaModel, root: string, id: string, title: string): JsonSchema {
  const defs: Record<string, JsonSchema> = {};
  for (const name of reachable(schema, root)) {
    const e = schema.enums[name];
    defs[name] = e ? { enum: Object.keys(e.values) } : messageSchema(schema, name);
  }
  return { $schema: DRAFT, $id: id, title, ...messageSchema(schema, root), ...(Object.keys(defs).length > 0 ? { $defs: defs } : {}) };
}

export function taskJsonSchemas(schema: SchemaModel, task: TaskModel): TaskJsonSchemas {
  return {
    kwargs: messageJsonSchema(schema, task.request, `celeriac:task/${task.name}/kwargs`, `kwargs of ${task.name} (${task.request})`),
    result: messageJsonSchema(schema, task.response, `celeriac:task/${task.name}/result`, `result of ${task.name} (${task.response})`),
  };
}
