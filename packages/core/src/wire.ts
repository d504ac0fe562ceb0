import type { TaskProperties } from "./envelope.js";

/**
 * A message as a broker carries it, before any codec has looked at the body: opaque body bytes
 * plus AMQP-style headers and properties. Every transport maps its own framing to this shape
 * (AMQP natively; Redis, SQS and SQLite through kombu's JSON envelope, see `kombu-envelope.ts`).
 */
export interface WireMessage {
  body: Uint8Array;
  /** MIME type of the body, e.g. `application/json`. */
  contentType: string;
  /** Character set of the body, `utf-8` for JSON, `binary` for protobuf. */
  contentEncoding: string;
  /** Celery's protocol v2 headers, kept with their wire (snake_case) names and values. */
  headers: Record<string, unknown>;
  properties: WireProperties;
}

/** AMQP basic properties that Celery uses. */
export interface WireProperties {
  correlationId?: string;
  replyTo?: string;
  /** 2 = persistent (Celery's default), 1 = transient. */
  deliveryMode?: number;
  /**
   * Celeriac priority, 0..9, higher is more urgent (RabbitMQ's sense). Transports whose broker
   * reads priority the other way (kombu's Redis) convert at their framing boundary.
   */
  priority?: number;
  /** Per-message TTL in milliseconds, as a string (AMQP's `expiration`). */
  expiration?: string;
}

/** The envelope's properties as a broker carries them; unset priority and expiration stay out. */
export function toWireProperties(p: TaskProperties): WireProperties {
  return {
    correlationId: p.correlationId,
    replyTo: p.replyTo,
    deliveryMode: p.deliveryMode,
    ...(p.priority !== null ? { priority: p.priority } : {}),
    ...(p.expiration !== null ? { expiration: p.expiration } : {}),
  };
}
