"""send_and_wait.py for the amqp_app (queues with x-max-priority).

usage: amqp_send_and_wait.py NAME ARGS_JSON KWARGS_JSON [OPTIONS_JSON]
Prints {"id", "status", "result"} or {"id", "status": "FAILURE", "exc_type", "exc_message"}.
"""
import json
import sys

from amqp_app import app

name, args, kwargs = sys.argv[1], json.loads(sys.argv[2]), json.loads(sys.argv[3])
options = json.loads(sys.argv[4]) if len(sys.argv) > 4 else {}
timeout = options.pop("timeout", 30)
r = app.send_task(name, args=args, kwargs=kwargs, **options)
out = {"id": r.id}
try:
    out["result"] = r.get(timeout=timeout)
    out["status"] = r.status
except Exception as exc:
    out["status"] = r.status
    out["exc_type"] = type(exc).__name__
    out["exc_module"] = type(exc).__module__
    out["exc_message"] = [str(a) for a in exc.args]
print(json.dumps(out))
