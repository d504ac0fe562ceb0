import { fileURLToPath } from "node:url";
import { defineConfig } from "vitest/config";

const src = (p: string) => fileURLToPath(new URL(p, import.meta.url));

// Tests import workspace packages by name; point the names at the sources so tests need no build.
export default defineConfig({
  resolve: {
    alias: {
      // Before "@celeriac/core": an alias also matches the names it prefixes.
      "@celeriac/core/transport": src("./packages/core/src/transport-api.ts"),
      "@celeriac/core": src("./packages/core/src/index.ts"),
      "@celeriac/worker": src("./packages/worker/src/index.ts"),
      "@celeriac/sqlite": src("./packages/sqlite/src/index.ts"),
      "@celeriac/amqp": src("./packages/amqp/src/index.ts"),
      "@celeriac/redis": src("./packages/redis/src/index.ts"),
      "@celeriac/sqs": src("./packages/sqs/src/index.ts"),
      "@celeriac/schema": src("./packages/schema/src/index.ts"),
      "@celeriac/metrics": src("./packages/metrics/src/index.ts"),
      "@celeriac/conformance": src("./packages/conformance/src/index.ts"),
    },
  },
  test: {
    include: ["packages/*/test/**/*.test.ts", "apps/*/test/**/*.test.ts"],
    testTimeout: 30_000,
    hookTimeout: 60_000,
    pool: "forks",
  },
});
