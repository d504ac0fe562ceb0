import { Gauge, Registry } from "prom-client";
import type { Dashboard } from "./dashboard.js";

/**
 * The fleet in Prometheus' text format: read from the dashboard's state at scrape time, so there
 * is nothing to keep in sync. Names follow Flower's (`flower_*`) in meaning, prefixed `celeriac_fleet_`.
 */
export function createFleetMetrics(d: Dashboard): { registry: Registry; close(): void } {
  const registry = new Registry();
  const state = d.state;
  new Gauge({
    name: "celeriac_fleet_worker_up",
    help: "1 while the worker sends heartbeats, 0 once it stopped or went silent",
    labelNames: ["hostname", "language"],
    registers: [registry],
    collect() {
      this.reset();
      for (const w of state.listWorkers()) this.set({ hostname: w.hostname, language: w.language }, state.isAlive(w) ? 1 : 0);
    },
  });
  new Gauge({
    name: "celeriac_fleet_worker_tasks_active",
    help: "tasks the worker runs now (from its last heartbeat)",
    labelNames: ["hostname"],
    registers: [registry],
    collect() {
      this.reset();
      for (const w of state.listWorkers()) if (state.isAlive(w)) this.set({ hostname: w.hostname }, w.active);
    },
  });
  new Gauge({
    name: "celeriac_fleet_worker_tasks_finished",
    help: "tasks seen finishing on the worker since the dashboard started, by outcome (a counter that restarts with the dashboard)",
    labelNames: ["hostname", "state"],
    registers: [registry],
    collect() {
      this.reset();
      for (const w of state.listWorkers()) {
        this.set({ hostname: w.hostname, state: "succeeded" }, w.succeeded);
        this.set({ hostname: w.hostname, state: "failed" }, w.failed);
      }
    },
  });
  new Gauge({
    name: "celeriac_fleet_tasks",
    help: "tasks kept by the dashboard, by state",
    labelNames: ["state"],
    registers: [registry],
    collect() {
      this.reset();
      for (const [s, n] of Object.entries(state.stateCounts())) this.set({ state: s }, n);
    },
  });
  new Gauge({
    name: "celeriac_fleet_events_received",
    help: "Celery events taken in since the dashboard started, by type",
    labelNames: ["type"],
    registers: [registry],
    collect() {
      this.reset();
      for (const [t, n] of state.eventCounts) this.set({ type: t }, n);
    },
  });
  new Gauge({
    name: "celeriac_fleet_tasks_evicted",
    help: "tasks dropped to stay within the task cap",
    registers: [registry],
    collect() {
      this.set(state.evicted);
    },
  });
  new Gauge({
    name: "celeriac_fleet_queue_messages",
    help: "messages waiting in the queue, as the broker reports at the last poll",
    labelNames: ["queue"],
    registers: [registry],
    async collect() {
      this.reset();
      for (const q of await d.queues()) if (q.messages !== null) this.set({ queue: q.name }, q.messages);
    },
  });
  new Gauge({
    name: "celeriac_fleet_queue_consumers",
    help: "consumers of the queue (the broker's count on RabbitMQ; live workers consuming it elsewhere)",
    labelNames: ["queue"],
    registers: [registry],
    async collect() {
      this.reset();
      for (const q of await d.queues()) if (q.consumers !== null) this.set({ queue: q.name }, q.consumers);
    },
  });
  return { registry, close: () => registry.clear() };
}
