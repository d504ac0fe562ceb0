#!/usr/bin/env node
// The packaging check: what a user gets from `npm install @celeriac/x`, tried before publishing.
// Packs every workspace package (the list comes from npm, so new packages are checked too),
// lints each tarball (publint, are-the-types-wrong, source maps, Node types), installs the
// tarballs into empty folders (each library with only its own @celeriac dependencies; the CLI
// alone) and imports them from ESM, CommonJS and strict TypeScript (nodenext and the default
// commonjs), then runs `celeriac` from its install. Run by test/packaging.test.ts and, alone,
// by `npm run packages:check`. The @celeriac packages come only from the tarballs; third-party
// ones from the npm cache (filled by `npm ci`), the registry otherwise.
import { spawn, spawnSync } from "node:child_process";
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { dirname, join, relative } from "node:path";
import { declarationsUseNodeTypes } from "./sync-packages.mjs";
import { ROOT, workspacePackages } from "./workspaces.mjs";

const require = createRequire(import.meta.url);
const TSC = require.resolve("typescript/bin/tsc");
const ATTW = join(ROOT, "node_modules", ".bin", "attw");

/** Runs a command and returns its exit code and output, whatever the code. */
export function runStatus(cmd, args, opts = {}) {
  const r = spawnSync(cmd, args, { cwd: opts.cwd ?? ROOT, env: { ...process.env, ...opts.env }, encoding: "utf8", timeout: opts.timeoutMs ?? 300_000 });
  return { code: r.status, stdout: r.stdout ?? "", stderr: r.stderr ?? "" };
}

/**
 * Runs a command; returns its output, or throws with the output (both streams) in the message.
 * @param {string} cmd @param {string[]} args @param {{ cwd?: string, env?: NodeJS.ProcessEnv, timeoutMs?: number }} [opts]
 */
export function run(cmd, args, opts = {}) {
  const r = spawnSync(cmd, args, {
    cwd: opts.cwd ?? ROOT,
    env: { ...process.env, TURBO_TELEMETRY_DISABLED: "1", ...opts.env },
    encoding: "utf8",
    timeout: opts.timeoutMs ?? 300_000,
    maxBuffer: 64 * 1024 * 1024,
  });
  const out = `${r.stdout ?? ""}${r.stderr ?? ""}`;
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(" ")} (in ${opts.cwd ?? ROOT}) exited ${r.status ?? r.signal}:\n${out}`);
  return out;
}

/** A library has an importable entry; a command-only package (the CLI) has none. */
export const isLibrary = (pkg) => Boolean(pkg.manifest.exports?.["."]);

/**
 * Builds, then packs every published workspace package into `dest` (without running prepack
 * again: the build just ran, and prepack's turbo output would mix into npm's JSON).
 * @returns {Promise<Array<{ name: string, version: string, dir: string, manifest: any, tarball: string, files: string[], unpacked: string }>>}
 */
export async function packAll(dest) {
  run("npx", ["turbo", "run", "build", "--output-logs=errors-only"]);
  const packages = workspacePackages().filter((p) => !p.manifest.private);
  const json = run("npm", ["pack", "--ignore-scripts", "--json", "--pack-destination", dest, ...packages.flatMap((p) => ["-w", p.name])]);
  const packed = JSON.parse(json.slice(json.indexOf("[")));
  return packages.map((p) => {
    const entry = packed.find((e) => e.name === p.name);
    if (!entry) throw new Error(`npm pack made no tarball for ${p.name}`);
    const unpacked = join(dest, "unpacked", p.name);
    mkdirSync(unpacked, { recursive: true });
    run("tar", ["-xzf", join(dest, entry.filename), "-C", unpacked, "--strip-components=1"]);
    return { ...p, version: entry.version, tarball: join(dest, entry.filename), files: entry.files.map((f) => f.path), unpacked };
  });
}

/** What the manifest promises that the tarball does not hold, source maps naming missing sources, undeclared Node types. */
export function tarballProblems(pkg) {
  const problems = [];
  const has = new Set(pkg.files);
  const m = pkg.manifest;
  const promised = [m.main, m.types, ...Object.values(m.bin ?? {})];
  const collect = (t) => (typeof t === "string" ? promised.push(t) : t && typeof t === "object" && Object.values(t).forEach(collect));
  collect(m.exports);
  for (const p of promised.filter(Boolean)) if (!has.has(p.replace(/^\.\//, ""))) problems.push(`package.json names ${p}, which is not in the tarball`);
  for (const f of ["LICENSE", "README.md", "package.json"]) if (!has.has(f)) problems.push(`no ${f} in the tarball`);
  for (const f of pkg.files.filter((f) => f.endsWith(".map"))) {
    const map = JSON.parse(readFileSync(join(pkg.unpacked, f), "utf8"));
    for (const s of map.sources ?? []) {
      const target = relative(pkg.unpacked, join(pkg.unpacked, dirname(f), map.sourceRoot ?? "", s));
      if (!has.has(target)) problems.push(`${f} names ${s}, which is not in the tarball`);
    }
  }
  if (declarationsUseNodeTypes(pkg.unpacked) && !m.dependencies?.["@types/node"])
    problems.push("its .d.ts use Node's types but @types/node is not a dependency");
  for (const dep of Object.keys(m.dependencies ?? {}))
    if (/^workspace:|^file:|^link:/.test(m.dependencies[dep])) problems.push(`dependency ${dep} is ${m.dependencies[dep]}`);
  return problems;
}

/** publint over the tarball: warnings and errors fail, suggestions are printed only. */
export async function publintProblems(pkg) {
  const { publint } = await import("publint");
  const { formatMessage } = await import("publint/utils");
  const tarball = readFileSync(pkg.tarball);
  const { messages, pkg: manifest } = await publint({
    pack: { tarball: tarball.buffer.slice(tarball.byteOffset, tarball.byteOffset + tarball.byteLength) },
    level: "warning",
    strict: true,
  });
  return messages.map((msg) => `publint ${msg.type}: ${formatMessage(msg, manifest, { color: false }) ?? msg.code}`);
}

/**
 * are-the-types-wrong over the tarball, for libraries. One rule is off on purpose: attw says a
 * require() that resolves to ESM is an error, but Node >= 20.19 (our engines) loads it, and
 * TypeScript >= 5.8 under nodenext types it; the CommonJS consumers below prove that for real.
 */
export function attwProblems(pkg) {
  if (!isLibrary(pkg)) return [];
  const r = spawnSync(ATTW, [pkg.tarball, "--format", "ascii", "--no-emoji", "--no-color", "--ignore-rules", "cjs-resolves-to-esm"], { encoding: "utf8" });
  return r.status === 0 ? [] : [`are-the-types-wrong:\n${r.stdout}${r.stderr}`];
}

/** The tarballs to install for `name`: itself and its @celeriac dependencies (and optional ones, and peers), transitively. */
export function closure(packed, name) {
  const byName = new Map(packed.map((p) => [p.name, p]));
  const seen = new Set();
  const visit = (n) => {
    const p = byName.get(n);
    if (!p || seen.has(n)) return;
    seen.add(n);
    const m = p.manifest;
    const optionalPeers = new Set(
      Object.entries(m.peerDependenciesMeta ?? {})
        .filter(([, v]) => v.optional)
        .map(([k]) => k),
    );
    for (const dep of [
      ...Object.keys(m.dependencies ?? {}),
      ...Object.keys(m.optionalDependencies ?? {}),
      ...Object.keys(m.peerDependencies ?? {}).filter((d) => !optionalPeers.has(d)),
    ])
      visit(dep);
  };
  visit(name);
  return [...seen].map((n) => byName.get(n));
}

/**
 * `npm install` of tarballs (and registry specs) into `dir`. Install scripts are off: the only one
 * in our tree is better-sqlite3's native build, which takes minutes on 2 cores, so its binary is
 * copied from the repository's own install when the versions match (built for this very Node),
 * and rebuilt otherwise.
 */
export function installInto(dir, specs) {
  if (!existsSync(join(dir, "package.json"))) writeFileSync(join(dir, "package.json"), `${JSON.stringify({ name: "consumer", private: true }, null, 2)}\n`);
  run("npm", ["install", "--prefer-offline", "--no-audit", "--no-fund", "--ignore-scripts", "--loglevel=error", ...specs], { cwd: dir });
  const installed = join(dir, "node_modules", "better-sqlite3");
  if (existsSync(installed)) {
    const ours = join(ROOT, "node_modules", "better-sqlite3");
    const version = (d) => JSON.parse(readFileSync(join(d, "package.json"), "utf8")).version;
    if (existsSync(join(ours, "build", "Release", "better_sqlite3.node")) && version(ours) === version(installed)) {
      mkdirSync(join(installed, "build", "Release"), { recursive: true });
      cpSync(join(ours, "build", "Release", "better_sqlite3.node"), join(installed, "build", "Release", "better_sqlite3.node"));
    } else {
      run("npm", ["rebuild", "better-sqlite3"], { cwd: dir, timeoutMs: 900_000 });
    }
  }
}

const CONSUMER = (name, label) => `import * as pkg from "${name}";
const names: string[] = Object.keys(pkg).filter((k) => k !== "default" && k !== "module.exports");
if (names.length === 0) throw new Error("${name} exports nothing");
console.log(\`${label} \${names.length}\`);
`;

/**
 * Imports a library as users would, in the folder where it was installed: TypeScript `--strict
 * --module nodenext` (an .mts file, which stays an ESM `import`, and a .cts file, which becomes a
 * CommonJS `require`) and TypeScript `--strict --module commonjs` (the default of a project without
 * "type": "module", which compiles to `require`); each compiled program is run, so both the types
 * and the runtime loading are tried. Returns what each printed.
 */
export function consumeLibrary(dir, name) {
  const out = {};
  mkdirSync(join(dir, "ts"), { recursive: true });
  writeFileSync(join(dir, "ts", "consumer.mts"), CONSUMER(name, "nodenext-esm"));
  writeFileSync(join(dir, "ts", "consumer.cts"), CONSUMER(name, "nodenext-cjs"));
  writeFileSync(join(dir, "ts", "consumer.ts"), CONSUMER(name, "commonjs"));
  const strict = ["--strict", "--target", "es2022", "--skipLibCheck", "false"];
  run("node", [TSC, ...strict, "--module", "nodenext", "--outDir", "out-nodenext", "ts/consumer.mts", "ts/consumer.cts"], { cwd: dir });
  run("node", [TSC, ...strict, "--module", "commonjs", "--outDir", "out-commonjs", "ts/consumer.ts"], { cwd: dir });
  out.tsNodenextEsm = run("node", ["out-nodenext/consumer.mjs"], { cwd: dir }).trim();
  out.tsNodenextCjs = run("node", ["out-nodenext/consumer.cjs"], { cwd: dir }).trim();
  out.tsCommonjs = run("node", ["out-commonjs/consumer.js"], { cwd: dir }).trim();
  return out;
}

/** A fresh empty folder under `base`. */
export function emptyDir(base, label) {
  return mkdtempSync(join(base, `${label.replace(/[@/]/g, "_")}-`));
}

/**
 * The CLI as installed alone (with its own dependencies only): its version, `celeriac demo`
 * (which must leave no temp folder behind), and the package each missing feature names.
 * Throws on the first thing that is wrong; returns a line per check.
 */
export function checkCli(packed, base) {
  const cli = packed.find((p) => p.manifest.bin?.celeriac);
  if (!cli) throw new Error("no workspace package provides the celeriac bin");
  const dir = emptyDir(base, cli.name);
  installInto(
    dir,
    closure(packed, cli.name).map((p) => p.tarball),
  );
  const bin = join(dir, "node_modules", ".bin", "celeriac");
  const lines = [];
  const tmp = mkdtempSync(join(base, "tmp-"));
  const env = { TMPDIR: tmp, CELERIAC_BROKER_URL: "", CELERIAC_RESULT_BACKEND: "", NO_COLOR: "1" };
  const version = run(bin, ["--version"], { cwd: dir, env }).trim();
  if (version !== cli.version) throw new Error(`celeriac --version printed ${version}, the package is ${cli.version}`);
  lines.push(`celeriac --version: ${version}`);
  const demo = runStatus(bin, ["demo", "--count", "20"], { cwd: dir, env, timeoutMs: 180_000 });
  if (demo.code !== 0 || !demo.stdout.includes("all results correct")) throw new Error(`celeriac demo exited ${demo.code}:\n${demo.stdout}${demo.stderr}`);
  const left = readdirSync(tmp);
  if (left.length > 0) throw new Error(`celeriac demo left ${left.join(", ")} in its temp directory`);
  lines.push("celeriac demo: all results correct, temp folder removed");
  const expectMissing = (args, pkg) => {
    const r = runStatus(bin, args, { cwd: dir, env });
    if (r.code === 0 || !r.stderr.includes(`npm install ${pkg}`))
      throw new Error(`celeriac ${args.join(" ")} should ask for ${pkg}; exited ${r.code}:\n${r.stdout}${r.stderr}`);
    lines.push(`celeriac ${args.join(" ")}: ${r.stderr.trim().split("\n")[0]}`);
  };
  expectMissing(["worker", "--broker", "amqp://127.0.0.1:1"], "@celeriac/amqp");
  writeFileSync(join(dir, "tasks.mjs"), "export default () => {};\n");
  expectMissing(["worker", "--tasks", "./tasks.mjs", "--metrics-port", "0"], "@celeriac/metrics");
  expectMissing(["codegen", "tasks.proto", "--out", "gen"], "@celeriac/schema");
  return lines;
}

/** Spawns a long-running command; resolves once `ready` appears in its output. */
function startProcess(cmd, args, { cwd, env, ready, timeoutMs = 60_000 }) {
  const child = spawn(cmd, args, { cwd, env: { ...process.env, ...env }, stdio: ["ignore", "pipe", "pipe"] });
  let output = "";
  child.stdout.on("data", (d) => (output += d));
  child.stderr.on("data", (d) => (output += d));
  const exited = new Promise((r) => child.once("exit", (code, signal) => r(code ?? signal)));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`${cmd} ${args.join(" ")} not ready after ${timeoutMs} ms:\n${output}`));
    }, timeoutMs);
    const poll = setInterval(() => {
      if (output.includes(ready)) {
        clearInterval(poll);
        clearTimeout(timer);
        resolve({ child, exited, output: () => output });
      } else if (child.exitCode !== null) {
        clearInterval(poll);
        clearTimeout(timer);
        reject(new Error(`${cmd} ${args.join(" ")} exited ${child.exitCode}:\n${output}`));
      }
    }, 50);
  });
}

/**
 * The README's Quick start, as a new user follows it: examples/quick-start's files in an empty
 * folder, the packages installed (from the tarballs) with the README's install line, compiled
 * with the project's own tsc, the worker started from the installed bin (as the README says, not
 * through npx), the producer run. Returns what the producer printed and the worker's log.
 */
export async function runQuickStart(packed, base) {
  const dir = emptyDir(base, "quick-start");
  const example = join(ROOT, "examples", "quick-start");
  for (const f of readdirSync(example))
    if (f !== "node_modules" && f !== "dist" && !f.endsWith(".db")) cpSync(join(example, f), join(dir, f), { recursive: true });
  const declared = JSON.parse(readFileSync(join(dir, "package.json"), "utf8"));
  const wanted = Object.keys(declared.dependencies).filter((d) => d.startsWith("@celeriac/"));
  const tarballs = [...new Set(wanted.flatMap((name) => closure(packed, name).map((p) => p.tarball)))];
  const typescript = JSON.parse(readFileSync(require.resolve("typescript/package.json"), "utf8")).version;
  installInto(dir, [...tarballs, `typescript@${typescript}`]);
  run("npx", ["--no-install", "tsc"], { cwd: dir });
  const env = { CELERIAC_BROKER_URL: "", CELERIAC_RESULT_BACKEND: "" };
  const worker = await startProcess(join(dir, "node_modules", ".bin", "celeriac"), ["worker", "--tasks", "./dist/worker-tasks.js", "--log-format", "text"], {
    cwd: dir,
    env,
    ready: "celeriac worker ready",
  });
  let producer;
  try {
    producer = run("node", ["dist/producer.js"], { cwd: dir, env, timeoutMs: 60_000 }).trim();
  } finally {
    worker.child.kill("SIGTERM");
  }
  const code = await worker.exited;
  return { producer, workerExit: code, workerLog: worker.output() };
}

async function main() {
  const base = mkdtempSync(join(tmpdir(), "celeriac-packaging-"));
  let failed = 0;
  const fail = (what, problems) => {
    failed++;
    console.log(`FAIL ${what}\n  ${problems.join("\n  ")}`);
  };
  try {
    const packed = await packAll(base);
    for (const pkg of packed) {
      const problems = [...tarballProblems(pkg), ...(await publintProblems(pkg)), ...attwProblems(pkg)];
      if (problems.length > 0) fail(`${pkg.name} tarball`, problems);
      else console.log(`ok   ${pkg.name} tarball (${pkg.files.length} files)`);
    }
    for (const pkg of packed.filter(isLibrary)) {
      const dir = emptyDir(base, pkg.name);
      try {
        installInto(
          dir,
          closure(packed, pkg.name).map((p) => p.tarball),
        );
        const out = consumeLibrary(dir, pkg.name);
        console.log(
          `ok   ${pkg.name} alone: ${Object.entries(out)
            .map(([k, v]) => `${k}: ${v}`)
            .join(", ")}`,
        );
      } catch (err) {
        fail(`${pkg.name} alone`, [String(err.message)]);
      }
    }
    try {
      for (const line of checkCli(packed, base)) console.log(`ok   ${line}`);
    } catch (err) {
      fail("the CLI installed alone", [String(err.message)]);
    }
    try {
      const q = await runQuickStart(packed, base);
      if (q.producer !== "5" || q.workerExit !== 0)
        throw new Error(`producer printed ${JSON.stringify(q.producer)}, worker exited ${q.workerExit}:\n${q.workerLog}`);
      console.log("ok   Quick start: the producer printed 5, the worker stopped warmly on SIGTERM");
    } catch (err) {
      fail("the Quick start", [String(err.message)]);
    }
  } finally {
    if (!process.argv.includes("--keep")) rmSync(base, { recursive: true, force: true });
    else console.log(`kept ${base}`);
  }
  console.log(failed === 0 ? "packaging check: all packages ok" : `packaging check: ${failed} failure(s)`);
  process.exitCode = failed === 0 ? 0 : 1;
}

if (import.meta.url === `file://${process.argv[1]}`) await main();
