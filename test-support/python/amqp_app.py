"""interop_app plus what the AMQP tests need: queue priorities and a task that reports its request.

Env: CELERIAC_MAX_PRIORITY (task_queue_max_priority, so queues match the TypeScript side's
x-max-priority), CELERIAC_PREFETCH_MULTIPLIER (worker_prefetch_multiplier).
Run a worker with:  /usr/bin/python3 -m celery -A amqp_app worker --pool solo
"""
import os

from interop_app import app

if os.environ.get("CELERIAC_MAX_PRIORITY"):
    app.conf.task_queue_max_priority = int(os.environ["CELERIAC_MAX_PRIORITY"])
    app.conf.task_default_priority = 0
app.conf.worker_prefetch_multiplier = int(os.environ.get("CELERIAC_PREFETCH_MULTIPLIER", "4"))


@app.task(name="amqp.request_info", bind=True)
def request_info(self):
    """What the worker read from the message headers, to check the field-table encoding."""
    r = self.request
    return {
        "retries": r.retries,
        "timelimit": list(r.timelimit) if r.timelimit else None,
        "priority": (r.delivery_info or {}).get("priority"),
        "x_small": getattr(r, "x_small", None),
        "x_big": getattr(r, "x_big", None),
        "x_neg": getattr(r, "x_neg", None),
        "x_nested": getattr(r, "x_nested", None),
    }
