import { importOptional } from "../optional.js";

const schemaTools = () => importOptional("@celeriac/schema", "celeriac codegen / schema check", () => import("@celeriac/schema"));

export interface SchemaCheckOptions {
  protoPath?: string[];
  json?: boolean;
}

/**
 * `celeriac schema check <old> <new>`: lists breaking changes between two versions of a schema
 * (each a .proto file, or several joined with commas). Exit code 1 when any change is breaking.
 */
export async function schemaCheckCommand(oldFiles: string, newFiles: string, opts: SchemaCheckOptions): Promise<void> {
  const { checkCompatibility, loadSchema } = await schemaTools();
  const load = (arg: string) => loadSchema(arg.split(",").filter(Boolean), opts.protoPath && opts.protoPath.length > 0 ? { includePaths: opts.protoPath } : {});
  const report = checkCompatibility(load(oldFiles), load(newFiles));
  if (opts.json) process.stdout.write(JSON.stringify(report, null, 2) + "\n");
  else {
    for (const c of report.breaking) process.stdout.write(`BREAKING ${c.kind}: ${c.message}\n`);
    for (const c of report.compatible) process.stdout.write(`ok: ${c}\n`);
    process.stdout.write(report.breaking.length > 0 ? `${report.breaking.length} breaking change(s)\n` : "no breaking changes\n");
  }
  if (report.breaking.length > 0) process.exitCode = 1;
}
