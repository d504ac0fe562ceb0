"""Checks that the generated stub's check_task accepts a matching task and rejects drifted ones."""
import json
from typing import List, Optional

from billing_tasks import RefundResult, check_task
from celery import Celery

app = Celery("check_signatures")
out = {}


def attempt(label, fn, name="billing.refund"):
    try:
        check_task(fn, name)
        out[label] = "ok"
    except TypeError as exc:
        out[label] = str(exc)


def good(*, invoice_id: str, amount_cents: int, reason: Optional[str] = None) -> RefundResult: ...
def wrong_type(*, invoice_id: str, amount_cents: str, reason: Optional[str] = None) -> RefundResult: ...
def missing_field(*, invoice_id: str, reason: Optional[str] = None) -> RefundResult: ...
def extra_required(*, invoice_id: str, amount_cents: int, currency: str, reason: Optional[str] = None) -> RefundResult: ...
def optional_made_required(*, invoice_id: str, amount_cents: int, reason: Optional[str]) -> RefundResult: ...
def wrong_return(*, invoice_id: str, amount_cents: int, reason: Optional[str] = None) -> List[str]: ...
def untyped(invoice_id, amount_cents, reason=None): ...
def kwargs_only(**kwargs): ...


@app.task(name="billing.refund", bind=True)
def bound(self, *, invoice_id: str, amount_cents: int, reason: Optional[str] = None) -> RefundResult: ...


for label, fn in [("good", good), ("wrong_type", wrong_type), ("missing_field", missing_field), ("extra_required", extra_required),
                  ("optional_made_required", optional_made_required), ("wrong_return", wrong_return), ("untyped", untyped),
                  ("kwargs_only", kwargs_only), ("bound_task", bound)]:
    attempt(label, fn)
attempt("unknown_task", good, "billing.nope")
print(json.dumps(out))
