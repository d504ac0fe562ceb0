import { CeleriacError } from "@celeriac/core";
import type { Registry } from "prom-client";
import type { Beat } from "./beat.js";

export interface BeatMetrics {
  readonly registry: Registry;
  /** Stops feeding the metrics (they stay registered). */
  close(): void;
}

/**
 * Prometheus metrics of a beat, on prom-client (a dependency, so its types resolve for users; loaded only here, on first use):
 * `celeriac_beat_sent_total{entry,task}`, `celeriac_beat_missed_total{entry}`,
 * `celeriac_beat_leader` (1 while this replica leads) and `celeriac_beat_leader_changes_total`.
 * Serve the registry with @celeriac/metrics' `serveMetrics`, as the worker does.
 */
export async function instrumentBeat(beat: Beat, options: { registry?: Registry } = {}): Promise<BeatMetrics> {
  let prom: typeof import("prom-client");
  try {
    prom = await import("prom-client");
  } catch (err) {
    throw new CeleriacError("unsupported", "beat metrics need prom-client: npm install prom-client", { cause: err });
  }
  const registry = options.registry ?? new prom.Registry();
  const sent = new prom.Counter({
    name: "celeriac_beat_sent_total",
    help: "Runs sent by this beat replica",
    labelNames: ["entry", "task"],
    registers: [registry],
  });
  const missed = new prom.Counter({
    name: "celeriac_beat_missed_total",
    help: "Due runs not sent (missed while no replica led, per the entry's missed policy)",
    labelNames: ["entry"],
    registers: [registry],
  });
  const leader = new prom.Gauge({ name: "celeriac_beat_leader", help: "1 while this replica is the leader", registers: [registry] });
  const changes = new prom.Counter({
    name: "celeriac_beat_leader_changes_total",
    help: "Times this replica became or stopped being the leader",
    registers: [registry],
  });
  leader.set(beat.isLeader ? 1 : 0);
  const off = beat.subscribe((e) => {
    if (e.type === "sent") sent.inc({ entry: e.entry, task: e.task });
    else if (e.type === "missed") missed.inc({ entry: e.entry }, e.dueAts.length);
    else if (e.type === "leader") {
      leader.set(e.leader ? 1 : 0);
      changes.inc();
    }
  });
  return { registry, close: off };
}
