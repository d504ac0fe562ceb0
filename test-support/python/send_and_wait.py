"""Send one task by name with Python Celery and print its outcome as JSON.

usage: send_and_wait.py NAME ARGS_JSON KWARGS_JSON [OPTIONS_JSON]
Prints {"id", "status", "result"} or
{"id", "status": "FAILURE", "exc_type", "exc_message", "exc_module"}.
The Celery app comes from the module named by CELERIAC_PY_APP (default: interop_app).
"""
import importlib
import json
import os
import sys

app = importlib.import_module(os.environ.get("CELERIAC_PY_APP") or "interop_app").app

name, args, kwargs = sys.argv[1], json.loads(sys.argv[2]), json.loads(sys.argv[3])
options = json.loads(sys.argv[4]) if len(sys.argv) > 4 else {}
timeout = options.pop("timeout", 30)
r = app.send_task(name, args=args, kwargs=kwargs, **options)
out = {"id": r.id}
try:
    out["result"] = r.get(timeout=timeout)
    out["status"] = r.status
except Exception as exc:  # the re-raised task failure is what we report
    out["status"] = r.status
    out["exc_type"] = type(exc).__name__
    out["exc_message"] = [str(a) for a in exc.args]
    out["exc_module"] = type(exc).__module__
print(json.dumps(out))
