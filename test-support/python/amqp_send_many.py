"""Send several tasks in order with Python Celery (amqp_app), then wait for all results.

usage: amqp_send_many.py QUEUE CALLS_JSON   where CALLS_JSON = [[name, args, options], ...]
Prints the list of results as JSON.
"""
import json
import sys

from amqp_app import app

queue, calls = sys.argv[1], json.loads(sys.argv[2])
results = [app.send_task(name, args=args, queue=queue, **options) for name, args, options in calls]
print(json.dumps([r.get(timeout=30) for r in results]))
