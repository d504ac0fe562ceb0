import { fileURLToPath } from "node:url";
import { defineConfig } from "vite";

// The page is built once at package build time into dist/ui, so an installed dashboard needs no build step.
export default defineConfig({
  root: fileURLToPath(new URL(".", import.meta.url)),
  base: "./",
  logLevel: "warn",
  oxc: { jsx: { runtime: "automatic", importSource: "preact" } },
  build: {
    outDir: fileURLToPath(new URL("../dist/ui", import.meta.url)),
    emptyOutDir: true,
    chunkSizeWarningLimit: 200,
  },
});
