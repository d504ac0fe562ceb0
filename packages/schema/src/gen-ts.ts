import { INT64_TYPES, type FieldModel, type SchemaModel } from "./model.js";
import { banner, localNames, lowerCamel, type GenerateContext } from "./names.js";

function tsSingle(field: FieldModel, names: Map<string, string>): string {
  const t = field.type;
  switch (t.kind) {
    case "message":
    case "enum":
      return names.get(t.name) ?? "never";
    case "timestamp":
      return "Date";
    case "scalar":
      if (INT64_TYPES.has(t.scalar)) return "bigint";
      if (t.scalar === "bool") return "boolean";
      if (t.scalar === "string") return "string";
      if (t.scalar === "bytes") return "Uint8Array";
      return "number";
  }
}

function tsField(field: FieldModel, names: Map<string, string>): string {
  const single = tsSingle(field, names);
  if (field.label === "repeated") return `  ${field.name}: ${single.includes(" ") ? `(${single})` : single}[];`;
  if (field.label === "map") return `  ${field.name}: Record<string, ${single}>;`;
  if (field.label === "optional") return `  ${field.name}?: ${single} | null;`;
  return `  ${field.name}: ${single};`;
}

function doc(text: string | undefined, indent = ""): string[] {
  if (!text) return [];
  const lines = text.replace(/\*\//g, "* /").split("\n");
  return [`${indent}/**`, ...lines.map((l) => `${indent} *${l ? ` ${l}` : ""}`), `${indent} */`];
}

/** The TypeScript module: types of every message, a handle per task, the embedded schema. */
export function generateTypeScript(schema: SchemaModel, ctx: GenerateContext): string {
  const names = localNames(schema);
  const out: string[] = [...banner(ctx, "//"), "/* eslint-disable */", ""];
  out.push('import { createTaskHandle, type SchemaModel, type TaskHandle } from "@celeriac/schema";', "");
  for (const [full, e] of Object.entries(schema.enums)) {
    out.push(`/** Enum \`${full}\`: travels by value name. */`);
    out.push(
      `export type ${names.get(full)} = ${Object.keys(e.values)
        .map((v) => JSON.stringify(v))
        .join(" | ")};`,
      "",
    );
  }
  for (const [full, m] of Object.entries(schema.messages)) {
    out.push(`/** Message \`${full}\`. */`);
    out.push(`export type ${names.get(full)} = {`);
    for (const f of m.fields) out.push(tsField(f, names));
    out.push("};", "");
  }
  out.push("/** The schema these handles validate against (generated; the .proto files are the source). */");
  out.push(`export const schema: SchemaModel = ${JSON.stringify(schema, null, 2)};`, "");
  const handles: string[] = [];
  for (const task of schema.tasks) {
    const id = lowerCamel(task.method);
    handles.push(id);
    out.push(...doc(task.comment));
    if (!task.comment) out.push(`/** Task \`${task.name}\` (${task.service}.${task.method}). */`);
    out.push(
      `export const ${id}: TaskHandle<${names.get(task.request)}, ${names.get(task.response)}> = createTaskHandle(schema, ${JSON.stringify(task.name)});`,
      "",
    );
  }
  out.push("/** Every task of this schema, by handle name. */");
  out.push(`export const tasks = { ${handles.join(", ")} } as const;`);
  return out.join("\n") + "\n";
}
