import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium, type BrowserContext, type Locator, type Page } from "playwright-core";
import { expect } from "vitest";
import { createClient, type Transport } from "@celeriac/core";
import { createDashboard, serveDashboard, type Dashboard, type DashboardServer } from "@celeriac/dashboard";
import { runPython, spawnPython, type PythonProcess } from "../../../test-support/python.js";
import { startCeleriacWorker, type CeleriacWorker } from "../../cli/test/cli-helpers.js";

/** The TypeScript worker's tasks, for `celeriac worker --tasks`. */
const TS_TASKS = fileURLToPath(new URL("./fixtures/ts-tasks.mjs", import.meta.url));

/**
 * The issue's "must show", run against one broker: a Python worker (`celery worker -E`) and a
 * TypeScript worker (`celeriac worker -E`, the built CLI) side by side, watched by the dashboard in Debian's Chromium.
 * Tasks cross languages (Python sends to the TypeScript worker and the other way round), one
 * fails in Python, three wait in a queue nobody consumes, and one queued task is revoked from
 * the page.
 */

/** Debian's chromium, driven by playwright-core: nothing is downloaded. */
export const CHROMIUM = "/usr/bin/chromium";
const CHROMIUM_ARGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];

/**
 * Screenshots go to docs/img when CELERIAC_DOCS_SCREENSHOTS=1 (the run that refreshes the docs),
 * else to a temp dir, so a normal run is still checked to take them but leaves the tree clean.
 */
function screenshotDir(): { dir: string; cleanup: () => void } {
  if (process.env["CELERIAC_DOCS_SCREENSHOTS"] === "1") {
    const dir = fileURLToPath(new URL("../../../docs/img/", import.meta.url));
    try {
      mkdirSync(dir, { recursive: true });
      return { dir, cleanup: () => undefined };
    } catch {
      // a read-only checkout: fall through to the temp dir rather than fail the run
    }
  }
  const dir = mkdtempSync(join(tmpdir(), "dash-shots-"));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

async function screenshot(page: Page, dir: string, name: string): Promise<void> {
  try {
    await page.screenshot({ path: join(dir, name), fullPage: true });
  } catch (err) {
    if (!/EROFS|EACCES|EPERM/.test(String(err))) throw err;
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function until<T>(
  what: string,
  probe: () => Promise<T | undefined | null | false> | T | undefined | null | false,
  timeoutMs = 20_000,
  detail: () => string = () => "",
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await probe();
      if (v) return v;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}${last ? ` (last error: ${String(last)})` : ""}\n${detail()}`);
    await sleep(100);
  }
}

/** Waits until the element's text contains every one of `texts`. */
async function textOf(what: string, loc: Locator, texts: string[], timeoutMs = 20_000): Promise<string> {
  let last = "";
  return until(
    what,
    async () => {
      last = await loc.innerText({ timeout: 1000 });
      return texts.every((t) => last.includes(t)) ? last : null;
    },
    timeoutMs,
    () => `last text: ${last}`,
  );
}

export interface FleetSetup {
  brokerUrl: string;
  /** A fresh TypeScript transport on the broker. */
  makeTransport(): Transport;
  /** The queue's depth asked of the broker directly (rabbitmqctl, redis LLEN), not through the dashboard. */
  brokerDepth(queue: string): Promise<number>;
  /** File name prefix of the screenshots. */
  label: string;
}

export async function runFleetScenario(setup: FleetSetup): Promise<void> {
  const id = Math.random().toString(36).slice(2, 8);
  const pyQueue = `py-${id}`;
  const tsQueue = `ts-${id}`;
  const parked = `parked-${id}`;
  const pyHost = `py-${id}@localhost`;
  const tsHost = `ts-${id}@localhost`;
  const shots = screenshotDir();
  let dashboard: Dashboard | null = null;
  let server: DashboardServer | null = null;
  let py: PythonProcess | null = null;
  let worker: CeleriacWorker | null = null;
  let context: BrowserContext | null = null;
  const userDataDir = mkdtempSync(join(tmpdir(), "dash-chromium-"));
  const clientTransport = setup.makeTransport();
  const debug = () => `--- python worker ---\n${py?.output() ?? ""}\n--- celeriac worker ---\n${worker?.output() ?? ""}`;
  try {
    // The dashboard first, so it hears the workers come online.
    dashboard = await createDashboard({ brokerUrl: setup.brokerUrl, inspectIntervalMs: 1000, queues: [parked], log: () => undefined });
    server = await serveDashboard(dashboard, { port: 0 });

    py = spawnPython({ brokerUrl: setup.brokerUrl }, [
      "-m",
      "celery",
      "-A",
      "interop_app",
      "worker",
      "-E",
      "--pool",
      "solo",
      "--loglevel",
      "INFO",
      "-Q",
      pyQueue,
      "-n",
      pyHost,
      "--without-gossip",
      "--without-mingle",
    ]);
    await clientTransport.connect();
    // One slot, so that a second task waits behind a busy first one.
    worker = await startCeleriacWorker(["-b", setup.brokerUrl, "--result-backend", "none", "--tasks", TS_TASKS, "-Q", tsQueue, "-c", "1", "-n", tsHost, "-E"]);
    await until("the Python worker to be ready", () => / ready\.?/.test(py!.output()), 30_000, debug);

    const client = createClient({ transport: clientTransport });
    // Sent by TypeScript, run by Python; and one that fails in Python.
    const fromTs = (await client.sendTask("pytasks.add", { args: [4, 5], queue: pyQueue })).id;
    const failed = (await client.sendTask("pytasks.fail", { args: ["dashboard boom"], queue: pyQueue })).id;
    // Sent by Python, run by TypeScript.
    const [fromPy] = JSON.parse(
      await runPython({ brokerUrl: setup.brokerUrl }, "dashboard_send.py", [JSON.stringify([{ name: "tsk.add", args: [2, 3], queue: tsQueue }])]),
    ) as string[];
    // Three that wait: nobody consumes this queue.
    for (let i = 0; i < 3; i++) await client.sendTask("tsk.add", { args: [i, i], queue: parked });

    const d = dashboard;
    await until(
      "both results in the dashboard",
      () => d.state.task(fromTs)?.state === "SUCCESS" && d.state.task(fromPy!)?.state === "SUCCESS" && d.state.task(failed)?.state === "FAILURE",
      30_000,
      debug,
    );

    // ---- Flower's HTTP API -------------------------------------------------------------------
    const api = async (path: string, init?: RequestInit) => {
      const r = await fetch(`${server!.url}${path}`, init);
      return { status: r.status, body: (await r.json()) as Record<string, unknown> };
    };
    const info = await api(`/api/task/info/${fromTs}`);
    expect(info.status).toBe(200);
    expect(info.body).toMatchObject({ uuid: fromTs, name: "pytasks.add", state: "SUCCESS", result: "9", worker: pyHost });
    expect(String(info.body["args"])).toMatch(/4, 5/);
    // Celery 5.2's worker sends the exception wrapped (`ExceptionWithTraceback()`); the traceback has the real one.
    const failedInfo = (await api(`/api/task/info/${failed}`)).body;
    expect(failedInfo).toMatchObject({ state: "FAILURE", name: "pytasks.fail", worker: pyHost });
    expect(failedInfo["traceback"]).toContain("ValueError: dashboard boom");
    expect((await api("/api/task/info/nope")).status).toBe(404);
    const tasks = (await api(`/api/tasks?workername=${encodeURIComponent(tsHost)}`)).body;
    expect(Object.keys(tasks)).toContain(fromPy);
    expect(tasks[fromPy!]).toMatchObject({ name: "tsk.add", state: "SUCCESS", result: "5", worker: tsHost });
    expect(Object.keys((await api("/api/tasks?state=FAILURE")).body)).toEqual([failed]);
    const workers = await until("both workers in /api/workers with their registered tasks", async () => {
      const w = (await api("/api/workers?refresh=1")).body as Record<string, { registered: string[] }>;
      return w[pyHost]?.registered.includes("pytasks.add") && w[tsHost]?.registered.includes("tsk.add") ? w : null;
    });
    expect(Object.keys(workers)).toEqual(expect.arrayContaining([pyHost, tsHost]));
    expect((await api("/api/workers?status=1")).body).toMatchObject({ [pyHost]: true, [tsHost]: true });
    const lengths = (await api("/api/queues/length")).body as { active_queues: { name: string; messages: number }[] };
    expect(lengths.active_queues).toContainEqual({ name: parked, messages: 3 });
    expect(await setup.brokerDepth(parked)).toBe(3);
    const applied = await api(`/api/task/async-apply/tsk.add`, { method: "POST", body: JSON.stringify({ args: [20, 22], queue: tsQueue }) });
    expect(applied.body).toMatchObject({ state: "PENDING" });
    const appliedId = applied.body["task-id"] as string;
    await until("the task applied through the API to succeed", () => d.state.task(appliedId)?.result === "42");
    const metrics = await (await fetch(`${server.url}/metrics`)).text();
    expect(metrics).toContain(`celeriac_fleet_worker_up{hostname="${pyHost}",language="python"} 1`);
    expect(metrics).toContain(`celeriac_fleet_worker_up{hostname="${tsHost}",language="typescript"} 1`);
    expect(metrics).toContain(`celeriac_fleet_queue_messages{queue="${parked}"} 3`);

    // ---- the page, in Chromium ---------------------------------------------------------------
    context = await chromium.launchPersistentContext(userDataDir, {
      executablePath: CHROMIUM,
      headless: true,
      args: CHROMIUM_ARGS,
      viewport: { width: 1400, height: 900 },
    });
    const page = context.pages()[0] ?? (await context.newPage());
    const pageErrors: string[] = [];
    page.on("pageerror", (e) => pageErrors.push(String(e)));
    await page.goto(`${server.url}/#/`);
    const pyRow = page.locator(`tr[data-worker="${pyHost}"]`);
    const tsRow = page.locator(`tr[data-worker="${tsHost}"]`);
    await textOf("the Python worker's row", pyRow, ["online", "python", "pytasks.add", pyQueue]);
    await textOf("the TypeScript worker's row", tsRow, ["online", "typescript", "tsk.add", tsQueue]);
    await page.locator("[data-testid=throughput-chart] canvas").waitFor({ timeout: 10_000 });
    await screenshot(page, shots.dir, `dashboard-workers-${setup.label}.png`);

    await page.goto(`${server.url}/#/tasks`);
    await textOf("the task sent by TypeScript, with its result", page.locator(`tr[data-task="${fromTs}"]`), ["pytasks.add", "SUCCESS", "9", pyHost]);
    await textOf("the task sent by Python, with its result", page.locator(`tr[data-task="${fromPy}"]`), ["tsk.add", "SUCCESS", "5", tsHost]);
    await textOf("the failed task", page.locator(`tr[data-task="${failed}"]`), ["FAILURE", "pytasks.fail", "ValueError: dashboard boom"]);
    // The filters go to the server: only the failure is left.
    await page.getByLabel("state").selectOption("FAILURE");
    await textOf("the filtered count", page.getByTestId("task-total"), ["1-1 of 1"]);
    await page.getByLabel("state").selectOption("");
    await page.getByLabel("search").fill(fromPy!.slice(0, 13));
    await textOf("the search result", page.getByTestId("task-total"), ["of 1"]);
    await page.getByLabel("search").fill("");
    await screenshot(page, shots.dir, `dashboard-tasks-${setup.label}.png`);

    await page.goto(`${server.url}/#/task/${failed}`);
    await textOf("the failed task's traceback", page.getByTestId("traceback"), ["Traceback (most recent call last)", "ValueError: dashboard boom"]);
    await textOf("the timeline", page.getByTestId("timeline"), ["task-received", "task-started", "task-failed"]);
    await screenshot(page, shots.dir, `dashboard-task-failed-${setup.label}.png`);
    // Rate limit from the page: each worker's own answer is shown (ours does not implement it yet).
    page.once("dialog", (dialog) => void dialog.accept());
    await page.getByLabel("rate limit").fill("5/m");
    await page.getByRole("button", { name: "Set rate limit" }).click();
    await textOf("the rate-limit replies", page.getByTestId("action-result"), [pyHost, "new rate limit set successfully", tsHost, "KeyError('rate_limit')"]);

    await page.goto(`${server.url}/#/queues`);
    await textOf("the parked queue's depth", page.locator(`tr[data-queue="${parked}"]`), [parked, "3"]);
    await textOf("the TypeScript queue's consumer", page.locator(`tr[data-queue="${tsQueue}"]`), [tsQueue, "1"]);
    await screenshot(page, shots.dir, `dashboard-queues-${setup.label}.png`);

    // ---- revoke a queued task from the page --------------------------------------------------
    // The TypeScript worker runs one task at a time: the second waits behind the first, which
    // runs until it is terminated (so a slow machine cannot let the queued one start first).
    const busy = (await client.sendTask("tsk.sleep", { args: [120_000], queue: tsQueue })).id;
    const queued = (await client.sendTask("tsk.add", { args: [7, 7], queue: tsQueue })).id;
    await until("the queued task to be received", () => d.state.task(queued)?.state === "RECEIVED" && d.state.task(busy)?.state === "STARTED");
    await page.goto(`${server.url}/#/task/${queued}`);
    await textOf("the queued task's page", page.getByTestId("task-detail"), ["tsk.add", "RECEIVED"]);
    let question = "";
    page.once("dialog", (dialog) => {
      question = dialog.message();
      void dialog.accept();
    });
    await page.getByRole("button", { name: "Revoke", exact: true }).click();
    const reply = await textOf("the workers' replies", page.getByTestId("action-result"), [tsHost, "flagged as revoked", pyHost]);
    expect(question).toContain(`Revoke task ${queued}`);
    expect(reply).toContain(queued);
    // Terminate the busy one through Flower's API: the queued task's turn comes, and it is skipped.
    const terminated = await api(`/api/task/revoke/${busy}?terminate=true`, { method: "POST" });
    expect(terminated.body).toMatchObject({ message: `Revoked '${busy}'`, replies: { [tsHost]: { ok: `terminate: ${busy}` } } });
    await textOf("the task to show REVOKED", page.getByTestId("task-detail"), ["REVOKED", "task-revoked"], 15_000);
    await screenshot(page, shots.dir, `dashboard-revoked-${setup.label}.png`);
    const revoked = d.state.task(queued)!;
    expect(revoked.state).toBe("REVOKED");
    expect(revoked.started).toBeNull(); // it never ran
    expect(revoked.result).toBeNull();
    await until("the terminated task to be REVOKED", () => d.state.task(busy)?.state === "REVOKED", 15_000);

    // ---- shut the TypeScript worker down from the page ---------------------------------------
    await page.goto(`${server.url}/#/`);
    page.once("dialog", (dialog) => void dialog.accept());
    await tsRow.getByRole("button", { name: "Shut down" }).click();
    await textOf("the shutdown note", page.getByTestId("action-result"), ["do not reply"]);
    await textOf("the TypeScript worker to go offline", tsRow, ["offline"], 15_000);
    await until("the celeriac worker process to exit", () => worker!.child.exitCode !== null, 15_000, debug);
    expect(worker.child.exitCode).toBe(0);
    await textOf("the Python worker still online", pyRow, ["online"]);
    expect(pageErrors).toEqual([]);
  } finally {
    await context?.close().catch(() => undefined);
    await worker?.stop();
    await py?.stop();
    await server?.close();
    await dashboard?.close();
    await clientTransport.close().catch(() => undefined);
    rmSync(userDataDir, { recursive: true, force: true });
    shots.cleanup();
  }
}
