"""Sends one task with Python Celery (redis_app) and prints its result as JSON once ready.

usage: redis_call.py NAME ARGS_JSON QUEUE
"""
import json
import sys

from redis_app import app

r = app.send_task(sys.argv[1], args=json.loads(sys.argv[2]), queue=sys.argv[3])
print(json.dumps(r.get(timeout=30)))
