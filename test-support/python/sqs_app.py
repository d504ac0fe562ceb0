"""interop_app configured for kombu's SQS transport (used by packages/sqs tests and bench).

  CELERIAC_BROKER_URL    sqs://KEY:SECRET@127.0.0.1:PORT (the emulator behind the adapter)
  CELERIAC_RESULT_URL    e.g. file:///tmp/results
  CELERIAC_SQS_OPTIONS   JSON for broker_transport_options (region, wait_time_seconds, ...)
Run a worker with:  /usr/bin/python3 -m celery -A sqs_app worker --pool solo
"""
import json
import os

from interop_app import app

options = {"region": "us-east-1", "wait_time_seconds": 1, "polling_interval": 0.1}
options.update(json.loads(os.environ.get("CELERIAC_SQS_OPTIONS") or "{}"))
app.conf.broker_transport_options = options
