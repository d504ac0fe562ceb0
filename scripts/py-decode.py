#!/usr/bin/python3
"""Decode kombu envelopes with real Celery/kombu code and print what Python sees, as JSON.

Used by packages/core/test/golden.test.ts (TS -> Python direction). Reads a JSON list of
envelope texts on stdin. Each text is stored verbatim as a `kombu_message` row of a throwaway
SQLite broker, then received through kombu's SQLAlchemy transport (`basic_get`: kombu parses
the envelope and base64 body itself), deserialized with `Message.decode()` (kombu's serializer
registry and decompression) and handed to Celery's worker `Request`, which parses eta, expires
and time limits the way a worker would.

Python values are printed in a tagged form so that types survive the trip to JS:
int -> {"int": "<digits>"}, float -> {"float": repr}, str/bool/None as themselves,
tuple/list -> list, dict -> {"dict": [[key, value], ...]} (keeps Python's key order), anything
else -> {"other": type name, "repr": repr}.
"""

import json
import os
import sys
import tempfile

from celery import Celery
from celery.worker.request import Request

QUEUE = "golden"


def tag(v):
    if v is None or isinstance(v, (bool, str)):
        return v
    if isinstance(v, int):
        return {"int": str(v)}
    if isinstance(v, float):
        return {"float": repr(v)}
    if isinstance(v, (list, tuple)):
        return [tag(x) for x in v]
    if isinstance(v, dict):
        return {"dict": [[k, tag(x)] for k, x in v.items()]}
    return {"other": type(v).__name__, "repr": repr(v)}


def _noop(*args, **kwargs):  # pragma: no cover - registered, never run
    return None


def main():
    texts = json.load(sys.stdin)
    tmp = tempfile.mkdtemp(prefix="celeriac-pydecode-")
    db = os.path.join(tmp, "broker.db")
    app = Celery("pydecode", broker=f"sqla+sqlite:///{db}", set_as_current=False)
    app.conf.update(result_backend=None, enable_utc=True, timezone="UTC")
    out = []
    try:
        with app.connection_for_read() as conn:
            chan = conn.default_channel
            queue_obj = chan._get_or_create(QUEUE)
            for text in texts:
                # Exactly what the transport's _put does, minus its json.dumps: the text is ours.
                chan.session.add(chan.message_cls(text, queue_obj))
            chan.session.commit()
            for _ in texts:
                msg = chan.basic_get(QUEUE, no_ack=True)
                if msg is None:
                    raise RuntimeError("message vanished from the SQLite queue")
                payload = msg.decode()
                name = msg.headers["task"]
                task = app.tasks.get(name)
                if task is None:
                    # Request only needs a task object for its name and flags.
                    task = app.task(name=name, shared=False)(_noop)
                req = Request(msg, app=app, task=task)
                args, kwargs, embed = payload
                known = {"lang", "task", "id", "shadow", "eta", "expires", "group", "group_index",
                         "retries", "timelimit", "root_id", "parent_id", "argsrepr", "kwargsrepr",
                         "origin", "ignore_result"}
                out.append({
                    "content_type": msg.content_type,
                    "task": req.type,
                    "name": req.name,
                    "id": req.id,
                    "args": tag(req.args),
                    "kwargs": tag(req.kwargs),
                    "callbacks": tag(embed.get("callbacks")),
                    "errbacks": tag(embed.get("errbacks")),
                    "chain": tag(embed.get("chain")),
                    "chord": tag(embed.get("chord")),
                    "eta": req.eta.isoformat() if req.eta else None,
                    "expires": req.expires.isoformat() if req.expires else None,
                    "time_limits": tag(list(req.time_limits)),
                    "retries": tag(msg.headers.get("retries")),
                    "priority": tag(req.delivery_info.get("priority")),
                    "routing_key": req.delivery_info.get("routing_key"),
                    "correlation_id": req.correlation_id,
                    "reply_to": req.reply_to,
                    "root_id": req.root_id,
                    "parent_id": req.parent_id,
                    "group": msg.headers.get("group"),
                    "group_index": tag(msg.headers.get("group_index")),
                    "ignore_result": req.ignore_result,
                    "argsrepr": req.argsrepr,
                    "kwargsrepr": req.kwargsrepr,
                    "expiration": msg.properties.get("expiration"),
                    "extra_headers": tag({k: v for k, v in msg.headers.items() if k not in known}),
                })
    finally:
        for f in os.listdir(tmp):
            os.remove(os.path.join(tmp, f))
        os.rmdir(tmp)
    json.dump(out, sys.stdout, ensure_ascii=True)


if __name__ == "__main__":
    main()
