// worker-tasks.ts: loaded by `celeriac worker --tasks ./dist/worker-tasks.js`
import type { Worker } from "@celeriac/worker";
import { add } from "./tasks.js";

export default (worker: Worker) => {
  worker.register(add, (_ctx, a, b) => a + b); // handler checked against the definition
};
