"""Publish rate of Python Celery's apply_async over amqp:// (for bench/amqp-bench.mjs).

usage: amqp_bench_publish.py QUEUE N     prints {"n": N, "secs": seconds}
"""
import json
import sys
import time

from interop_app import app, noop

queue, n = sys.argv[1], int(sys.argv[2])
noop.apply_async(args=[0], queue=queue)  # connect and declare outside the clock
start = time.perf_counter()
for i in range(n):
    noop.apply_async(args=[i], queue=queue)
secs = time.perf_counter() - start
print(json.dumps({"n": n, "secs": secs}))
