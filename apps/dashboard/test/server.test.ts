import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CeleriacError, createClient, resultBackendFromUrl, transportFromUrl } from "@celeriac/core";
import { createDashboard, serveDashboard, type Dashboard } from "@celeriac/dashboard";
import { startSqsEmulator } from "../../../test-support/sqs-emulator.mjs";

// The embedded memory broker: no exchanges, so no events or remote control, which is what a
// SQS or SQLite deployment sees too.
let d: Dashboard;
beforeAll(async () => {
  d = await createDashboard({ brokerUrl: "memory://", log: () => undefined });
});
afterAll(() => d?.close());

const TOKEN = "a-long-enough-test-token";

describe("serveDashboard: safe by default", () => {
  it("refuses another interface than loopback without auth, and short tokens", async () => {
    await expect(serveDashboard(d, { host: "0.0.0.0", port: 0 })).rejects.toThrow(/basic-auth|auth-token/);
    await expect(serveDashboard(d, { host: "0.0.0.0", port: 0 })).rejects.toBeInstanceOf(CeleriacError);
    await expect(serveDashboard(d, { port: 0, auth: { token: "short" } })).rejects.toThrow(/at least 16/);
    await expect(serveDashboard(d, { port: 0, auth: { basic: ["nocolon"] } })).rejects.toThrow(/user:password/);
    await expect(serveDashboard(d, { port: 0, bogus: 1 } as never)).rejects.toThrow(/bogus/);
  });

  it("a token protects everything: header or ?token=", async () => {
    const s = await serveDashboard(d, { host: "127.0.0.2", port: 0, auth: { token: TOKEN } });
    try {
      expect(s.url).toMatch(/^http:\/\/127\.0\.0\.2:\d+$/);
      expect((await fetch(`${s.url}/api/workers`)).status).toBe(401);
      expect((await fetch(`${s.url}/`)).status).toBe(401);
      expect((await fetch(`${s.url}/api/workers`, { headers: { Authorization: "Bearer wrong-wrong-wrong-wrong" } })).status).toBe(401);
      expect((await fetch(`${s.url}/api/workers`, { headers: { Authorization: `Bearer ${TOKEN}` } })).status).toBe(200);
      expect((await fetch(`${s.url}/metrics?token=${TOKEN}`)).status).toBe(200);
    } finally {
      await s.close();
    }
  });

  it("basic auth asks the browser for credentials and accepts any listed user", async () => {
    const s = await serveDashboard(d, { host: "127.0.0.2", port: 0, auth: { basic: ["ann:pw1", "bob:pw2"] } });
    try {
      const denied = await fetch(`${s.url}/api/tasks`);
      expect(denied.status).toBe(401);
      expect(denied.headers.get("www-authenticate")).toContain("Basic");
      const as = (up: string) => ({ headers: { Authorization: `Basic ${Buffer.from(up).toString("base64")}` } });
      expect((await fetch(`${s.url}/api/tasks`, as("bob:pw2"))).status).toBe(200);
      expect((await fetch(`${s.url}/api/tasks`, as("bob:pw1"))).status).toBe(401);
    } finally {
      await s.close();
    }
  });

  it("--read-only refuses every action", async () => {
    const s = await serveDashboard(d, { port: 0, readOnly: true });
    try {
      for (const path of [
        "/api/task/revoke/x",
        "/api/task/async-apply/t.add",
        "/api/worker/shutdown/w@h",
        "/ui-api/revoke/x",
        "/ui-api/shutdown/w@h",
        "/ui-api/rate-limit/t.add?limit=1/s",
      ]) {
        const r = await fetch(`${s.url}${path}`, { method: "POST", body: "{}" });
        expect(r.status, path).toBe(403);
        expect(((await r.json()) as { error: string }).error).toContain("read-only");
      }
      expect(((await (await fetch(`${s.url}/ui-api/overview`)).json()) as { readOnly: boolean }).readOnly).toBe(true);
    } finally {
      await s.close();
    }
  });
});

describe("a broker without exchanges", () => {
  it("says so, answers remote-control actions with 501, and still sends tasks (Flower's async-apply)", async () => {
    const s = await serveDashboard(d, { port: 0 });
    try {
      const o = (await (await fetch(`${s.url}/ui-api/overview`)).json()) as { broker: { transport: string; events: boolean } };
      expect(o.broker).toEqual({ transport: "memory", events: false });
      const r = await fetch(`${s.url}/api/task/revoke/abc`, { method: "POST" });
      expect(r.status).toBe(501);
      expect(((await r.json()) as { error: string }).error).toMatch(/remote control/);
      const bad = await fetch(`${s.url}/api/task/async-apply/t.add`, { method: "POST", body: JSON.stringify({ args: "nope" }) });
      expect(bad.status).toBe(400);
      const ok = await fetch(`${s.url}/api/task/async-apply/t.add`, { method: "POST", body: JSON.stringify({ args: [1, 2], queue: "q-memory" }) });
      expect(ok.status).toBe(200);
      const body = (await ok.json()) as Record<string, string>;
      expect(body["task-id"]).toMatch(/^[0-9a-f-]{36}$/);
      expect((await fetch(`${s.url}/api/tasks?limit=-1`)).status).toBe(400);
      expect((await fetch(`${s.url}/api/tasks?received_start=yesterday`)).status).toBe(400);
      expect((await fetch(`${s.url}/api/task/info/unknown`)).status).toBe(404);
      expect((await fetch(`${s.url}/assets/%E0%A4%A`)).status).toBe(400);
      const page = await fetch(`${s.url}/../../etc/passwd`);
      expect(await page.text()).not.toContain("root:");
      expect((await fetch(`${s.url}/api/task/result/abc`)).status).toBe(503); // no result backend, as Flower
    } finally {
      await s.close();
    }
  });
});

describe("queue depths on the SQLite broker", () => {
  it("counts the waiting messages in the file, per queue, and says the broker has no events", async () => {
    const dir = mkdtempSync(join(tmpdir(), "dash-sqlite-"));
    const url = `sqlite:///${join(dir, "broker.db")}`;
    const producer = await transportFromUrl(url);
    await producer.connect();
    let dash: Dashboard | null = null;
    try {
      const client = createClient({ transport: producer });
      for (let i = 0; i < 4; i++) await client.sendTask("t.add", { args: [i], queue: "sq-a" });
      await client.sendTask("t.add", { args: [9], queue: "sq-b" });
      dash = await createDashboard({ brokerUrl: url, resultBackendUrl: url, queues: ["sq-a", "sq-b", "sq-none"], log: () => undefined });
      expect(dash.hasEvents).toBe(false);
      const stats = await dash.queues(true);
      expect(stats).toEqual([
        { name: "sq-a", messages: 4, consumers: null, exists: true },
        { name: "sq-b", messages: 1, consumers: null, exists: true },
        { name: "sq-none", messages: 0, consumers: null, exists: false },
      ]);
      // Flower's /api/task/result, from the result backend (the same SQLite file here).
      const backend = await resultBackendFromUrl(url);
      await backend.store({ task_id: "ok-1", status: "SUCCESS", result: { sum: 3 }, traceback: null, children: [], date_done: null });
      await backend.store({
        task_id: "bad-1",
        status: "FAILURE",
        result: { exc_type: "ValueError", exc_message: ["no"], exc_module: "builtins" },
        traceback: "Traceback ...\nValueError: no",
        children: [],
        date_done: null,
      });
      await backend.close();
      const s = await serveDashboard(dash, { port: 0 });
      try {
        expect(await (await fetch(`${s.url}/api/task/result/ok-1`)).json()).toEqual({ "task-id": "ok-1", state: "SUCCESS", result: { sum: 3 } });
        expect(await (await fetch(`${s.url}/api/task/result/bad-1`)).json()).toEqual({
          "task-id": "bad-1",
          state: "FAILURE",
          result: "ValueError('no')",
          traceback: "Traceback ...\nValueError: no",
        });
        expect(await (await fetch(`${s.url}/api/task/result/nobody`)).json()).toEqual({ "task-id": "nobody", state: "PENDING" });
      } finally {
        await s.close();
      }
    } finally {
      await dash?.close();
      await producer.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("queue depths on SQS (the local emulator)", () => {
  it("reads ApproximateNumberOfMessages per queue, by kombu's queue names, and says the broker has no events", async () => {
    const emulator = await startSqsEmulator();
    const url = `sqs://x:y@${new URL(emulator.endpoint).host}?queue_name_prefix=dash-`;
    const producer = await transportFromUrl(url);
    let dash: Dashboard | null = null;
    try {
      await producer.connect();
      const client = createClient({ transport: producer });
      for (let i = 0; i < 2; i++) await client.sendTask("t.add", { args: [i], queue: "sqs.a" });
      dash = await createDashboard({ brokerUrl: url, queues: ["sqs.a", "sqs.none"], log: () => undefined });
      expect(dash.hasEvents).toBe(false);
      expect(await dash.queues(true)).toEqual([
        { name: "sqs.a", messages: 2, consumers: null, exists: true },
        { name: "sqs.none", messages: 0, consumers: null, exists: false },
      ]);
    } finally {
      await dash?.close();
      await producer.close();
      await emulator.close();
    }
  }, 60_000);
});

describe("persistence through createDashboard", () => {
  it("a restarted dashboard shows the tasks the first one saw", async () => {
    const dir = mkdtempSync(join(tmpdir(), "dash-persist-"));
    const persistPath = join(dir, "history.db");
    try {
      const first = await createDashboard({ brokerUrl: "memory://", persistPath, log: () => undefined });
      first.state.ingest({ type: "task-received", uuid: "kept-1", name: "t.add", args: "(1, 2)", hostname: "w@h", timestamp: 1 });
      first.state.ingest({ type: "task-succeeded", uuid: "kept-1", result: "3", hostname: "w@h", timestamp: 2 });
      await first.close();
      const logs: string[] = [];
      const second = await createDashboard({ brokerUrl: "memory://", persistPath, log: (_l, m) => logs.push(m) });
      try {
        expect(second.state.task("kept-1")).toMatchObject({ state: "SUCCESS", name: "t.add", result: "3", worker: "w@h" });
        expect(logs.join("\n")).toContain("restored 1 tasks");
      } finally {
        await second.close();
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
