import { CeleriacError } from "@celeriac/core";
import { pyStringify } from "@celeriac/core/transport";
import { destinationOf, noReplies, sayReply, withControl, type RemoteControlCliOptions } from "./inspect.js";

export interface RevokeCliOptions extends RemoteControlCliOptions {
  terminate?: boolean;
  signal?: string;
}

/**
 * `celeriac control revoke <id...>`: the workers will not run these tasks (`--terminate` also
 * stops running ones). Prints each worker's answer, as `celery control revoke` does.
 */
export async function controlRevokeCommand(ids: string[], opts: RevokeCliOptions): Promise<void> {
  if (ids.length === 0) throw new CeleriacError("invalid_argument", "control revoke: give at least one task id");
  const replies = await withControl(opts, (control) => {
    const destination = destinationOf(opts);
    return control.revoke(ids, {
      terminate: opts.terminate ?? false,
      ...(opts.signal ? { signal: opts.signal } : {}),
      ...(destination ? { destination } : {}),
      ...(opts.json ? {} : { onReply: sayReply }),
    });
  });
  if (Object.keys(replies).length === 0) return noReplies();
  if (opts.json) process.stdout.write(`${pyStringify(replies)}\n`);
}

/**
 * `celeriac control shutdown`: asks the workers for a warm shutdown. Celery's workers (and ours)
 * stop without replying, so unlike `celery control shutdown` this does not wait for answers that
 * never come; it says what it sent.
 */
export async function controlShutdownCommand(opts: RemoteControlCliOptions): Promise<void> {
  const destination = destinationOf(opts);
  await withControl(opts, (control) => control.shutdown(destination ? { destination } : {}));
  process.stdout.write(`Shutdown sent to ${destination ? destination.join(", ") : "all workers"}.\n`);
}
