import { CeleriacError } from "@celeriac/core";
import { createAmqpTransport, DEFAULT_AMQP_URL, type AmqpTransport, type AmqpTransportOptions } from "./transport.js";
import { createRpcResultBackend, type RpcResultBackend } from "./rpc-backend.js";

/**
 * `amqp://user:pass@host:port/vhost` or `amqps://...` (or a failover list, `amqp://h1;amqp://h2`)
 * -> a transport; `options` are `createAmqpTransport`'s besides `url`.
 */
// `options` has no default value on purpose: core counts the parameters to see that options are taken.
export function amqpTransportFromUrl(url: string, options?: Omit<AmqpTransportOptions, "url">): AmqpTransport {
  if (!/^amqps?:\/\//i.test(url)) throw new CeleriacError("invalid_argument", `not an AMQP URL: ${JSON.stringify(url)}`);
  if (options && "url" in options) throw new CeleriacError("invalid_argument", "amqpTransportFromUrl: the URL is the first argument, not an option");
  return createAmqpTransport({ ...options, url });
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
