import { randomUUID } from "node:crypto";
import { CeleriacError, type Transport } from "@celeriac/core";
import { type ExchangeSpec, type ExchangeSubscription } from "@celeriac/core/transport";

/**
 * celery/events/event.py `get_exchange`: `celeryev` is a durable topic exchange, turned into a
 * fanout on Redis. The worker's sender (packages/worker/src/celery-events.ts) declares the same.
 */
export function celeryEventExchange(transportName: string): ExchangeSpec {
  return { name: "celeryev", type: transportName === "redis" ? "fanout" : "topic", durable: true, autoDelete: false };
}

/** Celery's `event_queue_ttl` (5 s) and `event_queue_expires` (60 s) for a receiver's queue. */
const EVENT_QUEUE_TTL_MS = 5_000;
const EVENT_QUEUE_EXPIRES_MS = 60_000;

const UTF8 = new TextDecoder();

/** Events in one message: a list body is a `task.multi` group (celery/events/receiver.py `_receive`). */
export function decodeEventBody(body: Uint8Array): Record<string, unknown>[] {
  const parsed: unknown = JSON.parse(UTF8.decode(body));
  const list = Array.isArray(parsed) ? parsed : [parsed];
  return list.filter((e): e is Record<string, unknown> => typeof e === "object" && e !== null && !Array.isArray(e));
}

export interface EventReceiverStats {
  messages: number;
  events: number;
  /** Messages that were not JSON events: counted and skipped. */
  malformed: number;
}

/**
 * Listens on `celeryev` like Celery's `EventReceiver` (queue `celeryev.<uuid>`, binding `#`).
 * Delivery is at most once, as for every Celery monitor: events sent while we are away are lost.
 */
export async function receiveCeleryEvents(
  transport: Transport,
  onEvent: (event: Record<string, unknown>) => void,
  stats: EventReceiverStats,
): Promise<ExchangeSubscription> {
  const exchanges = transport.exchanges;
  if (!exchanges) throw new CeleriacError("unsupported", `Celery events need a broker with exchanges (amqp://, redis://); ${transport.name} has none`);
  return exchanges.subscribe(
    celeryEventExchange(transport.name),
    { bindingKey: "#", queue: `celeryev.${randomUUID()}`, messageTtlMs: EVENT_QUEUE_TTL_MS, queueExpiresMs: EVENT_QUEUE_EXPIRES_MS },
    (delivery) => {
      stats.messages++;
      let events: Record<string, unknown>[];
      try {
        events = decodeEventBody(delivery.message.body);
      } catch {
        stats.malformed++;
        return;
      }
      for (const e of events) {
        stats.events++;
        onEvent(e);
      }
    },
  );
}
