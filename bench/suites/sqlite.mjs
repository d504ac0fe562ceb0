// SQLite (kombu's sqlalchemy tables in one file): drains (Celeriac worker, raw better-sqlite3, Python) and memory.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Database from "better-sqlite3";
import { dist, publishNoops } from "../lib/common.mjs";
import { celeriacContender, measureMemory, startCeleriacWorker, startConsumer, startPythonWorker, timeDrain } from "../lib/procs.mjs";

const { createSqliteTransport } = await dist("sqlite");

export async function createSqliteSuite(cfg, log) {
  const dir = mkdtempSync(join(tmpdir(), "bench-sqlite-"));
  let files = 0;

  /** A fresh file holding `n` no-op tasks, written by the Celeriac transport in bursts of 1,000. */
  async function fill(n, path = join(dir, `q${files++}.db`)) {
    const transport = createSqliteTransport({ path });
    await transport.connect();
    await publishNoops(transport, "celery", n);
    await transport.close();
    return path;
  }

  // kombu hides a message when it takes it and never deletes it; Celeriac and the raw loop delete on ack.
  const counter = (path, python) => {
    const db = new Database(path, { readonly: true, fileMustExist: true });
    db.pragma("busy_timeout = 5000");
    const left = db.prepare(python ? "SELECT count(*) AS n FROM kombu_message WHERE visible = 1" : "SELECT count(*) AS n FROM kombu_message");
    const hidden = db.prepare("SELECT count(*) AS n FROM kombu_message WHERE visible = 0");
    return { state: () => ({ left: left.get().n, taken: hidden.get().n > 0 }), close: () => db.close() };
  };

  const c = cfg.concurrency;
  const contenders = [
    ...c.map((k) => celeriacContender(k, (p) => startCeleriacWorker({ broker: `sqlite:///${p}`, concurrency: k }))),
    {
      id: "raw-p40",
      kind: "raw",
      prefetch: 40,
      label: "raw better-sqlite3 claim 40 + delete",
      start: (p) => startConsumer("sqlite-raw", { broker: p, prefetch: 40 }),
    },
    {
      id: "python",
      kind: "python",
      python: true,
      label: "Python Celery 5.2.6 (`sqla+sqlite`, prefork `-c 2`)",
      start: (p) => startPythonWorker({ broker: `sqla+sqlite:///${p}` }),
    },
  ];

  return {
    broker: "sqlite",
    title: "SQLite",
    producers: ["celeriac"],
    baseline: { date: "2026-12-01", what: "`node bench/sqlite-drain.mjs --tasks 20000`, `-c 10`", rate: 4335 },
    contenders,
    async drain(contender) {
      // kombu's sqla transport takes one message per query (about 300/s here): Python gets at most 5,000.
      const n = contender.python ? Math.min(cfg.pythonTasks, 5000) : cfg.tasks;
      const path = await fill(n);
      const count = counter(path, contender.python);
      try {
        return await timeDrain(`sqlite ${contender.id}`, n, contender.start(path), count.state);
      } finally {
        count.close();
        rmSync(path, { force: true });
      }
    },
    async memory() {
      const path = await fill(0);
      const count = counter(path, false);
      let probed = false;
      try {
        const r = await measureMemory("sqlite memory celeriac", startCeleriacWorker({ broker: `sqlite:///${path}`, concurrency: 10 }), {
          ready: async () => {
            if (!probed) await fill(1, path);
            probed = true;
            return count.state().left === 0;
          },
          fill: () => fill(cfg.memoryTasks, path),
          isEmpty: () => count.state().left === 0,
        });
        log(`sqlite memory Celeriac: idle ${r.idleMb.toFixed(0)} MB, after ${cfg.memoryTasks} tasks ${r.afterMb.toFixed(0)} MB`);
        return [{ label: "Celeriac worker `-c 10`", kind: "celeriac", n: cfg.memoryTasks, ...r }];
      } finally {
        count.close();
      }
    },
    async close() {
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
