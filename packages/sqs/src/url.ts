import { CeleriacError } from "@celeriac/core";
import { splitUrlCredentials } from "@celeriac/core/transport";
import { createSqsTransport, type SqsTransport, type SqsTransportOptions } from "./transport.js";

type Setter = (o: SqsTransportOptions, raw: string) => void;

function num(key: string, raw: string, scale = 1): number {
  const n = Number(raw);
  if (raw.trim() === "" || !Number.isFinite(n) || n < 0)
    throw new CeleriacError("invalid_argument", `SQS URL: ${key} must be a non-negative number, got ${JSON.stringify(raw)}`);
  return n * scale;
}

function bool(key: string, raw: string): boolean {
  if (/^(1|true|yes|on)$/i.test(raw)) return true;
  if (/^(0|false|no|off)$/i.test(raw)) return false;
  throw new CeleriacError("invalid_argument", `SQS URL: ${key} must be true or false, got ${JSON.stringify(raw)}`);
}

/** Query parameters: kombu's transport option names and units where kombu has one. */
const PARAMS: Record<string, Setter> = {
  region: (o, v) => (o.region = v),
  queue_name_prefix: (o, v) => (o.queueNamePrefix = v),
  visibility_timeout: (o, v) => (o.visibilityTimeoutMs = num("visibility_timeout", v, 1000)),
  wait_time_seconds: (o, v) => (o.waitTimeSeconds = num("wait_time_seconds", v)),
  sqs_base64_encoding: (o, v) => (o.bodyEncoding = bool("sqs_base64_encoding", v) ? "base64" : "json"),
  pollers: (o, v) => (o.pollers = num("pollers", v)),
  dead_letter_queue: (o, v) => (o.deadLetterQueue = v),
  max_receive_count: (o, v) => (o.maxReceiveCount = num("max_receive_count", v)),
  message_group_id: (o, v) => (o.messageGroupId = v),
};

/**
 * Reads a Celery SQS broker URL into transport options, as kombu does:
 * `sqs://` (AWS, credentials from the SDK's default chain), `sqs://KEY:SECRET@` (static
 * credentials, URL-encoded), `sqs://KEY:SECRET@host:port` (an endpoint such as a local emulator;
 * `http` unless `is_secure=true`). Query parameters: `region`, `queue_name_prefix`,
 * `visibility_timeout` (seconds, as kombu), `wait_time_seconds`, `sqs_base64_encoding`,
 * `is_secure`, `pollers`, `dead_letter_queue`, `max_receive_count`, `message_group_id`;
 * anything else is rejected.
 */
export function parseSqsUrl(url: string): SqsTransportOptions {
  // Split as kombu does (urllib's urlsplit): the credentials end at the LAST `@` before the
  // path, so a raw `@` or `:` in the secret key belongs to the secret.
  const parts = splitUrlCredentials(url);
  const tail = parts ? /^\/?(?:\?([^#]*))?$/.exec(parts.rest) : null;
  if (!parts || parts.scheme !== "sqs" || !tail) {
    throw new CeleriacError("invalid_argument", `not an SQS URL: ${JSON.stringify(url)}; expected sqs://[KEY:SECRET@][host[:port]][?options]`);
  }
  const { username: key, password: secret, hostPort: host } = parts;
  const query = tail[1];
  const options: SqsTransportOptions = {};
  if (key) {
    if (secret === undefined) throw new CeleriacError("invalid_argument", "SQS URL: credentials need both an access key id and a secret (sqs://KEY:SECRET@)");
    options.credentials = { accessKeyId: key, secretAccessKey: secret };
  }
  let secure = false;
  for (const [k, raw] of new URLSearchParams(query ?? "")) {
    if (k === "is_secure") {
      secure = bool("is_secure", raw);
      continue;
    }
    const set = PARAMS[k];
    if (!set)
      throw new CeleriacError(
        "invalid_argument",
        `SQS URL: unknown parameter ${JSON.stringify(k)}; known parameters are is_secure, ${Object.keys(PARAMS).join(", ")}`,
      );
    set(options, raw);
  }
  if (host) options.endpoint = `${secure ? "https" : "http"}://${host}`;
  return options;
}

/** Creates a transport from a Celery-style `sqs://` URL; see {@link parseSqsUrl}. */
export function sqsTransportFromUrl(url: string): SqsTransport {
  return createSqsTransport(parseSqsUrl(url));
}
