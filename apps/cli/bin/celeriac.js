#!/usr/bin/env -S node --max-semi-space-size=4
// The `celeriac` command. This file exists before any build, so `npm install` links it in the
// repository too (npx celeriac); the program itself is the compiled dist/bin.js.
// --max-semi-space-size=4 (MiB; V8's default grows to 16): a busy worker allocates fast enough
// for V8 to grow its young generation to 3 x 16 MiB, which it then keeps. At 4 a drain costs a
// few percent in throughput and the worker stays near 100 MB instead of 120-150 MB (see
// docs/benchmarks.md). `env -S` splits the line on Linux and macOS; npm's Windows shims read it too.
// Started as `node celeriac.js` instead, the flag is not applied; NODE_OPTIONS can set it.
import { existsSync } from "node:fs";

const program = new URL("../dist/bin.js", import.meta.url);
if (!existsSync(program)) {
  process.stderr.write("celeriac: the CLI is not built yet (no dist/bin.js); in the repository run `npm run build` first\n");
  process.exit(1);
}
await import(program.href);
