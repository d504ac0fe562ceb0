// Tasks the fault suite (bench/faults.mjs) runs through `celeriac worker --tasks`: each execution
// appends its task id to $FAULTS_RECORD, so the suite counts what ran, what ran twice and what
// never ran, from outside the worker.
import { appendFileSync } from "node:fs";

const file = process.env.FAULTS_RECORD;
const record = (id) => appendFileSync(file, `${id}\n`);

export default function register(worker) {
  // Late ack: a worker killed mid-task leaves the message to be delivered again.
  worker.register(
    "faults.record",
    async (ctx, ms = 0) => {
      if (ms > 0) await new Promise((r) => setTimeout(r, ms));
      record(ctx.id);
      return null;
    },
    { acksLate: true },
  );
  // Memory under load: each run holds 1 MiB for a moment.
  worker.register("faults.alloc", async (ctx) => {
    const b = Buffer.alloc(1024 * 1024, 1);
    await new Promise((r) => setTimeout(r, 20));
    record(`${ctx.id}:${b[b.length - 1]}`.split(":")[0]);
    return null;
  });
}
