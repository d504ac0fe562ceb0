"""Exchange traffic with kombu itself (Debian's kombu 5.2.4), for the Redis exchange tests.

Broker: CELERIAC_BROKER_URL; kombu transport options (e.g. {"fanout_prefix": false}) as JSON in
CELERIAC_TRANSPORT_OPTIONS (optional).

usage:
  kombu_exchanges.py consume TYPE EXCHANGE ROUTING_KEY QUEUE COUNT TIMEOUT_S
      Binds QUEUE (auto_delete; "-" for a generated name) to EXCHANGE (TYPE fanout, direct or
      topic; not durable, as Celery's pidbox exchanges) with ROUTING_KEY, prints "READY" once
      listening, then one JSON line per message received; exits after COUNT messages or TIMEOUT_S
      seconds. Like Celery's event and reply consumers it does not ack (no_ack=True).
  kombu_exchanges.py publish TYPE EXCHANGE ROUTING_KEY BODY_JSON HEADERS_JSON
      Publishes BODY_JSON (json serializer) with HEADERS_JSON, declaring the exchange first as a
      Celery producer does; prints "SENT".
"""
import json
import os
import socket
import sys
import time

from kombu import Connection, Consumer, Exchange, Producer, Queue


def connection():
    options = json.loads(os.environ.get("CELERIAC_TRANSPORT_OPTIONS") or "{}")
    return Connection(os.environ["CELERIAC_BROKER_URL"], transport_options=options)


def exchange_of(type_, name):
    return Exchange(name, type=type_, durable=False, delivery_mode="transient")


def consume(type_, name, routing_key, queue_name, count, timeout_s):
    exchange = exchange_of(type_, name)
    received = []
    with connection() as conn:
        channel = conn.channel()
        queue = Queue(
            None if queue_name == "-" else queue_name,
            exchange=exchange,
            routing_key=routing_key,
            durable=False,
            auto_delete=True,
        )

        def on_message(body, message):
            received.append(body)
            print(json.dumps({
                "body": body,
                "headers": message.headers,
                "content_type": message.content_type,
                "content_encoding": message.content_encoding,
                "delivery_info": message.delivery_info,
                "properties": message.properties,
            }), flush=True)

        with Consumer(channel, [queue], callbacks=[on_message], no_ack=True, accept=["json"]):
            # kombu sends PSUBSCRIBE on the first poll (MultiChannelPoller), so poll once before
            # saying we listen.
            try:
                conn.drain_events(timeout=0.2)
            except socket.timeout:
                pass
            print("READY", flush=True)
            deadline = time.monotonic() + timeout_s
            while len(received) < count and time.monotonic() < deadline:
                try:
                    conn.drain_events(timeout=0.5)
                except socket.timeout:
                    pass
        channel.close()


def publish(type_, name, routing_key, body_json, headers_json):
    exchange = exchange_of(type_, name)
    with connection() as conn:
        producer = Producer(conn.channel())
        producer.publish(
            json.loads(body_json),
            exchange=exchange,
            routing_key=routing_key,
            declare=[exchange],
            headers=json.loads(headers_json),
            serializer="json",
        )
    print("SENT", flush=True)


if __name__ == "__main__":
    mode = sys.argv[1]
    if mode == "consume":
        consume(sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5], int(sys.argv[6]), float(sys.argv[7]))
    elif mode == "publish":
        publish(*sys.argv[2:7])
    else:
        sys.exit(f"unknown mode {mode!r}")
