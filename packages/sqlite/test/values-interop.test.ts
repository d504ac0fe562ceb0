import { mkdirSync, mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createFileResultBackend } from "@celeriac/core";
import { createSqliteTransport } from "@celeriac/sqlite";
import { describeValuesInterop } from "../../../test-support/values-interop.js";

// docs/interop.md's pairing for the SQLite file: kombu's sqla+sqlite broker, Celery's file://
// results shared by both languages.
const dir = mkdtempSync(join(tmpdir(), "celeriac-sqlite-values-"));
const db = join(dir, "broker.db");
const results = join(dir, "results");
mkdirSync(results); // Celery's file backend wants the directory to exist

describeValuesInterop({
  name: "sqla+sqlite + file://",
  python: () => ({ brokerUrl: `sqla+sqlite:///${db}`, resultUrl: `file://${results}` }),
  cli: () => ({ broker: `sqlite:///${db}`, resultBackend: `file://${results}` }),
  transport: () => createSqliteTransport({ path: db }),
  resultBackend: () => createFileResultBackend({ directory: results, pollIntervalMs: 50 }),
});
