"""Runs kombu's own visibility-timeout restore once (QoS.restore_visible), as a Celery worker's
periodic sweep does, and prints how many unacked entries older than the timeout are left.

kombu 5.2's worker runs that sweep from a 10 s timer and only every 10th call, so in a test we
call it directly instead of waiting ~100 s.

usage: redis_restore.py VISIBILITY_TIMEOUT_SECONDS
"""
import sys
import time

from redis_app import app

app.conf.broker_transport_options = {"visibility_timeout": float(sys.argv[1])}

with app.connection_for_write() as conn:
    channel = conn.default_channel
    channel.qos.restore_visible(num=1000)
    with channel.conn_or_acquire() as client:
        print(client.zcount(channel.unacked_index_key, "-inf", time.time() - channel.visibility_timeout))
