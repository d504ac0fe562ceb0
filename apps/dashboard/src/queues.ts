import { CeleriacError } from "@celeriac/core";

/**
 * Queue depth and consumers, read from the broker itself. The Transport contract has no
 * queue-stats call (it is about moving messages), so each broker is asked here with its own
 * client, imported only when that broker is used: amqplib's passive declare on RabbitMQ, LLEN
 * of kombu's priority lists on Redis, a count of visible rows in the SQLite file, SQS's
 * `ApproximateNumberOfMessages` (approximate, as SQS says; priority-tier queues not included).
 */
export interface QueueStats {
  name: string;
  /** Messages waiting (ready) in the broker; null when the broker could not say. */
  messages: number | null;
  /** Consumers the broker knows of (RabbitMQ); null where it has no such notion (Redis, SQLite). */
  consumers: number | null;
  /** False when the queue does not exist (yet) on the broker. */
  exists: boolean;
}

export interface QueueInspector {
  readonly broker: string;
  stats(queues: readonly string[]): Promise<QueueStats[]>;
  close(): Promise<void>;
}

type Importer = (pkg: string) => Promise<unknown>;

async function load<T>(pkg: string, broker: string, importer: Importer): Promise<T> {
  try {
    return (await importer(pkg)) as T;
  } catch (err) {
    throw new CeleriacError(
      "unsupported",
      `queue depths on ${broker} need the ${pkg} package: npm install ${pkg} (${err instanceof Error ? err.message : String(err)})`,
    );
  }
}

/** The inspector for a broker URL, or null for brokers without one (memory://). */
export async function createQueueInspector(brokerUrl: string, importer: Importer = (p) => import(p)): Promise<QueueInspector | null> {
  const scheme = /^([a-z0-9+]+):/i.exec(brokerUrl)?.[1]?.toLowerCase();
  switch (scheme) {
    case "amqp":
    case "amqps":
    case "pyamqp":
      return amqpInspector(brokerUrl.replace(/^pyamqp:/, "amqp:"), importer);
    case "redis":
    case "rediss":
      return redisInspector(brokerUrl, importer);
    case "sqlite":
    case "sqla+sqlite":
      return sqliteInspector(brokerUrl, importer);
    case "sqs":
      return sqsInspector(brokerUrl, importer);
    default:
      return null;
  }
}

interface AmqpChannel {
  checkQueue(q: string): Promise<{ messageCount: number; consumerCount: number }>;
  close(): Promise<void>;
  on(ev: string, fn: (...a: unknown[]) => void): void;
}
interface AmqpConnection {
  createChannel(): Promise<AmqpChannel>;
  close(): Promise<void>;
  on(ev: string, fn: (...a: unknown[]) => void): void;
}

async function amqpInspector(url: string, importer: Importer): Promise<QueueInspector> {
  const amqp = await load<{ connect(url: string): Promise<AmqpConnection>; default?: { connect(url: string): Promise<AmqpConnection> } }>(
    "amqplib",
    "RabbitMQ",
    importer,
  );
  const connect = amqp.connect ?? amqp.default?.connect;
  if (!connect) throw new CeleriacError("unsupported", "amqplib has no connect()");
  let conn: Promise<AmqpConnection> | null = null;
  const connection = (): Promise<AmqpConnection> => {
    conn ??= connect(url).then((c) => {
      c.on("error", () => undefined);
      c.on("close", () => (conn = null));
      return c;
    });
    conn.catch(() => (conn = null));
    return conn;
  };
  return {
    broker: "amqp",
    async stats(queues) {
      const c = await connection();
      return Promise.all(
        queues.map(async (name) => {
          // A passive declare of a missing queue closes its channel with 404: one channel per queue.
          const ch = await c.createChannel();
          ch.on("error", () => undefined);
          try {
            const r = await ch.checkQueue(name);
            await ch.close().catch(() => undefined);
            return { name, messages: r.messageCount, consumers: r.consumerCount, exists: true };
          } catch {
            return { name, messages: 0, consumers: 0, exists: false };
          }
        }),
      );
    },
    async close() {
      const c = conn;
      conn = null;
      if (c) await (await c.catch(() => null))?.close().catch(() => undefined);
    },
  };
}

interface RedisClient {
  pipeline(): { llen(k: string): unknown; exists(k: string): unknown; exec(): Promise<[Error | null, unknown][] | null> };
  quit(): Promise<unknown>;
  on(ev: string, fn: (...a: unknown[]) => void): void;
}

/** kombu's Redis priority steps and separator (`PRIORITY_STEPS`, `sep`), as packages/redis uses them. */
const REDIS_PRIORITY_STEPS = [0, 3, 6, 9];
const REDIS_SEP = "\x06\x16";

async function redisInspector(url: string, importer: Importer): Promise<QueueInspector> {
  const mod = await load<{ default?: new (url: string, o: object) => RedisClient; Redis?: new (url: string, o: object) => RedisClient }>(
    "ioredis",
    "Redis",
    importer,
  );
  const Redis = mod.Redis ?? mod.default;
  if (!Redis) throw new CeleriacError("unsupported", "ioredis has no Redis class");
  const client = new Redis(url, { lazyConnect: false, maxRetriesPerRequest: 1 });
  client.on("error", () => undefined);
  return {
    broker: "redis",
    async stats(queues) {
      const p = client.pipeline();
      for (const q of queues) for (const step of REDIS_PRIORITY_STEPS) p.llen(step === 0 ? q : `${q}${REDIS_SEP}${step}`);
      const replies = (await p.exec()) ?? [];
      return queues.map((name, i) => {
        let messages = 0;
        for (let s = 0; s < REDIS_PRIORITY_STEPS.length; s++) {
          const [err, n] = replies[i * REDIS_PRIORITY_STEPS.length + s] ?? [null, 0];
          if (err) throw CeleriacError.from(err, "connection");
          messages += Number(n);
        }
        // A Redis list exists only while it holds messages: an empty queue and no queue look alike.
        return { name, messages, consumers: null, exists: true };
      });
    },
    async close() {
      await client.quit().catch(() => undefined);
    },
  };
}

interface SqliteDb {
  prepare(sql: string): { get(...a: unknown[]): unknown };
  close(): void;
}

async function sqliteInspector(url: string, importer: Importer): Promise<QueueInspector> {
  const mod = await load<{ default: new (file: string, o: object) => SqliteDb }>("better-sqlite3", "SQLite", importer);
  // SQLAlchemy's form: sqlite:///relative.db, sqlite:////absolute.db (one slash after the authority is dropped).
  const file = url
    .replace(/^(?:sqla\+|sqlalchemy\+)?sqlite:\/\//, "")
    .replace(/[?#].*$/, "")
    .replace(/^\//, "");
  const db = new mod.default(file, { readonly: true, fileMustExist: true });
  // kombu's sqla transport: a message waits while `visible` is true (packages/sqlite/src/schema.ts).
  const count = db.prepare("SELECT COUNT(*) AS n FROM kombu_message m JOIN kombu_queue q ON q.id = m.queue_id WHERE q.name = ? AND m.visible = 1");
  const exists = db.prepare("SELECT 1 AS x FROM kombu_queue WHERE name = ?");
  return {
    broker: "sqlite",
    async stats(queues) {
      return queues.map((name) => ({ name, messages: Number((count.get(name) as { n: number }).n), consumers: null, exists: exists.get(name) !== undefined }));
    },
    async close() {
      db.close();
    },
  };
}

interface SqsModule {
  parseSqsUrl(url: string): { region?: string; endpoint?: string; credentials?: { accessKeyId: string; secretAccessKey: string }; queueNamePrefix?: string };
  sqsQueueName(prefix: string, queue: string): string;
}
interface SqsSdk {
  SQSClient: new (config: object) => { send(cmd: unknown): Promise<Record<string, unknown>>; destroy(): void };
  GetQueueUrlCommand: new (input: object) => unknown;
  GetQueueAttributesCommand: new (input: object) => unknown;
}

async function sqsInspector(url: string, importer: Importer): Promise<QueueInspector> {
  // The URL and queue naming rules are @celeriac/sqs's (kombu's), not written again here.
  const sqs = await load<SqsModule>("@celeriac/sqs", "SQS", importer);
  const sdk = await load<SqsSdk>("@aws-sdk/client-sqs", "SQS", importer);
  const o = sqs.parseSqsUrl(url);
  const client = new sdk.SQSClient({
    region: o.region ?? process.env["AWS_REGION"] ?? process.env["AWS_DEFAULT_REGION"] ?? "us-east-1",
    ...(o.endpoint ? { endpoint: o.endpoint } : {}),
    ...(o.credentials ? { credentials: o.credentials } : {}),
  });
  const urls = new Map<string, string>();
  return {
    broker: "sqs",
    async stats(queues) {
      return Promise.all(
        queues.map(async (name) => {
          const physical = sqs.sqsQueueName(o.queueNamePrefix ?? "", name);
          let queueUrl = urls.get(physical);
          if (!queueUrl) {
            try {
              queueUrl = String((await client.send(new sdk.GetQueueUrlCommand({ QueueName: physical })))["QueueUrl"]);
              urls.set(physical, queueUrl);
            } catch (err) {
              if (/NonExistentQueue|does not exist/i.test(String((err as { name?: string }).name) + String(err)))
                return { name, messages: 0, consumers: null, exists: false };
              throw err;
            }
          }
          const r = await client.send(new sdk.GetQueueAttributesCommand({ QueueUrl: queueUrl, AttributeNames: ["ApproximateNumberOfMessages"] }));
          const attrs = (r["Attributes"] ?? {}) as Record<string, string>;
          return { name, messages: Number(attrs["ApproximateNumberOfMessages"] ?? 0), consumers: null, exists: true };
        }),
      );
    },
    async close() {
      client.destroy();
    },
  };
}
