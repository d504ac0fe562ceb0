"""Publishes tasks with Python Celery without waiting, and prints their ids as JSON.

usage: send_many.py SPEC_JSON
SPEC is a list of {"name", "args", "kwargs", "options"}; prints the list of task ids in order.
The Celery app comes from the module named by CELERIAC_PY_APP (default: interop_app).
"""
import importlib
import json
import os
import sys

app = importlib.import_module(os.environ.get("CELERIAC_PY_APP") or "interop_app").app

ids = []
with app.producer_or_acquire() as producer:
    for spec in json.loads(sys.argv[1]):
        r = app.send_task(spec["name"], args=spec.get("args", []), kwargs=spec.get("kwargs", {}),
                          producer=producer, **spec.get("options", {}))
        ids.append(r.id)
print(json.dumps(ids))
