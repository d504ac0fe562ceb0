// For users.
export {
  instrumentWorker,
  DEFAULT_RUNTIME_BUCKETS,
  DEFAULT_QUEUE_WAIT_BUCKETS,
  type InstrumentWorkerOptions,
  type WorkerMetrics,
  type FinishedState,
} from "./instrument.js";
export { serveMetrics, type ServeMetricsOptions, type MetricsServer } from "./serve.js";
