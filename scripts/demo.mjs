#!/usr/bin/env node
// `npm run demo`: builds quietly (turbo's preamble and telemetry notice are printed only if the
// build fails), then runs `celeriac demo` with this terminal and passes on its exit code.
import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";

const root = fileURLToPath(new URL("..", import.meta.url));
process.stdout.write("Building the packages ...\n");
const build = spawnSync("npx", ["turbo", "run", "build", "--output-logs=errors-only"], {
  cwd: root,
  encoding: "utf8",
  env: { ...process.env, TURBO_TELEMETRY_DISABLED: "1", DO_NOT_TRACK: "1" },
});
if (build.status !== 0) {
  process.stderr.write(`${build.stdout ?? ""}${build.stderr ?? ""}\nThe build failed (above).\n`);
  process.exit(build.status ?? 1);
}
const demo = spawnSync(process.execPath, [fileURLToPath(new URL("../apps/cli/bin/celeriac.js", import.meta.url)), "demo", ...process.argv.slice(2)], {
  stdio: "inherit",
});
process.exit(demo.status ?? 1);
