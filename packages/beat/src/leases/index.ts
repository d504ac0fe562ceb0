import { CeleriacError } from "@celeriac/core";
import type { LeaderLease, LeaseOptions } from "../lease.js";

/**
 * The lease for a broker URL, on that broker: a row in the SQLite file, a Redis key,
 * RabbitMQ's single-active-consumer queue, an SQS FIFO token kept in flight. Each kind's
 * client library is imported only when its URL is used.
 */
export async function leaseFromUrl(url: string, options: LeaseOptions = {}): Promise<LeaderLease> {
  const scheme = /^([a-z0-9+]+):/i.exec(url)?.[1]?.toLowerCase();
  if (scheme === "sqlite" || scheme === "sqla+sqlite" || scheme === "sqlalchemy+sqlite") {
    let parse: (u: string) => { path: string };
    try {
      parse = (await import("@celeriac/sqlite")).parseSqliteUrl;
    } catch (err) {
      throw new CeleriacError("unsupported", "a sqlite:// broker needs @celeriac/sqlite", { cause: err });
    }
    const { path } = parse(url);
    if (path === ":memory:") throw new CeleriacError("invalid_argument", "beat: an in-memory SQLite broker cannot be shared by replicas; use a file");
    const { createSqliteLease } = await import("./sqlite.js");
    return createSqliteLease({ ...options, path });
  }
  if (scheme === "redis" || scheme === "rediss") {
    const { createRedisLease } = await import("./redis.js");
    return createRedisLease({ ...options, url });
  }
  if (scheme === "amqp" || scheme === "amqps") {
    const { createAmqpLease } = await import("./amqp.js");
    return createAmqpLease({ ...options, url });
  }
  if (scheme === "sqs") {
    const { createSqsLease } = await import("./sqs.js");
    return createSqsLease({ ...options, url });
  }
  throw new CeleriacError("unsupported", `beat: no leader election for ${JSON.stringify(scheme ?? url)} brokers (supported: sqlite, redis, amqp, sqs)`);
}
