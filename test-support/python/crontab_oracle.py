"""Celery's own crontab arithmetic as an oracle for packages/beat's tests.

Reads a JSON list of cases on stdin, prints a JSON list of answers: for each case Celery 5.2.6's
crontab(...).remaining_estimate(last) and is_due(last) with nowfun returning `now` in the app's
timezone (enable_utc=True), or for {"every": ms, "relative": bool} cases schedule(...)'s; and optionally ("sim") the first instant a beat that checks at least
every 300 s (Celery's default beat_max_loop_interval) finds the entry due. Times are epoch ms.
"""
import json
import sys
from datetime import datetime, timedelta

import pytz
from celery import Celery
from celery.schedules import crontab, schedule

apps = {}


def app_for(tz):
    if tz not in apps:
        app = Celery("oracle", set_as_current=False)
        app.conf.timezone = tz
        app.conf.enable_utc = True
        apps[tz] = app
    return apps[tz]


def at(ms, tz):
    return datetime.fromtimestamp(ms / 1000, tz)


def ms_of(dt):
    return round(dt.timestamp() * 1000)


def answer(case):
    tz = pytz.timezone(case["tz"])
    app = app_for(case["tz"])
    now = {"t": at(case["now"], tz)}
    if "every" in case:
        # Celery's schedule(run_every, relative): the end of the interval after `last`.
        s = schedule(run_every=timedelta(milliseconds=case["every"]), relative=case["relative"],
                     nowfun=lambda: now["t"], app=app)
        rem = s.remaining_estimate(at(case["last"], tz))
        return {"end": case["now"] + round(rem / timedelta(milliseconds=1))}
    try:
        c = crontab(minute=case["minute"], hour=case["hour"], day_of_week=case["dow"],
                    day_of_month=case["dom"], month_of_year=case["moy"],
                    nowfun=lambda: now["t"], app=app)
        last = at(case["last"], tz)
        rem = c.remaining_estimate(last)
        out = {"end": case["now"] + round(rem / timedelta(milliseconds=1))}
        due, nxt = c.is_due(last)
        out["due"] = bool(due)
        out["next"] = round(nxt * 1000)
        if case.get("sim"):
            t = case["last"]
            for _ in range(20000):
                now["t"] = at(t, tz)
                r = c.remaining_estimate(last) / timedelta(milliseconds=1)
                if r <= 0:
                    out["sim"] = t
                    break
                t += min(round(r), 300000)
        return out
    except (ValueError, RuntimeError) as e:
        return {"error": type(e).__name__ + ": " + str(e)}


print(json.dumps([answer(c) for c in json.load(sys.stdin)]))
