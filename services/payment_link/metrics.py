"""The payment_link service's business metrics: payments by state and régie, money collected and refunded, the
providers' latency and errors, payments still waiting for a provider's result (and for how long)."""
from __future__ import annotations

import time
from contextlib import contextmanager
from datetime import datetime

from prometheus_client import Counter, Gauge, Histogram

from services.payment_link import domain

TRANSITIONS = Counter("parvis_payment_link_payments_total", "Payments entering a state, by régie and state "
                      "(created, started, submitted, success, failed, cancelled, error)", ["regie", "state"])
COLLECTED = Counter("parvis_payment_link_collected_cents_total", "Money collected by successful payments, in cents, "
                    "by régie", ["regie"])
REFUNDED = Counter("parvis_payment_link_refunded_cents_total", "Refunds submitted, in cents, by régie and kind "
                   "(provider, accountant)", ["regie", "kind"])
PROVIDER_CALLS = Histogram("parvis_payment_link_provider_call_seconds", "Calls to the payment providers, by provider "
                           "and operation", ["provider", "operation"],
                           buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 15.0, 30.0))
PROVIDER_ERRORS = Counter("parvis_payment_link_provider_errors_total", "Calls to the payment providers that failed, by "
                          "provider, operation and kind (unavailable: retried later; refused: our request)",
                          ["provider", "operation", "kind"])
UNCONFIRMED = Gauge("parvis_payment_link_unconfirmed", "Payments waiting for their provider's result (started or "
                    "submitted), by age: all, or older than 30 minutes (over30m)", ["age"])
ANOMALIES = Counter("parvis_payment_link_anomalies_total", "A provider contradicted a finished payment (paid after "
                    "it failed, a second payment of one bill): an agent must look", ["kind"])
RECONCILED = Counter("parvis_payment_link_reconciled_total", "Provider results read by the reconciliation timer, "
                     "by what they did (changed, pending, error)", ["outcome"])

UNCONFIRMED_AFTER = 30 * 60  # seconds


@contextmanager
def provider_call(provider: str, operation: str):
    from services.payment_link.providers import ProviderRefused

    started = time.perf_counter()
    try:
        yield
    except ProviderRefused:
        PROVIDER_ERRORS.labels(provider, operation, "refused").inc()
        raise
    except Exception:
        PROVIDER_ERRORS.labels(provider, operation, "unavailable").inc()
        raise
    finally:
        PROVIDER_CALLS.labels(provider, operation).observe(time.perf_counter() - started)


def entered(regie_id: str, state: str, amount: int) -> None:
    TRANSITIONS.labels(regie_id, state).inc()
    if state == domain.SUCCESS:
        COLLECTED.labels(regie_id).inc(amount)


def unconfirmed(rows: list[dict], now: datetime) -> None:
    old = sum(1 for r in rows if r.get("session_started_at") is not None
              and (now - domain.as_utc(r["session_started_at"])).total_seconds() > UNCONFIRMED_AFTER)
    UNCONFIRMED.labels("all").set(len(rows))
    UNCONFIRMED.labels("over30m").set(old)


def initialise() -> None:
    """Series that exist before their first event, so that dashboards and alerts read 0, not nothing."""
    UNCONFIRMED.labels("all").set(0)
    UNCONFIRMED.labels("over30m").set(0)
    for provider in ("payfip", "sandbox"):
        for operation in ("start_session", "fetch_result", "refund"):
            PROVIDER_ERRORS.labels(provider, operation, "unavailable")
            PROVIDER_CALLS.labels(provider, operation)
    for kind in ("paid_after_finish", "result_without_session", "bill_paid_twice"):
        ANOMALIES.labels(kind)
    for outcome in ("changed", "pending", "error"):
        RECONCILED.labels(outcome)
