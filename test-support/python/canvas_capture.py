"""Print what Python Celery 5.2.6 publishes for a few canvases, normalised for comparison.

usage: canvas_capture.py KIND   (chain | group | chord | chain_with_group | links)
Prints a JSON list of {"task", "queue", "headers": {group, group_index, root_id, parent_id},
"body": [args, kwargs, embed]} in publish order. Every UUID becomes "<id>" and the `reply_to`
option (a per-process id) is dropped, so the output is stable. No broker or backend is used
(memory:// and cache+memory://); messages are caught by before_task_publish.
"""
import json
import re
import sys

from celery import Celery, chain, chord, group
from celery.signals import before_task_publish

app = Celery("capture", broker="memory://", backend="cache+memory://")
app.conf.task_routes = {"py.*": {"queue": "py-q"}, "ts.*": {"queue": "ts-q"}}
UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


def norm(v):
    if isinstance(v, str) and UUID.match(v):
        return "<id>"
    if isinstance(v, (list, tuple)):
        return [norm(x) for x in v]
    if isinstance(v, dict):
        return {k: norm(x) for k, x in v.items() if k != "reply_to" and not (k in ("root_id", "parent_id") and x is None)}
    return v


out = []


@before_task_publish.connect
def capture(sender=None, body=None, routing_key=None, headers=None, **kw):
    keep = ("group", "group_index", "root_id", "parent_id")
    out.append(norm({"task": sender, "queue": routing_key, "headers": {k: headers.get(k) for k in keep}, "body": list(body)}))


s = app.signature
kind = sys.argv[1]
if kind == "chain":
    chain(s("py.a", args=(1,)), s("ts.b", args=(2,)), s("py.c")).apply_async()
elif kind == "group":
    group(s("py.a", args=(1,)), s("ts.b", args=(2,))).apply_async()
elif kind == "chord":
    chord([s("py.a", args=(1,)), s("ts.b", args=(2,))], s("ts.sum")).apply_async()
elif kind == "chain_with_group":
    chain(s("py.a", args=(1,)), group(s("ts.b"), s("py.c")), s("ts.sum")).apply_async()
elif kind == "links":
    s("ts.fail").apply_async(link=s("py.ok"), link_error=s("py.err"))
else:
    raise SystemExit(f"unknown kind {kind}")
print(json.dumps(out))
