/// <reference types="node" preserve="true" />
export { createDashboard, type Dashboard, type DashboardOptions, type ActionResult } from "./dashboard.js";
export { serveDashboard, type ServeOptions, type DashboardServer } from "./server.js";
export {
  FleetState,
  TASK_STATES,
  type FleetStateOptions,
  type TaskRecord,
  type WorkerRecord,
  type TaskFilter,
  type TaskPage,
  type TimelineEntry,
} from "./state.js";
export type { QueueStats } from "./queues.js";
