"""The Python billing worker: implements the tasks of @acme/billing-tasks from the generated stub.

    PYTHONPATH=../schema-package/generated celery -A billing_worker worker -Q billing,billing.refunds

Broker and results come from CELERIAC_BROKER_URL / CELERIAC_RESULT_URL. `check_app` at import
compares every task's signature with the schema, so a drifted task stops the worker from starting.
"""
from __future__ import annotations

import base64
import datetime
import hashlib
import os
from typing import Optional

from celery import Celery

from billing_tasks import ChargeInvoiceResult, Currency, Dict, LineItem, List, RefundResult, Timestamp, check_app, task_options

app = Celery(
    "billing_worker",
    broker=os.environ.get("CELERIAC_BROKER_URL", "memory://"),
    backend=os.environ.get("CELERIAC_RESULT_URL") or None,
)
app.conf.update(task_serializer="json", result_serializer="json", accept_content=["json"], enable_utc=True, broker_connection_retry_on_startup=True)

if app.conf.broker_url.startswith("sqla+"):
    # kombu's sqla transport polls an idle queue once a second; shorten it for quick round trips.
    from kombu.transport.sqlalchemy import Transport as _SqlaTransport

    _SqlaTransport.polling_interval = 0.05


@app.task(**task_options("billing.charge_invoice"))
def charge_invoice(
    *,
    invoice_id: str,
    customer_id: int,
    currency: Currency,
    items: List[LineItem],
    due_at: Timestamp,
    metadata: Dict[str, str],
    signature: str,
    memo: Optional[str] = None,
) -> ChargeInvoiceResult:
    total = sum(item["quantity"] * item["unit_price_cents"] for item in items)
    declined = currency == "CURRENCY_UNSPECIFIED"
    result: ChargeInvoiceResult = {
        "invoice_id": invoice_id,
        "status": "DECLINED" if declined else "CAPTURED",
        "total_cents": total,
        # A datetime: kombu writes it as ISO 8601 text, which the TypeScript side reads as a Date.
        "charged_at": datetime.datetime.fromisoformat(due_at.replace("Z", "+00:00")),  # type: ignore[typeddict-item]
        "signature_digest": base64.b64encode(hashlib.sha256(base64.b64decode(signature)).digest()).decode(),
    }
    if declined:
        result["decline_reason"] = "no currency"
    return result


@app.task(**task_options("billing.refund"))
def refund(*, invoice_id: str, amount_cents: int, reason: Optional[str] = None) -> RefundResult:
    return {
        "refund_id": f"rf-{invoice_id}-0",
        "amount_cents": amount_cents,
        "notes": {"1": reason or "none"},
        "tags": ["refund"] + ([reason] if reason else []),
    }


check_app(app)
