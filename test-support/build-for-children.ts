import { execFileSync } from "node:child_process";
import { copyFileSync, mkdirSync, rmSync } from "node:fs";
import { join } from "node:path";
import { pathToFileURL } from "node:url";

export interface ChildBuild {
  /** The private directory; it holds node_modules/@celeriac/<pkg>/dist. */
  dir: string;
  /** Each package's entry module, as a file URL to import. */
  modules: Record<string, string>;
  cleanup(): void;
}

/**
 * Compiles the given workspace packages (JS only) for tests whose child processes run plain Node.
 * The output goes to a private directory laid out as node_modules/@celeriac/*, under the repo's
 * node_modules so the packages find each other and their dependencies resolve as usual. Private,
 * because other test files may be importing the shared dist/ while this one writes.
 */
export function buildForChildren(root: string, packages: string[], label: string): ChildBuild {
  const dir = join(root, "node_modules", ".cache", `celeriac-${label}-${process.pid}-${Date.now()}`);
  const modules: Record<string, string> = {};
  for (const pkg of packages) {
    const out = join(dir, "node_modules", "@celeriac", pkg);
    mkdirSync(out, { recursive: true });
    copyFileSync(join(root, "packages", pkg, "package.json"), join(out, "package.json"));
    compileJsOnly(root, `packages/${pkg}/tsconfig.build.json`, join(out, "dist"));
    modules[pkg] = pathToFileURL(join(out, "dist", "index.js")).href;
  }
  return { dir, modules, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

/**
 * Compiles one TypeScript project to JS in `outDir`. --noCheck: JS only; type checking is the
 * typecheck task's job, and it would need a built core.
 */
export function compileJsOnly(root: string, tsconfig: string, outDir: string): void {
  execFileSync("npx", ["tsc", "-p", tsconfig, "--outDir", outDir, "--noCheck", "--declaration", "false", "--declarationMap", "false", "--sourceMap", "false"], {
    cwd: root,
    stdio: "pipe",
  });
}
