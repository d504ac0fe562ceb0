import { CeleriacError, createClient } from "@celeriac/core";
import { readFile } from "node:fs/promises";
import { extname, resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { displayUrl, openConnections } from "../config.js";

type BeatModule = typeof import("@celeriac/beat");

export interface BeatCommandOptions {
  broker?: string;
  schedule?: string;
  maxInterval: string;
  lease: string;
  name: string;
  dryRun?: boolean | string;
  metricsPort?: string;
  metricsHost?: string;
  quiet?: boolean;
}

async function loadBeat(): Promise<BeatModule> {
  try {
    return await import("@celeriac/beat");
  } catch (err) {
    throw new CeleriacError("unsupported", "celeriac beat needs the @celeriac/beat package: npm install @celeriac/beat", { cause: err });
  }
}

function seconds(flag: string, value: string, min: number): number {
  const n = Number(value);
  if (value.trim() === "" || !Number.isFinite(n) || n < min)
    throw new CeleriacError("invalid_argument", `--${flag} must be a number of seconds >= ${min}, got ${JSON.stringify(value)}`);
  return n;
}

/** A .json file in the plain form, or a module whose default export (or `schedule`) is a schedule. */
async function loadSchedule(beat: BeatModule, path: string) {
  const file = resolve(path);
  if (extname(file) === ".json") {
    let json: unknown;
    try {
      json = JSON.parse(await readFile(file, "utf8"));
    } catch (err) {
      throw new CeleriacError("invalid_argument", `--schedule ${path}: ${(err as Error).message}`);
    }
    return beat.scheduleFromJson(json);
  }
  const mod = (await import(pathToFileURL(file).href)) as { default?: unknown; schedule?: unknown };
  return beat.toBeatSchedule(mod.default ?? mod.schedule);
}

/**
 * `celeriac beat`: sends the schedule's runs while this replica holds the broker's lease; any
 * number of replicas may run, exactly one sends. SIGTERM/SIGINT release the lease at once.
 */
export async function beatCommand(opts: BeatCommandOptions): Promise<void> {
  if (!opts.schedule)
    throw new CeleriacError("invalid_argument", "--schedule <file> is required (a .json schedule, or a module exporting defineSchedule(...))");
  const beatLib = await loadBeat();
  const schedule = await loadSchedule(beatLib, opts.schedule);
  const maxIntervalMs = seconds("max-interval", opts.maxInterval, 0.01) * 1000;
  const leaseMs = Math.round(seconds("lease", opts.lease, 1) * 1000);
  const out = (line: string) => {
    if (!opts.quiet) process.stderr.write(`${line}\n`);
  };
  const now = Date.now();

  if (opts.dryRun !== undefined && opts.dryRun !== false) {
    const count = opts.dryRun === true ? 5 : Number(opts.dryRun);
    if (!Number.isInteger(count) || count < 1)
      throw new CeleriacError("invalid_argument", `--dry-run takes a positive count, got ${JSON.stringify(opts.dryRun)}`);
    console.log(`timezone ${schedule.timezone}`);
    for (const e of schedule.entries) {
      console.log(`${e.name}: ${e.taskName} ${e.schedule.toString()}`);
      for (const t of beatLib.nextRuns(e, schedule.zone, now, count))
        console.log(`  ${beatLib.formatInZone(t, schedule.zone)}  (${new Date(t).toISOString()})`);
    }
    return;
  }

  const conn = await openConnections({ broker: opts.broker, resultBackend: "none" });
  let lease;
  try {
    lease = await beatLib.leaseFromUrl(conn.brokerUrl, { name: opts.name, leaseMs });
  } catch (err) {
    await conn.close();
    throw err;
  }
  const client = createClient({ transport: conn.transport });
  const beat = beatLib.createBeat({ schedule, client, lease, name: opts.name, maxIntervalMs, log: out });
  const metricsPort = opts.metricsPort !== undefined ? Number(opts.metricsPort) : null;
  let metricsServer: { url: string; close(): Promise<void> } | null = null;
  const stop = () => void beat.stop();
  try {
    if (metricsPort !== null) {
      if (!Number.isInteger(metricsPort) || metricsPort < 0 || metricsPort > 65535)
        throw new CeleriacError("invalid_argument", `--metrics-port must be a port number 0..65535, got ${JSON.stringify(opts.metricsPort)}`);
      const { registry } = await beatLib.instrumentBeat(beat);
      metricsServer = await (await import("@celeriac/metrics")).serveMetrics(registry, { port: metricsPort, host: opts.metricsHost ?? "127.0.0.1" });
      out(`celeriac beat metrics: ${metricsServer.url}`);
    }
    await conn.transport.connect();
    for (const e of schedule.entries) {
      const next = e.schedule.nextAfter(now, schedule.zone);
      out(`celeriac beat: ${JSON.stringify(e.name)} ${e.taskName} ${e.schedule.toString()} next run ${beatLib.formatInZone(next, schedule.zone)}`);
    }
    out(
      `celeriac beat ready: broker ${displayUrl(conn.brokerUrl)}, ${lease.kind} lease "${opts.name}" of ${leaseMs} ms, timezone ${schedule.timezone}, ${schedule.entries.length} entr${schedule.entries.length === 1 ? "y" : "ies"}`,
    );
    process.once("SIGTERM", stop);
    process.once("SIGINT", stop);
    await beat.run();
  } finally {
    process.off("SIGTERM", stop);
    process.off("SIGINT", stop);
    await metricsServer?.close();
    await lease.close();
    await conn.close();
  }
}
