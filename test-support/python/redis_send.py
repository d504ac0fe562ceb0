"""Publishes tasks with Python Celery without waiting, and prints their ids as JSON.

usage: redis_send.py SPEC_JSON
SPEC is a list of {"name", "args", "kwargs", "options"}; prints the list of task ids in order.
"""
import json
import sys

from redis_app import app

ids = []
with app.producer_or_acquire() as producer:
    for spec in json.loads(sys.argv[1]):
        r = app.send_task(spec["name"], args=spec.get("args", []), kwargs=spec.get("kwargs", {}),
                          producer=producer, **spec.get("options", {}))
        ids.append(r.id)
print(json.dumps(ids))
