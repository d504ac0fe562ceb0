import { loadUrlPackage, maskUrl, resultBackendFromUrl, transportFromUrl, type ResultBackend, type Transport } from "@celeriac/core";

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
  const transport = await transportFromUrl(brokerUrl);
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

/** Redacts a password in a URL for printing. */
export function displayUrl(url: string): string {
  return maskUrl(url);
}
