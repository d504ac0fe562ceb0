"""Feeds Celery's own event State from Celery's own Receiver, for Celeriac's events interop tests.

Usage: events_state.py <worker hostname> <max seconds>
Configured like interop_app (CELERIAC_BROKER_URL). Prints, one line each:
  READY                 on the first `celeriac-probe` event (the receiver is bound by then)
  SNAPSHOT <json>       on each `celeriac-snapshot` event: what State knows at that moment
  FINAL <json>          after `worker-offline` from <hostname> (or at the deadline), then exits
The probe and snapshot events are the test's own markers and are kept out of State.
"""
import json
import sys
import threading

from interop_app import app

hostname = sys.argv[1]
max_seconds = float(sys.argv[2])
state = app.events.State()
ready = False


def say(line):
    print(line, flush=True)


def snapshot():
    out = {"worker": None, "tasks": {}, "event_count": state.event_count}
    w = state.workers.get(hostname)
    if w is not None:
        out["worker"] = {
            "hostname": w.hostname,
            "alive": w.alive,
            "active": w.active,
            "processed": w.processed,
            "freq": w.freq,
            "heartbeats": len(w.heartbeats),
            "pid": w.pid,
            "clock": w.clock,
            "loadavg": w.loadavg,
            "sw_ident": w.sw_ident,
            "sw_ver": w.sw_ver,
            "sw_sys": w.sw_sys,
            "status_string": w.status_string,
        }
    for uuid, t in state.tasks.items():
        out["tasks"][uuid] = {
            field: getattr(t, field, None)
            for field in (
                "state", "name", "args", "kwargs", "result", "exception", "traceback", "runtime",
                "retries", "eta", "expires", "root_id", "parent_id", "received", "started",
                "succeeded", "failed", "retried", "rejected", "revoked", "timestamp",
            )
        }
        out["tasks"][uuid]["worker"] = t.worker.hostname if t.worker is not None else None
    return json.dumps(out, default=str)


def on_event(event):
    global ready
    kind = event.get("type")
    if kind == "celeriac-probe":
        if not ready:
            ready = True
            say("READY")
        return
    if kind == "celeriac-snapshot":
        say("SNAPSHOT " + snapshot())
        return
    state.event(event)
    if kind == "worker-offline" and event.get("hostname") == hostname:
        receiver.should_stop = True


with app.connection_for_read() as conn:
    receiver = app.events.Receiver(conn, handlers={"*": on_event})
    timer = threading.Timer(max_seconds, lambda: setattr(receiver, "should_stop", True))
    timer.daemon = True
    timer.start()
    try:
        receiver.capture(limit=None, timeout=None, wakeup=False)
    finally:
        say("FINAL " + snapshot())
