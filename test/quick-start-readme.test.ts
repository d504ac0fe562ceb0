// examples/quick-start is the README's Quick start: every file of the example appears verbatim as
// a code block in that section, so what the packaging check runs is what the README shows.
import { readdirSync, readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";

const root = new URL("../", import.meta.url);
const readme = readFileSync(new URL("README.md", root), "utf8");
const section = readme.slice(readme.indexOf("## Quick start"), readme.indexOf("\n## ", readme.indexOf("## Quick start") + 1));
const blocks = [...section.matchAll(/```\w*\n([\s\S]*?)```/g)].map((m) => m[1]!.trim());
const files = readdirSync(new URL("examples/quick-start/", root)).filter((f) => /\.(ts|json)$/.test(f));

describe("README Quick start", () => {
  it("has the example's files: package.json, tsconfig.json, tasks.ts, producer.ts, worker-tasks.ts", () => {
    expect(files.sort()).toEqual(["package.json", "producer.ts", "tasks.ts", "tsconfig.json", "worker-tasks.ts"]);
  });

  it.each(files)("shows examples/quick-start/%s verbatim", (file) => {
    expect(blocks).toContain(readFileSync(new URL(`examples/quick-start/${file}`, root), "utf8").trim());
  });

  it("says how to install, compile and run the worker", () => {
    expect(section).toContain("npm install @celeriac/core @celeriac/worker @celeriac/sqlite @celeriac/cli");
    expect(section).toContain("npx tsc");
    expect(section).toContain("celeriac worker --tasks ./dist/worker-tasks.js");
    expect(section).toContain("exec node_modules/.bin/celeriac worker");
  });
});
