"""What the payment_link service answers and announces, from a stored payment, against the contracts: every event
of every state with every field a receipt or a partner's webhook needs; the payment and its public page. No I/O:
the orchestration is given a stored document and a builder that validates like the service's."""
from datetime import datetime, timedelta, timezone

import pytest
from pydantic import TypeAdapter

from contracts import build_envelope
from contracts import payment_link as c
from contracts.platform import Caller
from gateway.web.pages.payments_console import cents
from services.common.rpc import CallerView
from services.payment_link import domain
from services.payment_link.payments import Payments
from services.payment_link.providers import build_providers

NOW = datetime(2026, 3, 14, 9, 30, tzinfo=timezone.utc)


def stored(**changes) -> dict:
    doc = {"id": "pay-1", "regie_id": "regie-cantine", "regie_name": "Régie cantine", "service": "cantine",
           "amount": 4250, "reference": "FACT2026031", "description": "Cantine de mars — Léa",
           "objet": domain.payfip_objet("Cantine de mars — Léa"), "email": "jean.dupont@example.fr", "payer_id": "cit-x",
           "language": "fr", "metadata": {"dossier": 12}, "return_url": None, "due_date": "2026-03-31",
           "expires_at": domain.end_of_day(datetime(2026, 3, 31).date()), "state": "created", "finished": False,
           "failure": None, "provider": "payfip", "refunds": [], "history": [{"state": "created", "at": NOW}],
           "retry_of": None, "created_by": "agent:x", "created_at": NOW, "updated_at": NOW, "version": 1}
    doc.update(changes)
    return doc


@pytest.fixture
def payments():
    build = lambda event_type, data: build_envelope(event_type, data, "payment_link")  # noqa: E731 - validates
    return Payments(None, build, CallerView(Caller(role="agent", subject="agent:x")), build_providers(), None, NOW)


@pytest.mark.parametrize("state, code", [("started", None), ("submitted", None), ("success", None),
                                         ("failed", "P0010"), ("failed", "P0030"), ("cancelled", "P0040"),
                                         ("error", "P0050")])
def test_every_transition_event_validates_and_carries_what_a_receipt_needs(payments, state, code):
    doc = stored(state=state, failure=domain.failure(code) if code else None, provider_id="idop-1",
                 session_expires_at=NOW + timedelta(minutes=90), paid_at=NOW, authorisation_code="123456")
    env = payments.event_for(doc, {"reason": "Facture annulée", "cancelled_by": "agent:x"})
    assert env["type"] == domain.STATE_EVENTS[state]
    data = env["data"]
    assert (data["payment_id"], data["regie_id"], data["regie_name"], data["email"], data["description"]) == (
        "pay-1", "regie-cantine", "Régie cantine", "jean.dupont@example.fr", "Cantine de mars — Léa")
    assert data["state"] == state and data["provider_id"] == "idop-1" and data["metadata"] == {"dossier": 12}
    if code:
        assert data["failure_code"] == code


def test_the_payment_and_its_public_page_hold_their_contracts(payments):
    doc = stored(state="success", finished=True, paid_at=NOW, provider_id="idop-1",
                 refunds=[{"id": "ref-1", "amount": 1000, "status": "submitted", "kind": "accountant", "reason": None,
                           "provider_refund_id": None, "created_by": "agent:x", "created_at": NOW,
                           "settled_at": None}])
    view = TypeAdapter(c.Payment).validate_python(payments.view(doc))
    assert view.url == "/pay/pay-1" and view.refund_summary.amount_available == 3250
    public = TypeAdapter(c.PublicPayment).validate_python(payments.public_view(doc))
    assert not public.payable and "email" not in payments.public_view(doc)
    assert payments.public_view(stored())["payable"]


@pytest.mark.parametrize("text, value", [("12,50", 1250), ("12.5", 1250), ("12", 1200), ("1 234,05 €", 123405),
                                         ("12,505", None), ("-3", None), ("", None), ("douze", None)])
def test_an_amount_typed_in_euros_becomes_cents(text, value):
    assert cents(text) == value
