import type { Transport } from "@celeriac/core";
import { startCeleryEvents } from "./celery-events.js";
import { startRemoteControl } from "./remote-control.js";
import type { LogFn } from "./logger.js";
import type { ResolvedOptions } from "./options.js";
import type { Worker } from "./worker.js";

/** What an addon gets from the worker it runs alongside. */
export interface AddonHost {
  worker: Worker;
  transport: Transport;
  options: ResolvedOptions;
  log: LogFn;
}

/**
 * Something that lives as long as the worker's consumer: Celery's event stream, the remote
 * control mailbox. Started before consuming, stopped after the last task settled, so that
 * `worker-offline` is the last thing a monitor hears.
 */
export interface WorkerAddon {
  readonly name: string;
  stop(): Promise<void>;
}

type AddonStarter = (host: AddonHost) => Promise<WorkerAddon | null>;

/** Each starter returns null when its option is off or the transport cannot carry it. */
const STARTERS: AddonStarter[] = [startCeleryEvents, startRemoteControl];

/** Starts every enabled addon; if one fails, the ones already started are stopped again. */
export async function startAddons(host: AddonHost): Promise<WorkerAddon[]> {
  const started: WorkerAddon[] = [];
  try {
    for (const start of STARTERS) {
      const addon = await start(host);
      if (addon) started.push(addon);
    }
  } catch (err) {
    await stopAddons(started, host.log);
    throw err;
  }
  return started;
}

/** Stops addons in reverse start order; a failing stop is logged, never thrown. */
export async function stopAddons(addons: readonly WorkerAddon[], log: LogFn): Promise<void> {
  for (const addon of [...addons].reverse()) {
    try {
      await addon.stop();
    } catch (err) {
      log("warn", `could not stop ${addon.name} cleanly`, { error: err instanceof Error ? err.message : String(err) });
    }
  }
}
