import { relative } from "node:path";
import { importOptional } from "../optional.js";

const schemaTools = () => importOptional("@celeriac/schema", "celeriac codegen / schema check", () => import("@celeriac/schema"));

export interface CodegenOptions {
  out: string;
  name?: string;
  protoPath?: string[];
  quiet?: boolean;
}

/** `celeriac codegen <files...> --out <dir>`: TypeScript handles, Python stub and JSON Schemas. */
export async function codegenCommand(files: string[], opts: CodegenOptions): Promise<void> {
  const { generateToDir } = await schemaTools();
  const written = generateToDir(files, opts.out, {
    ...(opts.name ? { name: opts.name } : {}),
    ...(opts.protoPath && opts.protoPath.length > 0 ? { includePaths: opts.protoPath } : {}),
  });
  if (!opts.quiet) for (const f of written) process.stdout.write(`wrote ${relative(process.cwd(), f)}\n`);
}
