#!/usr/bin/env node
// The `celeriac` command. This file exists before any build, so `npm install` links it in the
// repository too (npx celeriac); the program itself is the compiled dist/bin.js.
import { existsSync } from "node:fs";

const program = new URL("../dist/bin.js", import.meta.url);
if (!existsSync(program)) {
  process.stderr.write("celeriac: the CLI is not built yet (no dist/bin.js); in the repository run `npm run build` first\n");
  process.exit(1);
}
await import(program.href);
