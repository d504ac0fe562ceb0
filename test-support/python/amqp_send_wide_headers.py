"""Send tasks whose AMQP headers hold 64-bit integers (py-amqp writes them with the `L` tag),
interleaved with plain ones, with Python Celery (amqp_app). Nothing waits for results.

usage: amqp_send_wide_headers.py QUEUE TASK_NAME GOOD_COUNT
Prints JSON: {"plain": [ids], "wide": {id: value-as-string}}.
"""
import json
import sys

from amqp_app import app

queue, name, good = sys.argv[1], sys.argv[2], int(sys.argv[3])
WIDE = [2**31, 2**40, 2**53 + 1, 2**63 - 1, -(2**31) - 1, -(2**40), -(2**63)]
plain, wide = [], {}
with app.producer_or_acquire() as producer:
    for i in range(good):
        plain.append(app.send_task(name, args=[], queue=queue, producer=producer).id)
        if i % max(1, good // len(WIDE)) == 0 and len(wide) < len(WIDE):
            value = WIDE[len(wide)]
            r = app.send_task(name, args=[], queue=queue, producer=producer, headers={"x_wide": value, "x_nested": {"n": value, "l": [value, 1]}})
            wide[r.id] = str(value)
print(json.dumps({"plain": plain, "wide": wide}))
