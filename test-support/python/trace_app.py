"""interop_app's Celery app plus a task that reports the W3C trace headers it received.

Celery copies every message header into the task's request (celery/worker/request.py:
Request.__init__ takes message.headers as the request dict; celery/app/task.py: Context), which
is where OpenTelemetry's Celery instrumentation reads `traceparent` from (getattr on
task.request). So what this task returns is what a Python worker with OTel would continue.
"""
from interop_app import app


@app.task(name="pytrace.headers", bind=True)
def headers(self):
    return {
        "traceparent": self.request.get("traceparent"),
        "tracestate": self.request.get("tracestate"),
    }
