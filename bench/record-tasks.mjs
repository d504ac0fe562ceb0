// The task the benchmark's SIGKILL check runs (bench/run.mjs): a late-ack no-op that appends its
// task id to $BENCH_RECORD_FILE, so the check can count how often each task ran.
import { appendFileSync } from "node:fs";

export default function register(worker) {
  const file = process.env.BENCH_RECORD_FILE;
  if (!file) throw new Error("record-tasks.mjs: set BENCH_RECORD_FILE to the file the task ids go to");
  worker.register(
    "bench.record",
    (ctx) => {
      appendFileSync(file, `${ctx.id}\n`);
      return null;
    },
    { acksLate: true, ignoreResult: true },
  );
}
