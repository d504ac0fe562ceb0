#!/usr/bin/env -S node --max-semi-space-size=4 --heap-growing-percent=100
// The `celeriac` command. This file exists before any build, so `npm install` links it in the
// repository too (npx celeriac); the program itself is the compiled dist/bin.js.
// Two V8 flags keep a busy worker's memory near what it uses (docs/operations.md):
// --max-semi-space-size=4 (MiB; V8's default grows to 16): a busy worker allocates fast enough
// for V8 to grow its young generation to 3 x 16 MiB, which it then keeps.
// --heap-growing-percent=100: after each full collection the old generation may grow to twice
// what is live, instead of V8's up-to-4x factor, so a worker that drained a burst does not keep
// several times its live heap in garbage. Neither costs drain rate beyond the run-to-run noise.
// `env -S` splits the line on Linux and macOS; npm's Windows shims read it too.
// Started as `node celeriac.js` instead, the flags are not applied: put them on that command line
// (NODE_OPTIONS takes --max-semi-space-size but refuses --heap-growing-percent).
import { existsSync } from "node:fs";

const program = new URL("../dist/bin.js", import.meta.url);
if (!existsSync(program)) {
  process.stderr.write("celeriac: the CLI is not built yet (no dist/bin.js); in the repository run `npm run build` first\n");
  process.exit(1);
}
await import(program.href);
