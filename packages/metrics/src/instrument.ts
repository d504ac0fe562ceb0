import { CeleriacError } from "@celeriac/core";
import { assertKnownOptions, optionKeys } from "@celeriac/core/transport";
import type { Worker, WorkerEvent } from "@celeriac/worker";
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from "prom-client";

export interface InstrumentWorkerOptions {
  /**
   * Where the metrics are registered. Default: a new registry of their own, so two workers in one
   * process (or a test) never collide. Pass prom-client's global `register` to expose them next to
   * your other metrics; one worker per registry, since the names carry no worker label.
   */
  registry?: Registry;
  /** Prefix of every metric name. Default `"celeriac_"`. */
  prefix?: string;
  /** Upper bounds (seconds) of the run time histogram's buckets. Default: {@link DEFAULT_RUNTIME_BUCKETS}. */
  runtimeBuckets?: number[];
  /** Upper bounds (seconds) of the queue wait histogram's buckets. Default: {@link DEFAULT_QUEUE_WAIT_BUCKETS}. */
  queueWaitBuckets?: number[];
  /**
   * Also register prom-client's default Node process metrics (CPU, memory, event loop lag, GC)
   * under the same prefix. Default false: they are about the process, not the worker, and many
   * deployments collect them elsewhere already.
   */
  processMetrics?: boolean;
}

const KNOWN_OPTIONS = optionKeys<InstrumentWorkerOptions>({
  registry: true,
  prefix: true,
  runtimeBuckets: true,
  queueWaitBuckets: true,
  processMetrics: true,
});

/** Tasks run from milliseconds (I/O calls) to many minutes (reports, exports). */
export const DEFAULT_RUNTIME_BUCKETS: readonly number[] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600];
/** Waiting for a slot is near zero on an idle worker and grows with the backlog it has prefetched. */
export const DEFAULT_QUEUE_WAIT_BUCKETS: readonly number[] = [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300];

/** The final states a task message ends in on this worker, the `state` label of `tasks_finished_total`. */
export type FinishedState = "succeeded" | "failed" | "retried" | "rejected" | "revoked";

/** The metrics of one worker, as `instrumentWorker` registered them. */
export interface WorkerMetrics {
  readonly registry: Registry;
  /** The Prometheus text exposition of the whole registry (what `/metrics` serves). */
  metrics(): Promise<string>;
  /** Content type of `metrics()`'s text, for an HTTP response. */
  readonly contentType: string;
  /**
   * Stops listening to the worker and removes this worker's metrics from the registry. Happens
   * by itself only in part when the worker closes: the listener goes, the last values stay, so a
   * final scrape still sees them (with `worker_up` 0).
   */
  close(): void;
}

/**
 * Registers Prometheus metrics for `worker` and keeps them current from its task events;
 * gauges are read from `worker.counters` at scrape time. The metrics (with the default prefix):
 *
 * - `celeriac_tasks_received_total{task}` counter
 * - `celeriac_tasks_finished_total{task,state}` counter; state: succeeded, failed, retried, rejected, revoked
 * - `celeriac_task_runtime_seconds{task}` histogram
 * - `celeriac_task_queue_wait_seconds{task}` histogram
 * - `celeriac_tasks_in_flight`, `celeriac_tasks_prefetched`, `celeriac_tasks_held_eta` gauges
 * - `celeriac_worker_concurrency` gauge, `celeriac_worker_up{hostname}` gauge,
 *   `celeriac_worker_info{hostname,queues}` gauge (always 1)
 */
export function instrumentWorker(worker: Worker, options: InstrumentWorkerOptions = {}): WorkerMetrics {
  if (worker === null || typeof worker !== "object" || typeof worker.subscribe !== "function" || typeof worker.counters !== "object") {
    throw new CeleriacError("invalid_argument", "instrumentWorker: the first argument must be a worker from createWorker()");
  }
  if (options === null || typeof options !== "object") throw new CeleriacError("invalid_argument", "instrumentWorker: options must be an object");
  assertKnownOptions("instrumentWorker", options, KNOWN_OPTIONS);
  const prefix = options.prefix ?? "celeriac_";
  if (typeof prefix !== "string" || !/^([a-zA-Z_:][a-zA-Z0-9_:]*)?$/.test(prefix)) {
    throw new CeleriacError(
      "invalid_argument",
      `instrumentWorker: prefix must be a valid start of a Prometheus metric name ([a-zA-Z_:][a-zA-Z0-9_:]*), got ${JSON.stringify(prefix)}`,
    );
  }
  const registry = options.registry ?? new Registry();
  const runtimeBuckets = buckets("runtimeBuckets", options.runtimeBuckets ?? DEFAULT_RUNTIME_BUCKETS);
  const queueWaitBuckets = buckets("queueWaitBuckets", options.queueWaitBuckets ?? DEFAULT_QUEUE_WAIT_BUCKETS);

  const names: string[] = [];
  const registers = [registry];
  const named = (name: string) => {
    const full = prefix + name;
    if (registry.getSingleMetric(full)) {
      for (const n of names) registry.removeSingleMetric(n);
      throw new CeleriacError(
        "invalid_argument",
        `instrumentWorker: the registry already has a metric named ${full}; give each worker its own registry (the default) or its own prefix`,
      );
    }
    names.push(full);
    return full;
  };

  const received = new Counter({
    name: named("tasks_received_total"),
    help: "Task messages this worker received, by task name (empty for a message too malformed to name one).",
    labelNames: ["task"] as const,
    registers,
  });
  const finished = new Counter({
    name: named("tasks_finished_total"),
    help:
      "Task messages this worker is done with, by task name and final state: succeeded; failed; retried (this run asked for a retry, which is a new message); " +
      "rejected (unknown task, malformed message, or Reject); revoked (expired, revoked, or terminated).",
    labelNames: ["task", "state"] as const,
    registers,
  });
  const runtime = new Histogram({
    name: named("task_runtime_seconds"),
    help: "Run time of task handlers, from the start of the handler to its outcome, by task name, for every run that started (whatever its state).",
    labelNames: ["task"] as const,
    buckets: runtimeBuckets,
    registers,
  });
  const queueWait = new Histogram({
    name: named("task_queue_wait_seconds"),
    help:
      "Time a task waited inside this worker before its handler started, by task name: from the later of its receipt and its ETA to its start, " +
      "i.e. waiting for a concurrency slot or a rate limit. Time spent in the broker is not included (Celery messages carry no send time).",
    labelNames: ["task"] as const,
    buckets: queueWaitBuckets,
    registers,
  });
  new Gauge({
    name: named("tasks_in_flight"),
    help: "Task handlers running right now.",
    registers,
    collect() {
      this.set(worker.counters.inFlight);
    },
  });
  new Gauge({
    name: named("tasks_prefetched"),
    help: "Task messages received and not finished yet: running, or waiting for an ETA, a rate limit or a slot.",
    registers,
    collect() {
      this.set(worker.counters.prefetched);
    },
  });
  new Gauge({
    name: named("tasks_held_eta"),
    help: "Of the prefetched messages, those held in memory until their ETA.",
    registers,
    collect() {
      this.set(worker.counters.heldEta);
    },
  });
  new Gauge({
    name: named("worker_concurrency"),
    help: "Task handlers this worker runs at once at most.",
    registers,
    collect() {
      this.set(worker.concurrency);
    },
  });
  new Gauge({
    name: named("worker_up"),
    help: "1 while the worker is running (consuming its queues), 0 otherwise.",
    labelNames: ["hostname"] as const,
    registers,
    collect() {
      this.set({ hostname: worker.hostname }, worker.state === "running" ? 1 : 0);
    },
  });
  new Gauge({
    name: named("worker_info"),
    help: "Always 1; its labels say which worker this is and what it consumes.",
    labelNames: ["hostname", "queues"] as const,
    registers,
    collect() {
      this.set({ hostname: worker.hostname, queues: worker.queues.join(",") }, 1);
    },
  });
  if (options.processMetrics) {
    const before = new Set(registry.getMetricsAsArray().map((m) => m.name));
    collectDefaultMetrics({ register: registry, prefix });
    for (const m of registry.getMetricsAsArray()) if (!before.has(m.name)) names.push(m.name);
  }

  // Start times of running tasks by id, for run times the events do not carry themselves
  // (retried, rejected by Reject, terminated). Entries go when the task ends.
  const startedAt = new Map<string, number>();
  const observeRuntime = (task: string, taskId: string, runtimeMs: number | null, endedAt: number) => {
    const start = startedAt.get(taskId);
    startedAt.delete(taskId);
    const ms = runtimeMs ?? (start !== undefined ? endedAt - start : null);
    if (ms !== null) runtime.observe({ task }, ms / 1000);
  };

  const onEvent = (event: WorkerEvent): void => {
    switch (event.type) {
      case "task-received":
        received.inc({ task: event.task });
        return;
      case "task-started":
        startedAt.set(event.taskId, event.timestamp);
        queueWait.observe({ task: event.task }, event.waitMs / 1000);
        return;
      case "task-succeeded":
        finished.inc({ task: event.task, state: "succeeded" });
        observeRuntime(event.task, event.taskId, event.runtimeMs, event.timestamp);
        return;
      case "task-failed":
        finished.inc({ task: event.task, state: "failed" });
        observeRuntime(event.task, event.taskId, event.runtimeMs, event.timestamp);
        return;
      case "task-retried":
        finished.inc({ task: event.task, state: "retried" });
        observeRuntime(event.task, event.taskId, null, event.timestamp);
        return;
      case "task-revoked":
        finished.inc({ task: event.task, state: "revoked" });
        if (event.terminated) observeRuntime(event.task, event.taskId, null, event.timestamp);
        return;
      case "task-rejected":
        // A malformed message has no name to label it with.
        finished.inc({ task: event.task ?? "", state: "rejected" });
        if (event.taskId !== null) observeRuntime(event.task ?? "", event.taskId, null, event.timestamp);
        return;
    }
  };
  let unsubscribe: (() => void) | null = worker.subscribe(onEvent);
  const stopListening = () => {
    unsubscribe?.();
    unsubscribe = null;
    startedAt.clear();
  };
  worker.closed.then(stopListening, stopListening);

  return {
    registry,
    contentType: registry.contentType,
    metrics: () => registry.metrics(),
    close() {
      stopListening();
      for (const n of names) registry.removeSingleMetric(n);
      names.length = 0;
    },
  };
}

function buckets(name: string, value: readonly number[]): number[] {
  if (!Array.isArray(value) || value.length === 0 || value.some((b) => typeof b !== "number" || !Number.isFinite(b) || b <= 0)) {
    throw new CeleriacError("invalid_argument", `instrumentWorker: ${name} must be a non-empty list of positive finite numbers (seconds)`);
  }
  for (let i = 1; i < value.length; i++) {
    if (value[i]! <= value[i - 1]!) throw new CeleriacError("invalid_argument", `instrumentWorker: ${name} must be in increasing order`);
  }
  return [...value];
}
