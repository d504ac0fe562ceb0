"""Publishes tasks with Python Celery (interop_app) without waiting, and prints their ids as JSON.

usage: dashboard_send.py SPEC_JSON
SPEC is a list of {"name", "args", "kwargs", "queue"}; prints the list of task ids in order.
"""
import json
import sys

from interop_app import app

ids = []
with app.producer_or_acquire() as producer:
    for spec in json.loads(sys.argv[1]):
        r = app.send_task(spec["name"], args=spec.get("args", []), kwargs=spec.get("kwargs", {}),
                          queue=spec.get("queue"), producer=producer)
        ids.append(r.id)
print(json.dumps(ids))
