"""interop_app on kombu's Redis transport, with transport options from the environment.

  CELERIAC_VISIBILITY_TIMEOUT   kombu's visibility_timeout in seconds (optional)
  CELERIAC_MASTER_NAME          kombu's master_name, for sentinel:// broker and result URLs (optional)
Run a worker with:  /usr/bin/python3 -m celery -A redis_app worker --pool solo
"""
import os

from interop_app import app  # noqa: F401  (the tasks register on import)

_options = {}
_vt = os.environ.get("CELERIAC_VISIBILITY_TIMEOUT")
if _vt:
    _options["visibility_timeout"] = float(_vt)
_master = os.environ.get("CELERIAC_MASTER_NAME")
if _master:
    # As Celery documents Sentinel: the name in the transport options of the broker and of the
    # sentinel:// result backend.
    _options["master_name"] = _master
    app.conf.result_backend_transport_options = {"master_name": _master}
if _options:
    app.conf.broker_transport_options = _options


@app.task(name="redis.slow_record", acks_late=True)
def slow_record(path, label, seconds):
    """Appends "start <label> py", sleeps, appends "done <label> py": a kill between the two
    lines is a kill mid-task. Late ack, so a killed worker's task is restored, not lost."""
    import time

    with open(path, "a") as f:
        f.write(f"start {label} py\n")
    time.sleep(seconds)
    with open(path, "a") as f:
        f.write(f"done {label} py\n")
    return label
