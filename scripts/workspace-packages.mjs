// The workspace packages, as npm itself sees them (root package.json "workspaces"), so every
// packaging rule and check applies to a package the day it is added, with no list to update.
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { join, relative } from "node:path";
import { fileURLToPath } from "node:url";

export const ROOT = fileURLToPath(new URL("..", import.meta.url));

/** @returns {{ name: string, dir: string, rel: string, manifest: Record<string, any> }[]} */
export function workspacePackages() {
  const out = execFileSync("npm", ["query", ".workspace", "--json"], { cwd: ROOT, encoding: "utf8" });
  return JSON.parse(out)
    .map((/** @type {{ name: string, path: string }} */ w) => {
      const manifest = JSON.parse(readFileSync(join(w.path, "package.json"), "utf8"));
      return { name: w.name, dir: w.path, rel: relative(ROOT, w.path), manifest };
    })
    .sort((a, b) => a.rel.localeCompare(b.rel));
}
