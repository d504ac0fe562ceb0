"""interop_app on kombu's Redis transport, with transport options from the environment.

  CELERIAC_VISIBILITY_TIMEOUT   kombu's visibility_timeout in seconds (optional)
Run a worker with:  /usr/bin/python3 -m celery -A redis_app worker --pool solo
"""
import os

from interop_app import app  # noqa: F401  (the tasks register on import)

_vt = os.environ.get("CELERIAC_VISIBILITY_TIMEOUT")
if _vt:
    app.conf.broker_transport_options = {"visibility_timeout": float(_vt)}
