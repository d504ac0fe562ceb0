"""interop_app with one queue declared as a Python user declares it, for the clustered-broker tests.

Env: CELERIAC_QUEUE (the queue), CELERIAC_QUEUE_ARGS (JSON, kombu's queue_arguments, e.g.
{"x-queue-type": "quorum"} or {"x-max-priority": 10}), CELERIAC_PY_LOCAL_QOS=1 (see below).
Run a worker with:  /usr/bin/python3 -m celery -A cluster_app worker --pool solo -Q $CELERIAC_QUEUE
"""
import json
import os

from kombu import Exchange, Queue

from interop_app import app

QUEUE = os.environ.get("CELERIAC_QUEUE", "celery")
QUEUE_ARGS = json.loads(os.environ.get("CELERIAC_QUEUE_ARGS") or "{}")

# As Celery's docs declare a queue with arguments: an exchange and routing key of the queue's name.
app.conf.task_queues = [Queue(QUEUE, Exchange(QUEUE, type="direct"), routing_key=QUEUE, queue_arguments=QUEUE_ARGS)]
app.conf.task_default_queue = QUEUE
app.conf.worker_prefetch_multiplier = 1

# Celery 5.2.6 (celery/worker/consumer/tasks.py) sets `basic.qos` with global=True whenever
# `not connection.qos_semantics_matches_spec`, which kombu 5.2.4's pyamqp transport answers False
# for every RabbitMQ >= 3.3; quorum queues refuse to be consumed on a channel with global QoS.
# Celery 5.5 has `worker_detect_quorum_queues` for this; on 5.2.6 the only switch is to tell
# kombu that the server follows the spec, which makes the worker's QoS per consumer.
if os.environ.get("CELERIAC_PY_LOCAL_QOS") == "1":
    from kombu.transport.pyamqp import Transport as _PyamqpTransport

    _PyamqpTransport.qos_semantics_matches_spec = lambda self, connection: True


@app.task(name="cluster.record", acks_late=True, ignore_result=True)
def record(path, tag=None):
    """Appends "<task id> <tag> py" to the file: which tasks ran, where, and in what order."""
    with open(path, "a") as f:
        f.write(f"{record.request.id} {tag if tag is not None else '-'} py\n")
