// Celeriac runs on Node and its public types use Node's (or those of clients that do): keep this
// reference in the .d.ts, since TypeScript 6 projects load no @types/* package unless asked.
/// <reference types="node" preserve="true" />
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
