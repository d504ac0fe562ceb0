import { CeleriacError } from "@celeriac/core";
import { displayUrl } from "../config.js";

export interface DashboardCliOptions {
  broker?: string;
  resultBackend?: string;
  port?: string;
  address?: string;
  basicAuth?: string;
  authToken?: string;
  readOnly?: boolean;
  maxTasks?: string;
  persist?: string;
  inspectInterval?: string;
  queues?: string;
}

type DashboardModule = typeof import("@celeriac/dashboard");

/** The dashboard is its own package (a web server and a bundled page): loaded only for this command. */
export async function loadDashboard(importer: () => Promise<unknown> = () => import("@celeriac/dashboard")): Promise<DashboardModule> {
  try {
    return (await importer()) as DashboardModule;
  } catch (err) {
    if ((err as { code?: string }).code === "ERR_MODULE_NOT_FOUND" && String(err).includes("@celeriac/dashboard")) {
      throw new CeleriacError("unsupported", "celeriac dashboard needs the dashboard package: npm install @celeriac/dashboard");
    }
    throw err;
  }
}

function positiveInt(value: string | undefined, flag: string, allowZero = false): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isInteger(n) || n < (allowZero ? 0 : 1))
    throw new CeleriacError("invalid_argument", `${flag} must be a ${allowZero ? "non-negative" : "positive"} integer, got ${JSON.stringify(value)}`);
  return n;
}

/** `celeriac dashboard`: serves the live dashboard and Flower's HTTP API until SIGINT/SIGTERM. */
export async function dashboardCommand(opts: DashboardCliOptions): Promise<void> {
  const brokerUrl = opts.broker || process.env["CELERIAC_BROKER_URL"];
  if (!brokerUrl)
    throw new CeleriacError("invalid_argument", "celeriac dashboard: give --broker (amqp://, redis://, sqs://, sqlite:///) or CELERIAC_BROKER_URL");
  const port = positiveInt(opts.port ?? "5555", "--port", true)!;
  const maxTasks = positiveInt(opts.maxTasks, "--max-tasks");
  const inspectSeconds = opts.inspectInterval === undefined ? undefined : Number(opts.inspectInterval);
  if (inspectSeconds !== undefined && !(inspectSeconds > 0))
    throw new CeleriacError("invalid_argument", "--inspect-interval must be a positive number of seconds");
  const basic = opts.basicAuth
    ? opts.basicAuth
        .split(",")
        .map((s) => s.trim())
        .filter(Boolean)
    : [];
  const token = opts.authToken ?? process.env["CELERIAC_DASHBOARD_TOKEN"];
  const { createDashboard, serveDashboard } = await loadDashboard();
  const dashboard = await createDashboard({
    brokerUrl,
    ...(opts.resultBackend && opts.resultBackend !== "none" ? { resultBackendUrl: opts.resultBackend } : {}),
    ...(maxTasks !== undefined ? { maxTasks } : {}),
    ...(opts.persist ? { persistPath: opts.persist } : {}),
    ...(inspectSeconds !== undefined ? { inspectIntervalMs: inspectSeconds * 1000 } : {}),
    ...(opts.queues !== undefined
      ? {
          queues: opts.queues
            .split(",")
            .map((q) => q.trim())
            .filter(Boolean),
        }
      : {}),
  });
  let server;
  try {
    server = await serveDashboard(dashboard, {
      host: opts.address ?? "127.0.0.1",
      port,
      readOnly: opts.readOnly ?? false,
      ...(basic.length > 0 || token ? { auth: { ...(basic.length > 0 ? { basic } : {}), ...(token ? { token } : {}) } } : {}),
    });
  } catch (err) {
    await dashboard.close();
    throw err;
  }
  process.stdout.write(`celeriac dashboard: ${server.url} (broker ${displayUrl(brokerUrl)}${opts.readOnly ? ", read-only" : ""})\n`);
  await new Promise<void>((resolve) => {
    const stop = () => resolve();
    process.once("SIGINT", stop);
    process.once("SIGTERM", stop);
  });
  await server.close();
  await dashboard.close();
}
