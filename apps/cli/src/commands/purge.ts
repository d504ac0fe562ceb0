import { displayUrl, openConnections, type QueueDeclarationFlags } from "../config.js";

/** `celeriac purge`: deletes waiting messages of the given queues, like `celery purge -f`. */
export async function purgeCommand(opts: { broker?: string; queues: string; force?: boolean } & QueueDeclarationFlags): Promise<void> {
  const queues = opts.queues
    .split(",")
    .map((q) => q.trim())
    .filter(Boolean);
  const conn = await openConnections({ broker: opts.broker, resultBackend: "none", queueDeclaration: opts });
  try {
    if (!opts.force) {
      process.stderr.write(`This deletes every waiting task in ${queues.join(", ")} on ${displayUrl(conn.brokerUrl)}. Re-run with -f to confirm.\n`);
      process.exitCode = 1;
      return;
    }
    await conn.transport.connect();
    let total = 0;
    for (const q of queues) total += await conn.transport.purge(q);
    console.log(`Purged ${total} message${total === 1 ? "" : "s"} from ${queues.length} known task queue${queues.length === 1 ? "" : "s"}.`);
  } finally {
    await conn.close();
  }
}
