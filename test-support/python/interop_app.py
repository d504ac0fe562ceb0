"""A Python Celery app for Celeriac's interop tests and benchmarks.

Configured from the environment so one module serves every broker:
  CELERIAC_BROKER_URL   e.g. sqla+sqlite:////tmp/x.db
  CELERIAC_RESULT_URL   e.g. file:///tmp/results (optional)
Run a worker with:  /usr/bin/python3 -m celery -A interop_app worker --pool solo
"""
import os
import time

from celery import Celery

app = Celery(
    "interop_app",
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
)

# kombu's virtual transports poll an idle queue every second. kombu's sqla transport hands its
# transport options to SQLAlchemy's create_engine, which rejects `polling_interval`, so the poll
# is shortened on the class instead, to keep tests quick.
if app.conf.broker_url.startswith("sqla+"):
    from kombu.transport.sqlalchemy import Transport as _SqlaTransport

    _SqlaTransport.polling_interval = 0.05


@app.task(name="pytasks.add")
def add(a, b):
    return a + b


@app.task(name="pytasks.echo")
def echo(*args, **kwargs):
    return {"args": list(args), "kwargs": kwargs}


@app.task(name="pytasks.fail")
def fail(message="python failure"):
    raise ValueError(message)


@app.task(name="pytasks.sleep")
def sleep(seconds):
    time.sleep(seconds)
    return seconds


@app.task(name="bench.noop", ignore_result=True)
def noop(*args, **kwargs):
    return None


@app.task(name="pytasks.retry_once", bind=True, max_retries=3)
def retry_once(self, value):
    """Retries once (countdown 0.2 s), then returns value and the retry count."""
    if self.request.retries < 1:
        raise self.retry(countdown=0.2)
    return {"value": value, "retries": self.request.retries}


@app.task(name="pytasks.record")
def record(path, label):
    """Appends label to the file at path, so tests can read the order tasks ran in."""
    with open(path, "a") as f:
        f.write(f"{label}\n")
    return label


@app.task(name="pytasks.now")
def now():
    """The time the task ran, in ms since the epoch (for countdown/eta tests)."""
    return int(time.time() * 1000)


@app.task(name="pytasks.exact_values")
def exact_values():
    """Numbers that a plain JSON.parse would bend: ints beyond 2**53 and 2**63, NaN, +-inf, -0.0."""
    return [2**53 + 1, 2**63 - 1, -(2**100), float("inf"), float("-inf"), float("nan"), -0.0, 5e-324]
