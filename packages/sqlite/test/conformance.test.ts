import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createSqliteTransport } from "@celeriac/sqlite";
import { describeTransportConformance } from "@celeriac/conformance";
import { describeColdShutdown } from "../../../test-support/cold-shutdown.js";

const visibilityTimeoutMs = 600;

describeTransportConformance(
  "sqlite (file)",
  async () => {
    const dir = mkdtempSync(join(tmpdir(), "celeriac-sqlite-"));
    const transport = createSqliteTransport({ path: join(dir, "broker.db"), visibilityTimeoutMs });
    return { transport, cleanup: async () => rmSync(dir, { recursive: true, force: true }) };
  },
  { visibilityTimeoutMs },
);

describeTransportConformance("sqlite (:memory:)", async () => ({ transport: createSqliteTransport({ path: ":memory:", visibilityTimeoutMs }) }), {
  visibilityTimeoutMs,
});

describeColdShutdown("sqlite (file)", () =>
  createSqliteTransport({ path: join(mkdtempSync(join(tmpdir(), "celeriac-cold-")), "broker.db"), visibilityTimeoutMs: 5000 }),
);
