"""Send a list of tasks with Python Celery, wait for each and compare results strictly.

usage: values_calls.py SPEC_FILE
SPEC_FILE is JSON (Python's dialect: NaN, Infinity, exact big ints) holding a list of calls:
  {"task", "queue", "args", "kwargs"?, "serializer"?, "expected"?, "timeout"?}
All calls are sent first, then awaited in order. Prints one JSON list, one entry per call:
  {"id", "status", "repr" (repr of the result), "diffs" (when "expected" was given)} or
  {"id", "status", "exc_type", "exc_message", "exc_module"} when get() raised.
"Strictly" means as Python sees values: int and float differ, NaN equals NaN, -0.0 differs from
0.0, dict key order does not matter. The app comes from CELERIAC_PY_APP (default interop_app).
"""
import importlib
import json
import math
import os
import sys

app = importlib.import_module(os.environ.get("CELERIAC_PY_APP") or "interop_app").app


def diff(want, got, path="$"):
    if type(want) is not type(got):
        return f"{path}: want {want!r} ({type(want).__name__}), got {got!r} ({type(got).__name__})"
    if isinstance(want, float):
        if math.isnan(want) and math.isnan(got):
            return None
        if want == got and math.copysign(1.0, want) == math.copysign(1.0, got):
            return None
        return f"{path}: want {want!r}, got {got!r}"
    if isinstance(want, list):
        if len(want) != len(got):
            return f"{path}: want {len(want)} items, got {len(got)}"
        for i, (w, g) in enumerate(zip(want, got)):
            d = diff(w, g, f"{path}[{i}]")
            if d:
                return d
        return None
    if isinstance(want, dict):
        if set(want) != set(got):
            return f"{path}: want keys {sorted(want)!r}, got {sorted(got)!r}"
        for k in want:
            d = diff(want[k], got[k], f"{path}[{k!r}]")
            if d:
                return d
        return None
    return None if want == got else f"{path}: want {want!r}, got {got!r}"


with open(sys.argv[1], encoding="ascii") as f:
    calls = json.load(f)

sent = []
for call in calls:
    options = {"queue": call["queue"]}
    if call.get("serializer"):
        options["serializer"] = call["serializer"]
    sent.append(app.send_task(call["task"], args=call.get("args", []), kwargs=call.get("kwargs", {}), **options))

out = []
for call, r in zip(calls, sent):
    entry = {"id": r.id}
    try:
        result = r.get(timeout=call.get("timeout", 30))
        entry["status"] = r.status
        entry["repr"] = repr(result)
        if "expected" in call:
            want = call["expected"]
            if isinstance(want, list) and isinstance(result, list) and len(want) == len(result):
                entry["diffs"] = [d for d in (diff(w, g, f"[{i}]") for i, (w, g) in enumerate(zip(want, result))) if d]
            else:
                d = diff(want, result)
                entry["diffs"] = [d] if d else []
    except Exception as exc:  # the re-raised task failure is what we report
        entry["status"] = r.status
        entry["exc_type"] = type(exc).__name__
        entry["exc_message"] = [str(a) for a in exc.args]
        entry["exc_module"] = type(exc).__module__
    out.append(entry)
print(json.dumps(out))
