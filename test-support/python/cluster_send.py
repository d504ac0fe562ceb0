"""Sends cluster.record tasks with Python Celery (cluster_app), declaring the queue as Celery does.

usage: cluster_send.py PATH CALLS_JSON   where CALLS_JSON = [[tag, priority], ...]
Prints the task ids as JSON, in sending order.
"""
import json
import sys

from cluster_app import QUEUE, app

path, calls = sys.argv[1], json.loads(sys.argv[2])
ids = [app.send_task("cluster.record", args=[path, tag], queue=QUEUE, priority=priority).id for tag, priority in calls]
print(json.dumps(ids))
