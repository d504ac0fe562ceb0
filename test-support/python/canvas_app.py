"""Celery app for Celeriac's canvas interop tests (chain, group, chord, link_error).

Python tasks are named py.* and routed to CELERIAC_PY_QUEUE; TypeScript tasks are named ts.*
and routed to CELERIAC_TS_QUEUE (the TS worker consumes only that one, the Python worker only the
other), so every step provably runs in the language its name says. Each task appends its
language to what it returns, so results show the path a workflow took.

Env: CELERIAC_BROKER_URL, CELERIAC_RESULT_URL (Celery's Redis result backend: chords need it),
CELERIAC_PY_QUEUE, CELERIAC_TS_QUEUE.
Run a worker with:  /usr/bin/python3 -m celery -A canvas_app worker -Q $CELERIAC_PY_QUEUE
"""
import os
import time

from celery import Celery

PY_QUEUE = os.environ.get("CELERIAC_PY_QUEUE", "canvas-py")
TS_QUEUE = os.environ.get("CELERIAC_TS_QUEUE", "canvas-ts")

app = Celery(
    "canvas_app",
    broker=os.environ.get("CELERIAC_BROKER_URL", "memory://"),
    backend=os.environ.get("CELERIAC_RESULT_URL") or None,
)
app.conf.update(
    task_serializer="json",
    result_serializer="json",
    accept_content=["json"],
    enable_utc=True,
    worker_hijack_root_logger=False,
    broker_connection_retry_on_startup=True,
    worker_prefetch_multiplier=1,
    task_routes={"py.*": {"queue": PY_QUEUE}, "ts.*": {"queue": TS_QUEUE}},
)


@app.task(name="py.append")
def append(value, delay=0):
    """value + ["py"], after `delay` seconds (to choose which chord part finishes last)."""
    if delay:
        time.sleep(delay)
    return list(value) + ["py"]


@app.task(name="py.collect")
def collect(results):
    """A chord body: what it got, tagged with the language it ran in."""
    return {"lang": "py", "results": results}


@app.task(name="py.fail")
def fail(message="python failure"):
    raise ValueError(message)


@app.task(name="py.on_error")
def on_error(task_id):
    """An errback called the old way (with the failed task's id): its result proves it ran."""
    return {"lang": "py", "failed": task_id}
