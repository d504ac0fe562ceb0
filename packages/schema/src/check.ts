import { describeType, type FieldModel, type SchemaModel } from "./model.js";

/** Kinds of incompatible change between two versions of a task schema. */
export type BreakingChangeKind =
  | "task_removed"
  | "task_renamed"
  | "field_removed"
  | "field_renamed"
  | "field_number_changed"
  | "field_type_changed"
  | "field_required_changed"
  | "required_field_added"
  | "enum_value_removed";

export interface SchemaChange {
  kind: BreakingChangeKind;
  /** Celery task name (the old one) the change affects. */
  task: string;
  /** Where: `kwargs.field.sub` or `result.field`. */
  path: string;
  message: string;
}

export interface SchemaCheckReport {
  breaking: SchemaChange[];
  /** Compatible changes worth knowing about (added optional fields, new tasks, added enum values). */
  compatible: string[];
}

type Side = "kwargs" | "result";

/**
 * Compares two versions of a schema as Celery sees them: tasks by name, fields by name and number.
 * Direction matters: kwargs are written by producers and read by workers, results the reverse, so
 * a field may become optional in kwargs but not in a result, and required only in a result.
 */
export function checkCompatibility(oldSchema: SchemaModel, newSchema: SchemaModel): SchemaCheckReport {
  const breaking: SchemaChange[] = [];
  const compatible: string[] = [];
  for (const oldTask of oldSchema.tasks) {
    const newTask = newSchema.tasks.find((t) => t.name === oldTask.name);
    if (!newTask) {
      const moved = newSchema.tasks.find((t) => t.service === oldTask.service && t.method === oldTask.method);
      if (moved) {
        const message = `task ${oldTask.name} (${oldTask.service}.${oldTask.method}) was renamed to ${moved.name}; queued messages and workers in other languages still use the old name`;
        breaking.push({ kind: "task_renamed", task: oldTask.name, path: "", message });
      } else {
        breaking.push({ kind: "task_removed", task: oldTask.name, path: "", message: `task ${oldTask.name} was removed` });
      }
      continue;
    }
    const seen = new Set<string>();
    compareMessage(oldSchema, newSchema, oldTask.request, newTask.request, "kwargs", "kwargs", oldTask.name, breaking, compatible, seen);
    compareMessage(oldSchema, newSchema, oldTask.response, newTask.response, "result", "result", oldTask.name, breaking, compatible, seen);
  }
  for (const t of newSchema.tasks) {
    const known = oldSchema.tasks.some((o) => o.name === t.name || (o.service === t.service && o.method === t.method));
    if (!known) compatible.push(`task ${t.name} added`);
  }
  return { breaking, compatible };
}

function sameType(a: FieldModel, b: FieldModel): boolean {
  const shape = (f: FieldModel) => {
    const repeated = f.label === "repeated" ? "repeated" : f.label === "map" ? `map<${f.keyType ?? ""}>` : "single";
    const t = f.type;
    // Messages are compared field by field, so only their kind matters here.
    const base = t.kind === "scalar" ? t.scalar : t.kind === "enum" ? "enum" : t.kind;
    return `${repeated} ${base}`;
  };
  return shape(a) === shape(b);
}

function compareMessage(
  oldSchema: SchemaModel,
  newSchema: SchemaModel,
  oldName: string,
  newName: string,
  side: Side,
  path: string,
  task: string,
  breaking: SchemaChange[],
  compatible: string[],
  seen: Set<string>,
): void {
  const key = `${side}|${oldName}|${newName}|${path}`;
  if (seen.has(key) || path.split(".").length > 32) return;
  seen.add(key);
  const oldFields = oldSchema.messages[oldName]?.fields ?? [];
  const newFields = newSchema.messages[newName]?.fields ?? [];
  const push = (kind: BreakingChangeKind, p: string, message: string) => breaking.push({ kind, task, path: p, message: `${task}: ${p}: ${message}` });
  for (const of of oldFields) {
    const p = `${path}.${of.name}`;
    const byName = newFields.find((f) => f.name === of.name);
    const byNumber = newFields.find((f) => f.number === of.number);
    if (!byName) {
      if (byNumber && !oldFields.some((f) => f.name === byNumber.name))
        push("field_renamed", p, `field renamed to ${byNumber.name} (kwargs and JSON results are matched by name)`);
      else push("field_removed", p, `field removed (${describeType(of)})`);
      continue;
    }
    if (byName.number !== of.number)
      push("field_number_changed", p, `field number changed from ${of.number} to ${byName.number} (protobuf encodings and reserved numbers rely on it)`);
    if (!sameType(of, byName)) {
      push("field_type_changed", p, `type changed from ${describeType(of)} to ${describeType(byName)}`);
      continue;
    }
    if (of.type.kind === "enum" && byName.type.kind === "enum") {
      compareEnum(oldSchema, newSchema, of.type.name, byName.type.name, side, p, push, compatible);
    }
    if (of.type.kind === "message" && byName.type.kind === "message") {
      compareMessage(oldSchema, newSchema, of.type.name, byName.type.name, side, p, task, breaking, compatible, seen);
    }
    const wasOptional = of.label === "optional";
    const isOptional = byName.label === "optional";
    if (wasOptional && !isOptional) {
      // A newer worker requiring it breaks older producers; a result that gains a value breaks nobody.
      if (side === "kwargs") push("field_required_changed", p, "optional field became required: producers that leave it out are rejected");
      else compatible.push(`${task}: ${p}: optional result field became required`);
    } else if (!wasOptional && isOptional && of.label === "required") {
      if (side === "result") push("field_required_changed", p, "required result field became optional: readers that rely on it get None");
      else compatible.push(`${task}: ${p}: required field became optional`);
    }
  }
  for (const nf of newFields) {
    if (oldFields.some((f) => f.name === nf.name)) continue;
    if (oldFields.some((f) => f.number === nf.number && !newFields.some((n) => n.name === f.name))) continue; // reported as a rename
    const p = `${path}.${nf.name}`;
    if (nf.label !== "optional" && side === "kwargs")
      push("required_field_added", p, `new required field (${describeType(nf)}): producers of the old schema do not send it`);
    else compatible.push(`${task}: ${p}: field added (${describeType(nf)})`);
  }
}

function compareEnum(
  oldSchema: SchemaModel,
  newSchema: SchemaModel,
  oldName: string,
  newName: string,
  side: Side,
  path: string,
  push: (kind: BreakingChangeKind, p: string, message: string) => void,
  compatible: string[],
): void {
  const oldValues = Object.keys(oldSchema.enums[oldName]?.values ?? {});
  const newValues = Object.keys(newSchema.enums[newName]?.values ?? {});
  for (const v of oldValues) if (!newValues.includes(v)) push("enum_value_removed", path, `enum value ${v} removed from ${newName} (enums travel by name)`);
  for (const v of newValues)
    if (!oldValues.includes(v))
      compatible.push(`${path}: enum value ${v} added${side === "result" ? " (readers of the old schema reject it until updated)" : ""}`);
}
