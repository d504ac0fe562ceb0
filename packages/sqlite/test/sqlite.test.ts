import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Database from "better-sqlite3";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { CeleriacError } from "@celeriac/core";
import type { Delivery, WireMessage } from "@celeriac/core/transport";
import {
  createSqliteResultBackend,
  createSqliteTransport,
  parseSqliteUrl,
  sqliteResultBackendFromUrl,
  sqliteTransportFromUrl,
  type SqliteTransport,
} from "@celeriac/sqlite";

const PY = "/usr/bin/python3";

function python(script: string): string {
  const r = spawnSync(PY, ["-c", script], { encoding: "utf8", timeout: 20_000 });
  if (r.status !== 0) throw new Error(`python failed (${r.status}): ${r.stderr}`);
  return r.stdout;
}

function msg(n: number, priority?: number): WireMessage {
  return {
    body: new TextEncoder().encode(JSON.stringify([[n], {}, {}])),
    contentType: "application/json",
    contentEncoding: "utf-8",
    headers: { n },
    properties: { correlationId: `m${n}`, ...(priority !== undefined ? { priority } : {}) },
  };
}

async function take(t: SqliteTransport, queue: string, n: number, prefetch = 10, timeoutMs = 5000): Promise<Delivery[]> {
  const c = t.consume([queue], { prefetch });
  const out: Delivery[] = [];
  const timer = setTimeout(() => void c.stop(), timeoutMs);
  for await (const d of c) {
    out.push(d);
    if (out.length === n) break;
  }
  clearTimeout(timer);
  await c.stop();
  return out;
}

let dir: string;
let file: string;
const open: { close(): Promise<void> }[] = [];
const track = <T extends { close(): Promise<void> }>(x: T): T => (open.push(x), x);

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "celeriac-sqlite-"));
  file = join(dir, "broker.db");
});
afterEach(async () => {
  for (const x of open.splice(0)) await x.close();
  rmSync(dir, { recursive: true, force: true });
});

describe("schema", () => {
  const master = (path: string) => {
    const db = new Database(path, { readonly: true });
    const rows = db.prepare("SELECT type, name, tbl_name, sql FROM sqlite_master WHERE name LIKE 'kombu%' OR name LIKE 'ix_kombu%' ORDER BY name").all();
    db.close();
    return rows;
  };

  it("creates kombu's tables exactly as SQLAlchemy does", async () => {
    const pyFile = join(dir, "py.db");
    python(`
from kombu import Connection
with Connection('sqla+sqlite:///${pyFile}') as c:
    c.SimpleQueue('celery').put({'x': 1})
`);
    await track(createSqliteTransport({ path: file })).connect();
    expect(master(file)).toEqual(master(pyFile));
  });

  it("opens a file kombu created, and kombu opens one we created", async () => {
    const pyFile = join(dir, "py.db");
    python(`
from kombu import Connection
with Connection('sqla+sqlite:///${pyFile}') as c:
    c.SimpleQueue('q').put({'from': 'python'})
`);
    const t = track(createSqliteTransport({ path: pyFile }));
    const [d] = await take(t, "q", 1);
    expect(JSON.parse(new TextDecoder().decode(d!.message.body))).toEqual({ from: "python" });
    await d!.ack();
    await t.publish("q", msg(5));
    const out = python(`
import json
from kombu import Connection
with Connection('sqla+sqlite:///${pyFile}') as c:
    m = c.SimpleQueue('q').get(timeout=5)
    print(json.dumps({'payload': m.payload, 'headers': m.headers, 'props': m.properties}))
    m.ack()
`);
    const got = JSON.parse(out) as { payload: unknown; headers: Record<string, unknown>; props: Record<string, unknown> };
    expect(got.payload).toEqual([[5], {}, {}]);
    expect(got.headers).toEqual({ n: 5 });
    expect(got.props["correlation_id"]).toBe("m5");
  });

  it("writes payloads byte for byte as Python's json.dumps would", async () => {
    const t = track(createSqliteTransport({ path: file }));
    const m = msg(1);
    m.headers = { task: "t", nested: { ünï: [1.5, null, true] }, big: 2 ** 53 };
    await t.publish("q", m);
    const out = python(`
import json, sqlite3
p = sqlite3.connect('${file}').execute('select payload from kombu_message').fetchone()[0]
print(json.dumps(p == json.dumps(json.loads(p))))
`);
    expect(out.trim()).toBe("true");
  });

  it("keeps delayed and claimed messages away from kombu's consumer", async () => {
    const t = track(createSqliteTransport({ path: file }));
    await t.publish("q", msg(1), { delayMs: 60_000 });
    await t.publish("q", msg(2, 9));
    const [claimed] = await take(t, "q", 1, 1);
    expect(claimed!.message.headers["n"]).toBe(2);
    const out = python(`
from kombu import Connection
from queue import Empty
with Connection('sqla+sqlite:///${file}') as c:
    try:
        c.SimpleQueue('q').get(timeout=0.5); print('got')
    except Empty:
        print('empty')
`);
    expect(out.trim()).toBe("empty");
    await claimed!.ack();
  });
});

describe("transport", () => {
  it("opens a file another process keeps reading in rollback-journal mode (a Python worker first)", async () => {
    // kombu's sqla transport leaves the file in rollback-journal mode and polls it in
    // transactions; switching to WAL then reports SQLITE_BUSY at once. Opening must still work.
    await createSqliteTransport({ path: file }).close(); // the tables, as kombu would create them
    const other = new Database(file);
    other.pragma("journal_mode = DELETE");
    other.exec("BEGIN");
    other.prepare("SELECT count(*) FROM kombu_message").get(); // holds a shared lock
    const t = track(createSqliteTransport({ path: file, busyTimeoutMs: 300 }));
    other.exec("COMMIT");
    await t.publish("q", msg(1));
    const [d] = await take(t, "q", 1);
    expect(d?.message.headers).toEqual({ n: 1 });
    await d?.ack();
    expect(String(other.pragma("journal_mode", { simple: true }))).toBe("delete");
    other.close();
  });

  it("rejects unknown and invalid options", () => {
    expect(() => createSqliteTransport({ path: file, visibilityTimeout: 5 } as never)).toThrow(/unknown option "visibilityTimeout"/);
    expect(() => createSqliteTransport({ path: file, visibilityTimeoutMs: -1 })).toThrow(CeleriacError);
    expect(() => createSqliteTransport({ path: file, minPollIntervalMs: 50, maxPollIntervalMs: 10 })).toThrow(/maxPollIntervalMs/);
    expect(() => createSqliteTransport({} as never)).toThrow(/path/);
  });

  it("puts unsettled messages back when the transport closes", async () => {
    const a = createSqliteTransport({ path: file });
    await a.publish("q", msg(1));
    const [d] = await take(a, "q", 1, 1);
    expect(d!.redelivered).toBe(false);
    await a.close();
    const b = track(createSqliteTransport({ path: file }));
    const [again] = await take(b, "q", 1, 1, 1000);
    expect(again!.message.headers["n"]).toBe(1);
    expect(again!.redelivered).toBe(true);
    expect(again!.deliveryCount).toBe(2);
    await again!.ack();
    await expect(d!.ack()).rejects.toMatchObject({ code: "closed" });
  });

  it("lets a claim that expired and moved to another consumer be settled harmlessly", async () => {
    const a = track(createSqliteTransport({ path: file, visibilityTimeoutMs: 200 }));
    const b = track(createSqliteTransport({ path: file, visibilityTimeoutMs: 60_000 }));
    await a.publish("q", msg(1));
    const [late] = await take(a, "q", 1, 1);
    const [again] = await take(b, "q", 1, 1, 3000);
    expect(again!.deliveryCount).toBe(2);
    // The first holder lost its claim: extend and nack must not touch the new holder's claim.
    await late!.extend(60_000);
    await late!.nack();
    expect(await take(a, "q", 1, 1, 400)).toHaveLength(0);
    // The new holder settles normally.
    await again!.ack();
    expect(await a.purge("q")).toBe(0);
  });

  it("reports a lock held past busyTimeoutMs as a connection error, and consumers keep polling", async () => {
    const t = track(createSqliteTransport({ path: file, busyTimeoutMs: 50 }));
    await t.publish("q", msg(0)); // creates the queue row before the lock is taken
    const holder = new Database(file);
    holder.exec("BEGIN IMMEDIATE");
    await expect(t.publish("q", msg(1))).rejects.toMatchObject({ code: "connection" });
    const c = t.consume(["q"], { prefetch: 1 });
    const it = c[Symbol.asyncIterator]();
    const next = it.next();
    await new Promise((r) => setTimeout(r, 200)); // the consumer's claims fail with SQLITE_BUSY meanwhile
    holder.exec("COMMIT");
    holder.close();
    const r = await next;
    expect(r.done).toBe(false);
    expect(r.value!.message.headers["n"]).toBe(0);
    await r.value!.ack();
    await c.stop();
  });

  it("does not count messages returned unreceived from a prefetch buffer as deliveries", async () => {
    const t = track(createSqliteTransport({ path: file }));
    for (let n = 0; n < 3; n++) await t.publish("q", msg(n));
    const [first] = await take(t, "q", 1, 3); // stop() returns the other two
    await first!.ack();
    const rest = await take(t, "q", 2, 3);
    expect(rest.map((d) => d.deliveryCount)).toEqual([1, 1]);
    for (const d of rest) await d.ack();
  });

  it("dead-letters a payload that is not a kombu envelope instead of looping on it", async () => {
    const t = track(createSqliteTransport({ path: file }));
    await t.publish("q", msg(0));
    const db = new Database(file);
    db.prepare(
      "INSERT INTO kombu_message (visible, payload, version, queue_id) VALUES (1, 'not json', 1, (SELECT id FROM kombu_queue WHERE name = 'q'))",
    ).run();
    db.close();
    await t.publish("q", msg(1));
    const got = await take(t, "q", 2, 5);
    expect(got.map((d) => d.message.headers["n"])).toEqual([0, 1]);
    const dead = await t.readDeadLetters("q");
    expect(dead).toHaveLength(1);
    expect(dead[0]).toMatchObject({ message: null, raw: "not json", deliveryCount: 1 });
    expect(dead[0]!.reason).toMatch(/^decode_failed/);
  });

  it("publishes and drains at a useful rate", async () => {
    const t = track(createSqliteTransport({ path: file }));
    const n = 5000;
    const m = msg(1);
    let start = performance.now();
    for (let i = 0; i < n; i++) await t.publish("bench", m);
    const publishRate = n / ((performance.now() - start) / 1000);
    start = performance.now();
    const c = t.consume(["bench"], { prefetch: 100 });
    let got = 0;
    for await (const d of c) {
      await d.ack();
      if (++got === n) break;
    }
    const drainRate = n / ((performance.now() - start) / 1000);
    console.log(`sqlite transport: publish ${Math.round(publishRate)} msg/s, consume+ack ${Math.round(drainRate)} msg/s (${n} messages, WAL file)`);
    expect(got).toBe(n);
    expect(await t.purge("bench")).toBe(0);
  });
});

describe("URLs", () => {
  it("parses SQLAlchemy-style paths and validated parameters", () => {
    expect(parseSqliteUrl("sqlite:///relative/path.db")).toEqual({ path: "relative/path.db" });
    expect(parseSqliteUrl("sqlite:////abs/path.db")).toEqual({ path: "/abs/path.db" });
    expect(parseSqliteUrl("sqla+sqlite:////abs/path.db?visibility_timeout=90")).toEqual({ path: "/abs/path.db", visibilityTimeoutMs: 90_000 });
    expect(parseSqliteUrl("sqlite://")).toEqual({ path: ":memory:" });
    expect(parseSqliteUrl("sqlite:///:memory:?busy_timeout_ms=100")).toEqual({ path: ":memory:", busyTimeoutMs: 100 });
    expect(() => parseSqliteUrl("sqlite:///x.db?visibility_timeout=soon")).toThrow(/visibility_timeout must be a positive number of seconds/);
    expect(() => parseSqliteUrl("sqlite:///x.db?visibilty_timeout=5")).toThrow(/unknown parameter "visibilty_timeout"/);
    expect(() => parseSqliteUrl("sqlite://host/x.db")).toThrow(/host part/);
    expect(() => parseSqliteUrl("redis://localhost")).toThrow(/not a SQLite URL/);
  });

  it("creates a working transport and result backend", async () => {
    const t = track(sqliteTransportFromUrl(`sqla+sqlite:///${file}?visibility_timeout=1`));
    await t.publish("q", msg(1));
    const [d] = await take(t, "q", 1);
    await d!.ack();
    const b = track(sqliteResultBackendFromUrl(`sqlite:///${file}?result_expires=60`));
    await b.store({ status: "SUCCESS", result: 1, traceback: null, children: [], date_done: null, task_id: "t" });
    expect((await b.get("t"))?.result).toBe(1);
  });
});

describe("result backend", () => {
  const meta = (task_id: string, status: "SUCCESS" | "FAILURE" | "STARTED", result: unknown = null) => ({
    status,
    result,
    traceback: null,
    children: [],
    date_done: status === "STARTED" ? null : new Date().toISOString(),
    task_id,
  });

  it("stores, reads, never overwrites SUCCESS, and forgets", async () => {
    const b = track(createSqliteResultBackend({ path: file }));
    expect(await b.get("a")).toBeNull();
    await b.store(meta("a", "STARTED"));
    expect((await b.get("a"))?.status).toBe("STARTED");
    await b.store(meta("a", "SUCCESS", { x: [1, 2] }));
    await b.store(meta("a", "FAILURE", "late"));
    expect(await b.get("a")).toMatchObject({ status: "SUCCESS", result: { x: [1, 2] } });
    await b.forget("a");
    expect(await b.get("a")).toBeNull();
  });

  it("waits for a result stored by another connection", async () => {
    const waiter = track(createSqliteResultBackend({ path: file, maxPollIntervalMs: 20 }));
    const writer = track(createSqliteResultBackend({ path: file }));
    const p = waiter.waitFor("w", { timeoutMs: 3000 });
    setTimeout(() => void writer.store(meta("w", "SUCCESS", 42)), 100);
    expect((await p).result).toBe(42);
    await expect(waiter.waitFor("never", { timeoutMs: 100 })).rejects.toMatchObject({ code: "timeout" });
  });

  it("hides expired results and cleans them up", async () => {
    const b = track(createSqliteResultBackend({ path: file, expiresMs: 50 }));
    await b.store(meta("e", "SUCCESS", 1));
    await b.store(meta("keep", "SUCCESS", 2), { ttlMs: 60_000 });
    expect(await b.get("e")).not.toBeNull();
    await new Promise((r) => setTimeout(r, 80));
    expect(await b.get("e")).toBeNull();
    // An expired SUCCESS no longer blocks a new result under the same id.
    await b.store(meta("e", "FAILURE", "again"));
    expect((await b.get("e"))?.status).toBe("FAILURE");
    await new Promise((r) => setTimeout(r, 80));
    expect(await b.cleanup()).toBe(1);
    expect((await b.get("keep"))?.result).toBe(2);
  });

  it("rejects unknown options", () => {
    expect(() => createSqliteResultBackend({ path: file, expires: 1 } as never)).toThrow(/unknown option "expires"/);
    expect(() => createSqliteResultBackend({ path: file, expiresMs: 0 })).toThrow(CeleriacError);
  });
});
