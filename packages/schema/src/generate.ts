import { mkdirSync, writeFileSync } from "node:fs";
import { basename, dirname, join, relative, resolve, sep } from "node:path";
import { CeleriacError } from "@celeriac/core";
import { generatePython } from "./gen-py.js";
import { generateTypeScript } from "./gen-ts.js";
import { taskJsonSchemas } from "./json-schema.js";
import { loadSchema, type LoadSchemaOptions } from "./load.js";
import type { SchemaModel } from "./model.js";
import type { GenerateContext } from "./names.js";
import { VERSION } from "./version.js";

export interface GenerateOptions extends LoadSchemaOptions {
  /** Base name of the outputs: `<name>.ts`, `<name>_tasks.py`. Default: the first file's name without `.proto`. */
  name?: string;
}

export interface GeneratedFile {
  /** Path relative to the output directory, with `/` separators. */
  path: string;
  contents: string;
}

/**
 * Generates from a loaded schema: the TypeScript module, the Python stub module and one JSON Schema
 * per task for its kwargs and its result (`jsonschema/<task>.kwargs.json`, `.result.json`).
 * Output depends only on the schema, the source names and this package's version.
 */
export function generateFromModel(schema: SchemaModel, name: string, sources: string[]): GeneratedFile[] {
  if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(name)) throw new CeleriacError("invalid_argument", `output name ${JSON.stringify(name)} must be a Python identifier`);
  const ctx: GenerateContext = { sources, version: VERSION };
  const files: GeneratedFile[] = [
    { path: `${name}.ts`, contents: generateTypeScript(schema, ctx) },
    { path: `${name}_tasks.py`, contents: generatePython(schema, ctx) },
  ];
  for (const task of schema.tasks) {
    const s = taskJsonSchemas(schema, task);
    files.push({ path: `jsonschema/${task.name}.kwargs.json`, contents: JSON.stringify(s.kwargs, null, 2) + "\n" });
    files.push({ path: `jsonschema/${task.name}.result.json`, contents: JSON.stringify(s.result, null, 2) + "\n" });
  }
  return files;
}

/** Loads `.proto` files and generates every output, without writing anything. */
export function generate(files: readonly string[], options: GenerateOptions = {}): GeneratedFile[] {
  const schema = loadSchema(files, options);
  const name = options.name ?? basename(files[0] ?? "schema", ".proto").replace(/[^A-Za-z0-9_]/g, "_");
  // Named as protoc would import them (relative to the include path holding them), so the output
  // does not depend on where it is written or on the machine.
  const includes = (options.includePaths ?? []).map((p) => resolve(p));
  const sources = files.map((f) => {
    const abs = resolve(f);
    const root = includes.find((r) => abs.startsWith(r + sep));
    return (root ? relative(root, abs) : basename(abs)).split(sep).join("/");
  });
  return generateFromModel(schema, name, sources);
}

/** Generates and writes into `outDir`; returns the paths written. */
export function generateToDir(files: readonly string[], outDir: string, options: GenerateOptions = {}): string[] {
  const out = generate(files, options);
  return out.map((f) => {
    const target = join(resolve(outDir), f.path);
    mkdirSync(dirname(target), { recursive: true });
    writeFileSync(target, f.contents);
    return target;
  });
}
