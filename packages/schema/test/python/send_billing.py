"""Python Celery client for the schema interop test: sends one billing task by name, waits, prints JSON.

    send_billing.py <task name> <queue> <kwargs json>

Prints {"state", "result", "types"} on success (types: Python type name of each result field) or
{"state", "exc_type", "exc_message"} on failure.
"""
import json
import sys

from billing_worker import app

name, queue, kwargs = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
res = app.send_task(name, kwargs=kwargs, queue=queue)
value = res.get(timeout=90, propagate=False)
if res.state == "SUCCESS":
    print(json.dumps({"state": res.state, "result": value, "types": {k: type(v).__name__ for k, v in value.items()}}))
else:
    print(json.dumps({"state": res.state, "exc_type": type(value).__name__, "exc_message": str(value)}))
