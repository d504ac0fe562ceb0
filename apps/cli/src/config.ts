import { CeleriacError, loadUrlPackage, maskUrl, resultBackendFromUrl, transportFromUrl, type ResultBackend, type Transport } from "@celeriac/core";
import { parseCeleryJson } from "@celeriac/core/transport";

/** The embedded default: a SQLite file in the working directory, no server. */
export const DEFAULT_BROKER_URL = "sqlite:///celeriac.db";

export interface Connections {
  brokerUrl: string;
  backendUrl: string | null;
  transport: Transport;
  resultBackend: ResultBackend | null;
  close(): Promise<void>;
}

export interface ConnectionOptions {
  broker?: string | undefined;
  resultBackend?: string | undefined;
  /** How the broker's queues are declared (`--queue-arguments`, `--max-priority`, `--passive-queues`). */
  queueDeclaration?: QueueDeclarationFlags | undefined;
}

/** The command-line flags that describe a queue declared elsewhere (e.g. by Python's `task_queues`). */
export interface QueueDeclarationFlags {
  /** JSON object, kombu's `Queue(..., queue_arguments=...)`, e.g. `{"x-queue-type":"quorum"}`. */
  queueArguments?: string | undefined;
  /** Celery's `task_queue_max_priority`: declares queues with `x-max-priority`. */
  maxPriority?: string | undefined;
  /** Only check that the queues exist (AMQP passive declare); never create or change them. */
  passiveQueues?: boolean | undefined;
}

/**
 * The flags as transport options, or undefined when none is given. They describe AMQP queue
 * declarations, so another broker refuses them rather than ignore them.
 */
export function queueDeclarationOptions(brokerUrl: string, flags: QueueDeclarationFlags | undefined): Record<string, unknown> | undefined {
  if (!flags) return undefined;
  const out: Record<string, unknown> = {};
  if (flags.queueArguments !== undefined) {
    let args: unknown;
    try {
      args = parseCeleryJson(flags.queueArguments);
    } catch (err) {
      throw new CeleriacError("invalid_argument", `--queue-arguments is not valid JSON: ${(err as Error).message}`);
    }
    if (typeof args !== "object" || args === null || Array.isArray(args)) {
      throw new CeleriacError("invalid_argument", `--queue-arguments must be a JSON object, e.g. '{"x-max-priority": 10}'`);
    }
    out["queueArguments"] = args;
  }
  if (flags.maxPriority !== undefined) {
    const n = Number(flags.maxPriority);
    if (flags.maxPriority.trim() === "" || !Number.isInteger(n) || n < 1 || n > 255) {
      throw new CeleriacError("invalid_argument", `--max-priority must be an integer 1..255, got ${JSON.stringify(flags.maxPriority)}`);
    }
    out["maxPriority"] = n;
  }
  if (flags.passiveQueues) {
    if (out["queueArguments"] !== undefined || out["maxPriority"] !== undefined) {
      throw new CeleriacError("invalid_argument", "--passive-queues declares nothing, so it takes no --queue-arguments or --max-priority");
    }
    out["declare"] = "passive";
  }
  if (Object.keys(out).length === 0) return undefined;
  if (!/^amqps?:\/\//i.test(brokerUrl)) {
    throw new CeleriacError(
      "invalid_argument",
      `--queue-arguments, --max-priority and --passive-queues apply to amqp:// brokers, not ${displayUrl(brokerUrl)}`,
    );
  }
  return out;
}

function connectionUrls(opts: ConnectionOptions): { brokerUrl: string; backendUrl: string | null } {
  // An empty variable counts as unset, as in a shell's `${VAR:-default}`.
  const brokerUrl = opts.broker || process.env["CELERIAC_BROKER_URL"] || DEFAULT_BROKER_URL;
  let backendUrl = opts.resultBackend || process.env["CELERIAC_RESULT_BACKEND"] || null;
  if (backendUrl === null && /^(sqla\+)?sqlite:/.test(brokerUrl)) backendUrl = brokerUrl;
  if (backendUrl === "none" || backendUrl === "") backendUrl = null;
  return { brokerUrl, backendUrl };
}

/** Loads the packages the broker and backend URLs need (and checks the URLs), opening nothing. */
export async function checkConnectionPackages(opts: ConnectionOptions): Promise<void> {
  const { brokerUrl, backendUrl } = connectionUrls(opts);
  await loadUrlPackage(brokerUrl);
  if (backendUrl) await loadUrlPackage(backendUrl);
}

/**
 * Broker from --broker, then CELERIAC_BROKER_URL, then the SQLite default; results from
 * --result-backend, then CELERIAC_RESULT_BACKEND, then the broker's file when it is SQLite
 * (SQLite stores results in the same file, so the default setup needs nothing else).
 */
export async function openConnections(opts: ConnectionOptions): Promise<Connections> {
  const { brokerUrl, backendUrl } = connectionUrls(opts);
  const transport = await transportFromUrl(brokerUrl, queueDeclarationOptions(brokerUrl, opts.queueDeclaration));
  const resultBackend = backendUrl ? await resultBackendFromUrl(backendUrl) : null;
  return {
    brokerUrl,
    backendUrl,
    transport,
    resultBackend,
    async close() {
      await transport.close();
      await resultBackend?.close();
    },
  };
}

/** Redacts the passwords in a URL for printing (every part of a `;` list, as in sentinel:// URLs). */
export function displayUrl(url: string): string {
  return maskUrl(url);
}
