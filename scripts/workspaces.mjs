// The one list of workspace packages: the folders the root package.json's `workspaces` name.
// vitest.config.ts builds its aliases from it, and tsconfig.workspace.json maps `@celeriac/<dir>`
// to the same folders, so adding a package means adding its folder and nothing else.
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { basename, join } from "node:path";
import { fileURLToPath } from "node:url";

export const ROOT = fileURLToPath(new URL("..", import.meta.url));

/**
 * Every workspace package: its folder (`dir` and `rel`, relative to the root; `path`, absolute),
 * its name, its manifest and its `exports` map. The packaging scripts and vitest.config.ts share it.
 */
export function workspacePackages() {
  const root = JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8"));
  const packages = [];
  for (const pattern of root.workspaces) {
    // npm workspaces here are "<folder>/*"; anything else would need a glob library.
    if (!/^[\w.-]+\/\*$/.test(pattern)) throw new Error(`workspaces: unsupported pattern ${JSON.stringify(pattern)} (expected "<folder>/*")`);
    const parent = pattern.slice(0, -2);
    for (const entry of readdirSync(join(ROOT, parent), { withFileTypes: true })) {
      const manifest = join(ROOT, parent, entry.name, "package.json");
      if (!entry.isDirectory() || !existsSync(manifest)) continue;
      const pkg = JSON.parse(readFileSync(manifest, "utf8"));
      const dir = `${parent}/${entry.name}`;
      // tsconfig.workspace.json maps @celeriac/* by folder name, so the two must agree.
      if (pkg.name !== `@celeriac/${basename(dir)}`) {
        throw new Error(`${dir}/package.json: the package in ${dir} must be named @celeriac/${basename(dir)}, not ${JSON.stringify(pkg.name)}`);
      }
      packages.push({ dir, rel: dir, path: join(ROOT, dir), name: pkg.name, manifest: pkg, exports: pkg.exports ?? {}, main: pkg.main });
    }
  }
  return packages.sort((a, b) => a.name.localeCompare(b.name));
}

/**
 * The source file behind each entry point a package exports, for tests that run without a build:
 * `"./transport": { "import": "./dist/transport.js" }` is `@celeriac/x/transport` ->
 * `<dir>/src/transport.ts`.
 */
export function sourceEntryPoints() {
  const out = [];
  for (const { dir, name, exports, main } of workspacePackages()) {
    // A private, unbuilt package (the conformance suite) names its source as its main.
    if (typeof main === "string" && /^\.\/src\/.+\.ts$/.test(main) && Object.keys(exports).length === 0) {
      out.push({ specifier: name, source: join(ROOT, dir, main) });
      continue;
    }
    for (const [subpath, target] of Object.entries(exports)) {
      const file = typeof target === "string" ? target : (target.import ?? target.default);
      const m = typeof file === "string" ? /^\.\/dist\/(.+)\.js$/.exec(file) : null;
      if (!m) continue;
      out.push({ specifier: subpath === "." ? name : `${name}/${subpath.slice(2)}`, source: join(ROOT, dir, "src", `${m[1]}.ts`) });
    }
  }
  return out;
}
