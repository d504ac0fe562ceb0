import { CeleriacError } from "./errors.js";
import { fileResultBackendFromUrl } from "./file-backend.js";
import { createMemoryResultBackend } from "./memory-backend.js";
import { createMemoryTransport } from "./memory-transport.js";
import type { ResultBackend, Transport } from "./transport.js";
import { rawDelimiterInPassword } from "./url-credentials.js";

/**
 * Broker and result-backend URLs choose the package, as in Celery. Core depends on no transport:
 * it imports the package named here only when a URL asks for it, so users install just theirs.
 * A transport package exports `transportFromUrl(url)` and, if it stores results,
 * `resultBackendFromUrl(url)`.
 */
const PACKAGES: Record<string, string> = {
  sqlite: "@celeriac/sqlite",
  "sqla+sqlite": "@celeriac/sqlite",
  amqp: "@celeriac/amqp",
  amqps: "@celeriac/amqp",
  rpc: "@celeriac/amqp",
  redis: "@celeriac/redis",
  rediss: "@celeriac/redis",
  sentinel: "@celeriac/redis",
  sqs: "@celeriac/sqs",
};

function schemeOf(url: string): string {
  const m = /^([a-z][a-z0-9+.-]*):\/\//i.exec(url);
  if (!m?.[1]) throw new CeleriacError("invalid_argument", `not a broker URL: ${JSON.stringify(url)} (expected e.g. sqlite:///celeriac.db, amqp://localhost)`);
  const raw = rawDelimiterInPassword(url);
  if (raw !== null) {
    // Refused before any parser splits it: the part after the delimiter would otherwise be read
    // as a path and echoed (unmasked) by the error that follows.
    const encoded = { "/": "%2F", "?": "%3F", "#": "%23" }[raw];
    throw new CeleriacError(
      "invalid_argument",
      `the password in ${JSON.stringify(url)} holds a raw "${raw}": percent-encode it as ${encoded} (Python Celery needs that too)`,
    );
  }
  return m[1].toLowerCase();
}

export interface UrlModule {
  /** `options`: the package factory's own options besides the URL (checked there, unknown keys rejected). */
  transportFromUrl?: (url: string, options?: Record<string, unknown>) => Transport;
  resultBackendFromUrl?: (url: string) => ResultBackend;
}

/** Imports the package a scheme needs; `importModule` is replaceable for tests. */
export async function loadSchemePackage(
  scheme: string,
  url: string,
  importModule: (pkg: string) => Promise<unknown> = (pkg) => import(pkg),
): Promise<UrlModule> {
  const pkg = PACKAGES[scheme];
  if (!pkg) {
    throw new CeleriacError(
      "invalid_argument",
      `unknown URL scheme "${scheme}" in ${JSON.stringify(url)}; known: ${["memory", "file", ...Object.keys(PACKAGES)].join(", ")}`,
    );
  }
  try {
    return (await importModule(pkg)) as UrlModule;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === "ERR_MODULE_NOT_FOUND" && String((err as Error).message).includes(pkg)) {
      throw new CeleriacError("unsupported", `the ${scheme}:// scheme needs the ${pkg} package: npm install ${pkg}`, { cause: err });
    }
    throw err;
  }
}

/**
 * Imports the package a broker or result-backend URL needs, without creating anything: a command
 * can say "npm install @celeriac/amqp" before it checks its other arguments or opens a file.
 */
export async function loadUrlPackage(url: string): Promise<void> {
  const scheme = schemeOf(url);
  if (scheme !== "memory" && scheme !== "file") await loadSchemePackage(scheme, url);
}

/**
 * The transport for a broker URL: `sqlite:///file.db`, `amqp://...`, `redis://...`, `sqs://...`,
 * `memory://`. `options` are the transport factory's own (e.g. `queueArguments` for amqp://),
 * as Celery's `broker_transport_options` go with `broker_url`; a package whose URL factory takes
 * none refuses them rather than ignore them.
 */
export async function transportFromUrl(url: string, options?: Record<string, unknown>): Promise<Transport> {
  const scheme = schemeOf(url);
  const given = options !== undefined && Object.keys(options).length > 0;
  if (scheme === "memory") {
    if (given) throw new CeleriacError("invalid_argument", `memory:// takes no transport options (got ${Object.keys(options).join(", ")})`);
    return createMemoryTransport();
  }
  const mod = await loadSchemePackage(scheme, url);
  if (!mod.transportFromUrl) throw new CeleriacError("unsupported", `${PACKAGES[scheme]} cannot be used as a broker`);
  if (!given) return mod.transportFromUrl(url);
  if (mod.transportFromUrl.length < 2) {
    throw new CeleriacError("invalid_argument", `${scheme}:// takes no transport options (got ${Object.keys(options).join(", ")})`);
  }
  return mod.transportFromUrl(url, options);
}

/** The result backend for a URL: `sqlite:///file.db`, `file:///dir`, `redis://...`, `rpc://`, `memory://`. */
export async function resultBackendFromUrl(url: string): Promise<ResultBackend> {
  const scheme = schemeOf(url);
  if (scheme === "memory") return createMemoryResultBackend();
  if (scheme === "file") return fileResultBackendFromUrl(url);
  const mod = await loadSchemePackage(scheme, url);
  if (!mod.resultBackendFromUrl) throw new CeleriacError("unsupported", `${PACKAGES[scheme]} has no result backend`);
  return mod.resultBackendFromUrl(url);
}
