"""Reads results with Python Celery's Redis backend and prints them as JSON.

usage: redis_results.py IDS_JSON [TIMEOUT] [GROUP_ID]
Prints [{"id", "status", "result"} | {"id", "status", "exc_type", "exc_message"}]; with GROUP_ID
also restores that group (GroupResult.restore) and prints {"results": [...], "group": [ids]}.
"""
import json
import sys

from redis_app import app

ids = json.loads(sys.argv[1])
timeout = float(sys.argv[2]) if len(sys.argv) > 2 else 30
out = []
for task_id in ids:
    r = app.AsyncResult(task_id)
    item = {"id": task_id}
    try:
        item["result"] = r.get(timeout=timeout)
        item["status"] = r.status
    except Exception as exc:
        item["status"] = r.status
        item["exc_type"] = type(exc).__name__
        item["exc_message"] = [str(a) for a in exc.args]
    out.append(item)
if len(sys.argv) > 3:
    g = app.GroupResult.restore(sys.argv[3])
    print(json.dumps({"results": out, "group": [c.id for c in g.results] if g else None}))
else:
    print(json.dumps(out))
