import { defineConfig } from "vitest/config";
import { sourceEntryPoints, workspacePackages } from "./scripts/workspaces.mjs";

const escape = (s: string) => s.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&");

// Tests import workspace packages by name; point each exported entry point at its source so tests
// need no build. The list comes from the workspace folders (scripts/workspaces.mjs), exact match
// only, so `@celeriac/core` does not swallow `@celeriac/core/transport`.
const entries = sourceEntryPoints();
const folders = workspacePackages().map((p) => p.dir);

export default defineConfig({
  resolve: {
    alias: entries.map((e) => ({ find: new RegExp(`^${escape(e.specifier)}$`), replacement: e.source })),
  },
  test: {
    include: [...folders.map((dir) => `${dir}/test/**/*.test.ts`), "test/**/*.test.ts"],
    testTimeout: 30_000,
    hookTimeout: 60_000,
    pool: "forks",
  },
});
