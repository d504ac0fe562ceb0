import { CeleriacError } from "@celeriac/core";
import { createAmqpTransport, DEFAULT_AMQP_URL, type AmqpTransport } from "./transport.js";
import { createRpcResultBackend, type RpcResultBackend } from "./rpc-backend.js";

/** `amqp://user:pass@host:port/vhost` or `amqps://...` -> a transport with default options. */
export function amqpTransportFromUrl(url: string): AmqpTransport {
  if (!/^amqps?:\/\//i.test(url)) throw new CeleriacError("invalid_argument", `not an AMQP URL: ${JSON.stringify(url)}`);
  return createAmqpTransport({ url });
}

/**
 * `rpc://` -> the rpc result backend. Celery's rpc:// uses the broker connection; a URL carries
 * no broker, so `rpc://user:pass@host:port/vhost` names it, and a bare `rpc://` uses
 * CELERIAC_BROKER_URL when that is an amqp(s):// URL, else amqp://guest:guest@localhost:5672//.
 * An amqp(s):// URL is accepted too.
 */
export function rpcResultBackendFromUrl(url: string): RpcResultBackend {
  const m = /^(rpc|amqps?):\/\/(.*)$/i.exec(url);
  if (!m) throw new CeleriacError("invalid_argument", `not an rpc:// URL: ${JSON.stringify(url)}`);
  const scheme = m[1]!.toLowerCase();
  const rest = m[2] ?? "";
  if (scheme !== "rpc") return createRpcResultBackend({ url });
  if (rest !== "" && rest !== "/" && rest !== "//") return createRpcResultBackend({ url: `amqp://${rest}` });
  const broker = process.env["CELERIAC_BROKER_URL"];
  return createRpcResultBackend({ url: broker && /^amqps?:\/\//i.test(broker) ? broker : DEFAULT_AMQP_URL });
}
