import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { WireMessage } from "@celeriac/core/transport";
import { createSqliteTransport, type SqliteTransport } from "@celeriac/sqlite";
import { describeTransportConformance } from "../../../test-support/transport-conformance.js";

const visibilityTimeoutMs = 600;

const deadLetters = async (t: unknown, queue: string) =>
  (t as SqliteTransport).deadLetters(queue).flatMap((d) => (d.message ? [{ message: d.message as WireMessage, reason: d.reason }] : []));

describeTransportConformance(
  "sqlite (file)",
  async () => {
    const dir = mkdtempSync(join(tmpdir(), "celeriac-sqlite-"));
    const transport = createSqliteTransport({ path: join(dir, "broker.db"), visibilityTimeoutMs });
    return { transport, cleanup: async () => rmSync(dir, { recursive: true, force: true }) };
  },
  { visibilityTimeoutMs, deadLetters },
);

describeTransportConformance(
  "sqlite (:memory:)",
  async () => ({ transport: createSqliteTransport({ path: ":memory:", visibilityTimeoutMs }) }),
  { visibilityTimeoutMs, deadLetters },
);
