#!/usr/bin/python3
"""Capture golden task messages from real Python Celery (Debian python3-celery 5.2.6, kombu 5.2.4).

Celery publishes each case through kombu's SQLAlchemy transport into a throwaway SQLite file; the
`kombu_message.payload` column holds the kombu JSON envelope exactly as kombu serialized it (the
same text the Redis and SQS transports carry). Each case becomes fixtures/golden/<name>.json with:

  call          the Python call that produced the message
  envelope_text the envelope verbatim
  python        what Celery/kombu read back from it: repr() of args, kwargs and the embed, and
                the request fields Celery's worker `Request` derives (eta, expires, time limits)
  flags         properties of the body that JavaScript cannot reproduce byte for byte (integral
                floats such as 3.0, integer-like dict keys, which JS objects reorder)

Re-runnable: `npm run fixtures:capture`. Ids are fixed where Celery lets the caller choose them;
countdown-based ETAs and the `origin` header naturally change between runs.
"""

import datetime
import decimal
import json
import os
import sqlite3
import sys
import tempfile
import uuid

from celery import Celery, chain, group, signature

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "fixtures", "golden")
QUEUE = "golden"


def make_app(db, protocol=2):
    app = Celery("golden", broker=f"sqla+sqlite:///{db}", set_as_current=False)
    app.conf.update(
        task_default_queue=QUEUE,
        task_protocol=protocol,
        result_backend=None,
        enable_utc=True,
        timezone="UTC",
        broker_connection_retry=False,
    )

    @app.task(name="golden.echo", shared=False)
    def echo(*args, **kwargs):  # pragma: no cover - never run, only published
        return args, kwargs

    @app.task(name="golden.add", shared=False)
    def add(x, y):  # pragma: no cover
        return x + y

    return app


def read_payloads(db):
    con = sqlite3.connect(db)
    try:
        rows = con.execute("SELECT payload FROM kombu_message ORDER BY id").fetchall()
        con.execute("DELETE FROM kombu_message")
        con.commit()
    finally:
        con.close()
    return [r[0] for r in rows]


def scan_flags(value, flags):
    """Flags the parts of a decoded body that JS cannot write back byte for byte."""
    if isinstance(value, bool) or value is None:
        return
    if isinstance(value, float):
        if value == value and value not in (float("inf"), float("-inf")) and value.is_integer():
            # 3.0 is a JS number 3 and re-encodes as 3; 1e16 and beyond stay floats in JS too.
            if abs(value) < 2**53 and not (value == 0 and str(value).startswith("-")):
                flags.add("integral_float")
    elif isinstance(value, dict):
        for k, v in value.items():
            if k.isdigit() and str(int(k)) == k and int(k) < 2**32 - 1:
                flags.add("integer_like_key")
            scan_flags(v, flags)
    elif isinstance(value, list):
        for v in value:
            scan_flags(v, flags)


def python_view(app, envelope_text):
    """Decodes the envelope the way a Celery worker would: kombu's Message, then Request."""
    from celery.worker.request import Request
    from celery.worker.strategy import hybrid_to_proto2

    # kombu's own virtual-transport Message: it undoes the base64 body encoding, and decode()
    # runs the compression and serializer registries, as on a worker.
    with app.connection_for_read() as conn:
        msg = conn.default_channel.message_to_python(json.loads(envelope_text))
        payload = msg.decode()
    headers = msg.headers or {}

    view = {"payload_repr": repr(payload)}
    task_name = headers.get("task") or payload.get("task")
    task = app.tasks.get(task_name) or app.tasks["golden.echo"]
    if isinstance(payload, dict):
        # What the worker strategy does with a dict body (protocol v1 or hybrid) in Celery 5.2.
        body3, headers2, _decoded, _utc = hybrid_to_proto2(msg, payload)
        req = Request(msg, app=app, task=task, body=body3, headers=headers2, decoded=True)
    else:
        body3 = payload
        req = Request(msg, app=app, task=task)
    args, kwargs, embed = body3
    rd = req.request_dict
    view.update(
        args_repr=repr(args),
        kwargs_repr=repr(kwargs),
        embed_repr=repr(embed),
        arg_types=[type(a).__name__ for a in args],
        # The fields Celery's worker Request derives from the message.
        request={
            "task": req.type,
            "name": req.name,
            "id": req.id,
            "eta": req.eta.isoformat() if req.eta else None,
            "expires": req.expires.isoformat() if req.expires else None,
            "time_limits": list(req.time_limits),
            "retries": rd.get("retries"),
            "group": rd.get("group"),
            "group_index": rd.get("group_index"),
            "root_id": req.root_id,
            "parent_id": req.parent_id,
            "ignore_result": req.ignore_result,
            "priority": req.delivery_info.get("priority"),
            "correlation_id": req.correlation_id,
            "reply_to": req.reply_to,
            "argsrepr": req.argsrepr,
            "kwargsrepr": req.kwargsrepr,
            "origin": rd.get("origin"),
            "shadow": rd.get("shadow"),
            "callbacks": len(embed.get("callbacks") or []),
            "errbacks": len(embed.get("errbacks") or []),
            "chain": len(embed.get("chain") or []),
        },
    )
    flags = set()
    scan_flags(payload, flags)
    return view, sorted(flags)


FIXED_ETA = datetime.datetime(2030, 1, 2, 3, 4, 5, 678901, tzinfo=datetime.timezone.utc)
FIXED_EXPIRES = datetime.datetime(2030, 1, 3, 0, 0, 0, tzinfo=datetime.timezone.utc)


def cases(app):
    echo = app.tasks["golden.echo"]
    add = app.tasks["golden.add"]
    tid = lambda n: f"00000000-0000-4000-8000-{n:012d}"  # noqa: E731
    return [
        ("basic-add", "add.apply_async((2, 3), task_id=ID)",
         lambda: add.apply_async((2, 3), task_id=tid(1))),
        ("scalars", "echo.apply_async((1, -1, 0, True, False, None, 'x', ''), {'n': None}, task_id=ID)",
         lambda: echo.apply_async((1, -1, 0, True, False, None, "x", ""), {"n": None}, task_id=tid(2))),
        ("big-ints", "echo.apply_async((2**70, -2**63, 2**63-1, 2**53, 2**53+1, -(2**53)), {'big': 10**30}, task_id=ID)",
         lambda: echo.apply_async((2**70, -2**63, 2**63 - 1, 2**53, 2**53 + 1, -(2**53)), {"big": 10**30}, task_id=tid(3))),
        ("floats", "echo.apply_async((0.1, 1e-07, 1e16, 1.5e300, 2.5, -0.0, 123456.789, 1e-05, 0.0001, 1e15 + 0.5, 5e-324, 1.7976931348623157e308), task_id=ID)",
         lambda: echo.apply_async((0.1, 1e-07, 1e16, 1.5e300, 2.5, -0.0, 123456.789, 1e-05, 0.0001, 1e15 + 0.5, 5e-324, 1.7976931348623157e308), task_id=tid(4))),
        ("integral-floats", "echo.apply_async((3.0, 0.0, -2.0, 1e15), {'f': 10.0}, task_id=ID)",
         lambda: echo.apply_async((3.0, 0.0, -2.0, 1e15), {"f": 10.0}, task_id=tid(5))),
        ("non-finite", "echo.apply_async((float('nan'), float('inf'), float('-inf')), task_id=ID)",
         lambda: echo.apply_async((float("nan"), float("inf"), float("-inf")), task_id=tid(6))),
        ("unicode", "echo.apply_async(('héllo', '日本語', '😀 emoji 𝄞', 'quote\"back\\\\slash\\n\\t\\x01\\x7f\\u2028', '\\x00'), {'clé': 'välue', '😀': ['ß']}, task_id=ID)",
         lambda: echo.apply_async(("héllo", "日本語", "😀 emoji 𝄞", "quote\"back\\slash\n\t\x01\x7f\u2028", "\x00"), {"clé": "välue", "😀": ["ß"]}, task_id=tid(7))),
        ("nested", "echo.apply_async(([1, [2, [3, {'a': [None, {}]}]]], {'x': {'y': {'z': []}}}), {'deep': {'l': [[[]]], 't': (1, 2)}}, task_id=ID)",
         lambda: echo.apply_async(([1, [2, [3, {"a": [None, {}]}]]], {"x": {"y": {"z": []}}}), {"deep": {"l": [[[]]], "t": (1, 2)}}, task_id=tid(8))),
        ("integer-like-keys", "echo.apply_async(({'b': 1, '2': 2, '10': 3},), {'m': {'z': 0, '1': 1}}, task_id=ID)",
         lambda: echo.apply_async(({"b": 1, "2": 2, "10": 3},), {"m": {"z": 0, "1": 1}}, task_id=tid(9))),
        ("datetimes-uuid-decimal",
         "echo.apply_async((datetime(2024,5,6,7,8,9,123456,tzinfo=utc), datetime(2024,5,6,7,8,9), date(2024,5,6), time(7,8,9), UUID('12345678-1234-5678-1234-567812345678'), Decimal('3.14159265358979323846')), {'when': datetime(2024,1,1,tzinfo=utc)}, task_id=ID)",
         lambda: echo.apply_async((
             datetime.datetime(2024, 5, 6, 7, 8, 9, 123456, tzinfo=datetime.timezone.utc),
             datetime.datetime(2024, 5, 6, 7, 8, 9),
             datetime.date(2024, 5, 6),
             datetime.time(7, 8, 9),
             uuid.UUID("12345678-1234-5678-1234-567812345678"),
             decimal.Decimal("3.14159265358979323846"),
         ), {"when": datetime.datetime(2024, 1, 1, tzinfo=datetime.timezone.utc)}, task_id=tid(10))),
        ("countdown-expires-priority", "add.apply_async((1, 2), countdown=10, expires=60, priority=7, task_id=ID)",
         lambda: add.apply_async((1, 2), countdown=10, expires=60, priority=7, task_id=tid(11))),
        ("eta-expires-absolute", "add.apply_async((1, 2), eta=datetime(2030,1,2,3,4,5,678901,utc), expires=datetime(2030,1,3,utc), task_id=ID)",
         lambda: add.apply_async((1, 2), eta=FIXED_ETA, expires=FIXED_EXPIRES, task_id=tid(12))),
        ("retries-timelimits", "add.apply_async((1, 2), retries=3, time_limit=30, soft_time_limit=20.5, task_id=ID)",
         lambda: add.apply_async((1, 2), retries=3, time_limit=30, soft_time_limit=20.5, task_id=tid(13))),
        ("soft-limit-only", "add.apply_async((1, 2), soft_time_limit=5, task_id=ID)",
         lambda: add.apply_async((1, 2), soft_time_limit=5, task_id=tid(14))),
        ("link-link-error", "add.apply_async((2, 3), link=[echo.s(1), add.s(7).set(queue='q2')], link_error=echo.si('err', k=1), task_id=ID)",
         lambda: add.apply_async((2, 3), link=[echo.s(1), add.s(7).set(queue="q2")], link_error=echo.si("err", k=1), task_id=tid(15))),
        ("chain", "chain(add.s(2, 3), add.s(10), echo.si('done').set(task_id=ID3)).apply_async(task_id=ID)",
         lambda: chain(add.s(2, 3).set(task_id=tid(16)), add.s(10).set(task_id=tid(17)), echo.si("done").set(task_id=tid(18))).apply_async()),
        ("group", "group(add.s(1, 2), add.s(3, 4)).apply_async(task_id=GID)  (both members captured)",
         lambda: group(add.s(1, 2).set(task_id=tid(19)), add.s(3, 4).set(task_id=tid(20))).apply_async(task_id=tid(21))),
        ("shadow", "add.apply_async((1, 2), shadow='display.name', task_id=ID)",
         lambda: add.apply_async((1, 2), shadow="display.name", task_id=tid(22))),
        ("ignore-result", "add.apply_async((1, 2), ignore_result=True, task_id=ID)",
         lambda: add.apply_async((1, 2), ignore_result=True, task_id=tid(23))),
        ("custom-headers", "add.apply_async((1, 2), headers={'x-tenant': 'acme', 'x-n': 42, 'x-list': [1, 'a']}, task_id=ID)",
         lambda: add.apply_async((1, 2), headers={"x-tenant": "acme", "x-n": 42, "x-list": [1, "a"]}, task_id=tid(24))),
        ("parent-root", "add.apply_async((1, 2), root_id=R, parent_id=P, task_id=ID)",
         lambda: add.apply_async((1, 2), root_id=tid(90), parent_id=tid(91), task_id=tid(25))),
        ("compressed", "echo.apply_async(('x' * 200,), compression='zlib', task_id=ID)",
         lambda: echo.apply_async(("x" * 200,), compression="zlib", task_id=tid(26))),
        ("signature-kwargs", "echo.apply_async(kwargs={'sig': echo.s(1, a=2)}, task_id=ID)",
         lambda: echo.apply_async(kwargs={"sig": dict(echo.s(1, a=2))}, task_id=tid(27))),
    ]


def capture(app, name, call, fn, protocol):
    fn()
    payloads = read_payloads(app._golden_db)
    if not payloads:
        raise RuntimeError(f"{name}: nothing published")
    written = []
    for i, text in enumerate(payloads):
        view, flags = python_view(app, text)
        fixture = {
            "name": name if len(payloads) == 1 else f"{name}-{i}",
            "call": call,
            "celery_version": __import__("celery").__version__,
            "kombu_version": __import__("kombu").__version__,
            "protocol": protocol,
            "envelope_text": text,
            "python": view,
            "flags": flags,
        }
        path = os.path.join(OUT, fixture["name"] + ".json")
        with open(path, "w", encoding="utf-8") as f:
            json.dump(fixture, f, indent=2, ensure_ascii=False)
            f.write("\n")
        written.append(path)
    return written


def main():
    os.makedirs(OUT, exist_ok=True)
    for old in os.listdir(OUT):
        if old.endswith(".json"):
            os.remove(os.path.join(OUT, old))
    tmp = tempfile.mkdtemp(prefix="celeriac-golden-")
    total = 0
    try:
        db = os.path.join(tmp, "broker.db")
        app = make_app(db)
        app._golden_db = db
        for name, call, fn in cases(app):
            total += len(capture(app, name, call, fn, 2))
        # Protocol v1: the same app with task_protocol=1 (still supported by Celery 5.2's worker).
        db1 = os.path.join(tmp, "broker-v1.db")
        app1 = make_app(db1, protocol=1)
        app1._golden_db = db1
        e1 = app1.tasks["golden.echo"]
        total += len(capture(app1, "v1-basic", "echo.apply_async((1, 'a'), {'k': 2}, countdown=5, expires=FIXED, task_id=ID) [task_protocol=1]",
                             lambda: e1.apply_async((1, "a"), {"k": 2}, countdown=5, expires=FIXED_EXPIRES,
                                                    task_id="00000000-0000-4000-8000-000000000100"), 1))
        total += len(capture(app1, "v1-link", "echo.apply_async((1,), link=echo.s(), time_limit=9, task_id=ID) [task_protocol=1]",
                             lambda: e1.apply_async((1,), link=e1.s(), time_limit=9,
                                                    task_id="00000000-0000-4000-8000-000000000101"), 1))
    finally:
        for f in os.listdir(tmp):
            os.remove(os.path.join(tmp, f))
        os.rmdir(tmp)
    print(f"wrote {total} fixtures to {os.path.relpath(OUT, ROOT)}", file=sys.stderr)


if __name__ == "__main__":
    main()
