import { CeleriacError, createClient, type SendOptions } from "@celeriac/core";
import { parseCeleryJson, stringifyCeleryJson } from "@celeriac/core/transport";
import { displayUrl, openConnections, type QueueDeclarationFlags } from "../config.js";

export interface CallOptions extends QueueDeclarationFlags {
  broker?: string;
  resultBackend?: string;
  args: string;
  kwargs: string;
  queue?: string;
  countdown?: string;
  eta?: string;
  expires?: string;
  priority?: string;
  taskId?: string;
  wait?: boolean;
  timeout: string;
}

/**
 * Python's `json.loads`, as `celery call` reads --args/--kwargs: integers stay exact however large
 * (bigint), and NaN, Infinity and -Infinity are accepted.
 */
function parseJson(what: string, text: string): unknown {
  try {
    return parseCeleryJson(text);
  } catch (err) {
    throw new CeleriacError("invalid_argument", `--${what} is not valid JSON: ${(err as Error).message}`);
  }
}

function seconds(flag: string, value: string): number {
  const n = value.trim() === "" ? Number.NaN : Number(value);
  if (!Number.isFinite(n) || n < 0) throw new CeleriacError("invalid_argument", `--${flag} must be a number of seconds, got ${JSON.stringify(value)}`);
  return n;
}

/** `celeriac call NAME`: Celery's `celery call`, plus --wait to print the result. */
export async function callCommand(name: string, opts: CallOptions): Promise<void> {
  const args = parseJson("args", opts.args);
  const kwargs = parseJson("kwargs", opts.kwargs);
  if (!Array.isArray(args)) throw new CeleriacError("invalid_argument", "--args must be a JSON array");
  if (typeof kwargs !== "object" || kwargs === null || Array.isArray(kwargs)) throw new CeleriacError("invalid_argument", "--kwargs must be a JSON object");
  const send: SendOptions = {};
  if (opts.queue) send.queue = opts.queue;
  if (opts.countdown !== undefined) send.countdownMs = seconds("countdown", opts.countdown) * 1000;
  if (opts.eta !== undefined) {
    const eta = new Date(opts.eta);
    if (Number.isNaN(eta.getTime())) throw new CeleriacError("invalid_argument", `--eta is not an ISO time: ${opts.eta}`);
    send.eta = eta;
  }
  if (opts.expires !== undefined) send.expires = seconds("expires", opts.expires) * 1000;
  if (opts.priority !== undefined) send.priority = Number(opts.priority);
  if (opts.taskId) send.taskId = opts.taskId;
  // Checked before anything is sent: a bad --timeout must not leave a task behind.
  const timeoutMs = seconds("timeout", opts.timeout) * 1000;

  const conn = await openConnections({ broker: opts.broker, resultBackend: opts.resultBackend, queueDeclaration: opts });
  try {
    if (opts.wait && !conn.resultBackend) throw new CeleriacError("invalid_argument", "--wait needs a result backend (--result-backend URL), and none is set");
    const client = createClient({ transport: conn.transport, ...(conn.resultBackend ? { resultBackend: conn.resultBackend } : {}) });
    const result = await client.sendTask(name, { ...send, args, kwargs: kwargs as Record<string, unknown> });
    console.log(result.id);
    if (opts.wait) {
      process.stderr.write(`waiting for ${name}[${result.id}] on ${displayUrl(conn.brokerUrl)} ...\n`);
      const value = await result.get({ timeoutMs: timeoutMs });
      // Printed as Python's json.dumps prints what result.get() returns: exact integers, NaN and
      // Infinity as Python writes them (so the line is also what Python's json.loads reads back).
      console.log(stringifyCeleryJson(value));
    }
  } finally {
    await conn.close();
  }
}
