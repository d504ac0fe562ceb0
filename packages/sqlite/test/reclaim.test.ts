import { existsSync, mkdtempSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Database from "better-sqlite3";
import { afterAll, describe, expect, it } from "vitest";
import type { WireMessage } from "@celeriac/core/transport";
import { createSqliteTransport } from "@celeriac/sqlite";

const dir = mkdtempSync(join(tmpdir(), "celeriac-reclaim-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const size = (f: string) => [f, `${f}-wal`].reduce((n, p) => n + (existsSync(p) ? statSync(p).size : 0), 0);

function msg(n: number): WireMessage {
  return {
    body: Buffer.from(JSON.stringify([[n, "x".repeat(2000)], {}, {}])),
    contentType: "application/json",
    contentEncoding: "utf-8",
    headers: { id: `t${n}`, task: "t" },
    properties: {},
  };
}

describe("SQLite space after a drained burst", () => {
  it("a new file uses incremental auto_vacuum and shrinks back once its queue is drained", async () => {
    const file = join(dir, "burst.db");
    const t = createSqliteTransport({ path: file });
    await t.connect();
    const n = 3000;
    for (let i = 0; i < n; i++) await t.publish("burst", msg(i));
    const peak = size(file);
    expect(peak).toBeGreaterThan(n * 2000);

    const c = t.consume(["burst"], { prefetch: 100 });
    let acked = 0;
    for await (const d of c) {
      await d.ack();
      if (++acked === n) break;
    }
    // The pump's next empty claim (within its poll interval) gives the space back.
    const deadline = Date.now() + 10_000;
    while (size(file) > peak / 4 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    await c.stop();
    await t.close();
    expect(size(file), `peak ${peak} bytes`).toBeLessThan(peak / 4);

    const db = new Database(file, { readonly: true });
    expect(db.pragma("auto_vacuum", { simple: true })).toBe(2);
    expect(db.prepare("SELECT count(*) AS n FROM kombu_message").get()).toEqual({ n: 0 });
    db.close();
  }, 60_000);
});
