#!/usr/bin/env node
// Publishing facts shared by every workspace package, written once here and applied to each
// package.json (and its LICENSE copy) by `npm run packages:sync`; `--check` only reports what is
// out of line, and the test suite runs that check, so a new package (beat, dashboard, ...) is
// held to the same rules without anyone remembering them. See docs/publishing.md for the why.
import { copyFileSync, existsSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { ROOT, workspacePackages } from "./workspaces.mjs";

/** Node 20.19 is the first Node 20 that loads our ESM through require() unflagged. */
export const NODE_ENGINES = ">=20.19";
/** Files every package ships besides what it lists itself. src: the sources the source maps name. */
const STANDARD_FILES = ["dist", "src", "LICENSE", "README.md", "CHANGELOG.md"];
/** A .d.ts that mentions these needs Node's types installed for the user's tsc. */
const NODE_TYPES = /\bNodeJS\.|\bBuffer\b|from "node:|reference types="node"/;

function rootManifest() {
  return JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8"));
}

function dtsFiles(dir) {
  if (!existsSync(dir)) return [];
  return readdirSync(dir, { recursive: true, encoding: "utf8" })
    .filter((f) => f.endsWith(".d.ts"))
    .map((f) => join(dir, f));
}

/** Whether the built declarations use Node's types (null when the package is not built). */
export function declarationsUseNodeTypes(dir) {
  if (!existsSync(join(dir, "dist"))) return null;
  const files = dtsFiles(join(dir, "dist"));
  return files.some((f) => NODE_TYPES.test(readFileSync(f, "utf8")));
}

/** A third-party range users can dedupe: `1.2.3` becomes `^1.2.3`; other ranges stay. */
function dedupableRange(range) {
  return /^\d+\.\d+\.\d+$/.test(range) ? `^${range}` : range;
}

/** `{ types, import }` conditions become `{ types, default }`: require() and import() get the one ESM build. */
function esmForAllConditions(target) {
  if (typeof target !== "object" || target === null || Array.isArray(target)) return target;
  const out = {};
  for (const [k, v] of Object.entries(target)) {
    if (k === "import" && !("default" in target) && !("require" in target)) out["default"] = v;
    else out[k] = esmForAllConditions(v);
  }
  return out;
}

/**
 * The manifest a package should have. `version`: the lockstep version (Changesets' fixed group
 * keeps them equal; this is what internal dependencies pin to exactly).
 */
export function expectedManifest(pkg, { version, repositoryUrl, internal }) {
  const m = structuredClone(pkg.manifest);
  if (m.private) return m;
  m.license = "MIT";
  m.repository = { type: "git", url: repositoryUrl, directory: pkg.rel };
  m.publishConfig = { access: "public" };
  m.engines = { ...m.engines, node: NODE_ENGINES };
  m.files = [...new Set([...STANDARD_FILES, ...(m.files ?? [])])];
  if (m.exports) {
    m.exports = Object.fromEntries(Object.entries(m.exports).map(([k, v]) => [k, esmForAllConditions(v)]));
    m.exports["./package.json"] = "./package.json";
  }
  // A pack builds first (with its workspace dependencies), so no tarball ships without dist/.
  m.scripts = { ...m.scripts, prepack: `turbo run build --filter=${pkg.name} --output-logs=errors-only` };
  for (const field of ["dependencies", "optionalDependencies", "peerDependencies", "devDependencies"]) {
    if (!m[field]) continue;
    for (const [dep, range] of Object.entries(m[field])) {
      if (internal.has(dep)) m[field][dep] = version;
      else if (field !== "devDependencies") m[field][dep] = dedupableRange(range);
    }
  }
  // Celeriac runs on Node: public types use Node's (Buffer, NodeJS.Signals), or expose clients whose
  // types do (ioredis, the AWS SDK). So every package with types brings @types/node along (any
  // version >= 20 dedupes with the user's own).
  if (m.types) m.dependencies = { ...m.dependencies, "@types/node": m.dependencies?.["@types/node"] ?? ">=20" };
  // npm's own order, so `npm install` does not reshuffle what this wrote.
  for (const field of ["dependencies", "optionalDependencies", "peerDependencies", "devDependencies"]) {
    if (m[field]) m[field] = Object.fromEntries(Object.entries(m[field]).sort(([a], [b]) => a.localeCompare(b, "en")));
  }
  return m;
}

/** Problems a file-by-file comparison cannot express. */
function otherProblems(pkg, version) {
  if (pkg.manifest.private) return [];
  const problems = [];
  if (pkg.manifest.version !== version) problems.push(`version ${pkg.manifest.version}, the others are at ${version} (lockstep)`);
  if (!existsSync(join(pkg.path, "README.md"))) problems.push("no README.md");
  // Every types entry (the "types" field and each exports "types" condition) is where a user's tsc
  // starts; TypeScript 6 loads no @types/* by default, so without the reference it reports TS2503.
  const typesEntries = new Set(pkg.manifest.types ? [pkg.manifest.types] : []);
  const collect = (t, key) =>
    typeof t === "string" ? key === "types" && typesEntries.add(t) : t && typeof t === "object" && Object.entries(t).forEach(([k, v]) => collect(v, k));
  collect(pkg.manifest.exports, "");
  for (const entry of typesEntries) {
    const file = join(pkg.path, entry);
    if (existsSync(file) && !/reference types="node"/.test(readFileSync(file, "utf8"))) {
      problems.push(`${entry} has no /// <reference types="node" />: start its source with \`/// <reference types="node" preserve="true" />\``);
    }
  }
  const license = join(pkg.path, "LICENSE");
  if (!existsSync(license) || readFileSync(license, "utf8") !== readFileSync(join(ROOT, "LICENSE"), "utf8"))
    problems.push("LICENSE missing or not the root LICENSE");
  return problems;
}

/** Runs the rules over every workspace package; with `write`, fixes what it can. */
export function syncPackages({ write }) {
  const root = rootManifest();
  const packages = workspacePackages();
  const published = packages.filter((p) => !p.manifest.private);
  const internal = new Set(packages.map((p) => p.name));
  const version = published[0]?.manifest.version;
  const report = [];
  for (const pkg of published) {
    const expected = expectedManifest(pkg, { version, repositoryUrl: root.repository.url, internal });
    const problems = [];
    const before = JSON.stringify(pkg.manifest, null, 2);
    const after = JSON.stringify(expected, null, 2);
    if (before !== after) {
      for (const key of new Set([...Object.keys(pkg.manifest), ...Object.keys(expected)])) {
        if (JSON.stringify(pkg.manifest[key]) !== JSON.stringify(expected[key])) problems.push(`package.json "${key}" differs from the shared rules`);
      }
      if (write) writeFileSync(join(pkg.path, "package.json"), `${after}\n`);
    }
    if (write) copyFileSync(join(ROOT, "LICENSE"), join(pkg.path, "LICENSE"));
    problems.push(...otherProblems(write ? { ...pkg, manifest: expected } : pkg, version));
    if (problems.length > 0) report.push({ name: pkg.name, problems });
  }
  return report;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const write = !process.argv.includes("--check");
  const report = syncPackages({ write });
  for (const { name, problems } of report) for (const p of problems) console.log(`${name}: ${p}`);
  if (!write && report.length > 0) {
    console.log("\nRun `npm run packages:sync` (after `npm run build`) to apply the shared packaging rules.");
    process.exitCode = 1;
  } else if (write) {
    const left = syncPackages({ write: false });
    for (const { name, problems } of left) for (const p of problems) console.log(`still wrong, fix by hand: ${name}: ${p}`);
    if (left.length > 0) process.exitCode = 1;
  }
}
