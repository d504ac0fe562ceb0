"""Start a canvas with Python Celery and print what came back, as JSON.

usage: canvas_send.py KIND [ARG]
  chain              chain(py.append(["py-client"]), ts.append, py.append) -> {"id", "result"}
  group              group(py.append(["a"]), ts.append(["b"]), py.append(["c"])), saved -> {"id", "ids", "result"}
  restore GROUP_ID   GroupResult.restore(GROUP_ID).get() -> {"ids", "result"}
  chord              chord([py.append(["p0"], 0.4), ts.append(["t1"]), py.append(["p2"])], ts.collect) -> {"id", "result"}
The app is canvas_app (routes py.* and ts.* to their queues).
"""
import json
import sys

from celery import chain, chord, group
from celery.result import GroupResult

from canvas_app import app

kind = sys.argv[1]
sig = app.signature
timeout = 30
out = {}
if kind == "chain":
    r = chain(sig("py.append", args=(["py-client"],)), sig("ts.append"), sig("py.append")).apply_async()
    out = {"id": r.id, "result": r.get(timeout=timeout)}
elif kind == "group":
    r = group(sig("py.append", args=(["a"],)), sig("ts.append", args=(["b"],)), sig("py.append", args=(["c"],))).apply_async()
    r.save()
    out = {"id": r.id, "ids": [c.id for c in r.results], "result": r.get(timeout=timeout)}
elif kind == "restore":
    r = GroupResult.restore(sys.argv[2], app=app)
    out = {"ids": [c.id for c in r.results], "result": r.get(timeout=timeout)} if r else {"ids": None}
elif kind == "chord":
    header = [sig("py.append", args=(["p0"], 0.4)), sig("ts.append", args=(["t1"],)), sig("py.append", args=(["p2"],))]
    r = chord(header, sig("ts.collect")).apply_async()
    out = {"id": r.id, "result": r.get(timeout=timeout)}
else:
    raise SystemExit(f"unknown kind {kind}")
print(json.dumps(out))
