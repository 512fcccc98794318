"""payment_link's pure rules: the state machine, the bill's checks, objet, expiries, idempotency, refunds,
the providers' answers and the reconciliation, without any infrastructure."""
import csv
import io
import re
from datetime import date, datetime, timedelta, timezone

import pytest

from contracts.errors import BadInput, Conflict
from contracts.payment_link import OBJET_PATTERN, Payment, PaymentInput
from services.payment_link import domain as d

NOW = datetime(2026, 3, 10, 9, 30, tzinfo=timezone.utc)
REGIE = {"id": "regie-cantine", "name": "Régie cantine", "numcli": "123456", "services": ["Cantine", "Garderie"],
         "provider": {"provider": "payfip", "payfip_mode": "T"}, "active": True}
BILL = {"regie_id": "regie-cantine", "service": "cantine", "amount": 4250, "reference": "FACT2026031",
        "description": "Cantine de mars — Léa", "email": "Jean.Dupont@Example.fr", "metadata": {"foyer": "F-12"},
        "due_date": date(2026, 3, 31)}


# -- the state machine ------------------------------------------------------------------------------
ALLOWED = [("created", "started"), ("created", "cancelled"), ("created", "failed"),
           ("started", "submitted"), ("started", "success"), ("started", "failed"), ("started", "cancelled"),
           ("started", "error"), ("submitted", "success"), ("submitted", "failed"), ("submitted", "cancelled"),
           ("submitted", "error")]
STATES = ["created", "started", "submitted", "success", "failed", "cancelled", "error"]


@pytest.mark.parametrize("current, target", ALLOWED)
def test_the_machine_allows_its_transitions(current, target):
    d.check_transition(current, target)


@pytest.mark.parametrize("current, target", [(c, t) for c in STATES for t in STATES if (c, t) not in ALLOWED])
def test_every_other_transition_is_refused(current, target):
    with pytest.raises(Conflict) as exc:
        d.check_transition(current, target)
    assert exc.value.field == "state"


@pytest.mark.parametrize("finished", ["success", "failed", "cancelled", "error"])
def test_a_finished_payment_never_changes(finished):
    assert d.is_finished(finished)
    for target in STATES:
        with pytest.raises(Conflict, match="terminé"):
            d.check_transition(finished, target)
    # Not even when a provider later says it was paid: that is an anomaly for an agent, not a change.
    decision = d.decide(finished, d.Outcome("success", provider_status="P"), notified=True)
    assert decision.state is None
    assert decision.anomaly == (None if finished == "success" else "paid_after_finish")


def test_each_state_is_announced_by_an_event_of_the_service():
    assert set(d.STATE_EVENTS) == set(STATES)
    assert all(e.startswith("payment_link.") for e in d.STATE_EVENTS.values())
    assert {d.FAILURE_STATE[c] for c in ("P0010", "P0020", "P0030")} == {"failed"}
    assert d.FAILURE_STATE["P0040"] == "cancelled" and d.FAILURE_STATE["P0050"] == "error"


# -- amounts, references, emails, descriptions, metadata ---------------------------------------------------
@pytest.mark.parametrize("amount", [100, 101, 4250, 10_000_000])
def test_amounts_from_one_euro_to_a_hundred_thousand(amount):
    assert d.check_amount(amount) == amount


@pytest.mark.parametrize("amount", [0, 99, -100, 10_000_001, 12.5, "100", True, None])
def test_other_amounts_are_refused_naming_the_field(amount):
    with pytest.raises(BadInput) as exc:
        d.check_amount(amount)
    assert exc.value.field == "amount"


def test_amount_message_is_french_in_euros():
    with pytest.raises(BadInput, match=r"entre 1,00\u00a0€ et 100\u202f000,00\u00a0€"):
        d.check_amount(99)


@pytest.mark.parametrize("reference, provider", [("A", "sandbox"), ("FACT2026031", "payfip"),
                                                 ("abcdef", "payfip"), ("X" * 30, "payfip")])
def test_references_of_letters_and_digits(reference, provider):
    assert d.check_reference(reference, provider) == reference


@pytest.mark.parametrize("reference, provider", [("", "sandbox"), ("FACT-2026", "sandbox"), ("FACTÉ1", "sandbox"),
                                                 ("FACT 1", "sandbox"), ("X" * 31, "sandbox"), ("ABCD", "payfip"),
                                                 ("ABCDE", "payfip")])
def test_other_references_are_refused(reference, provider):
    with pytest.raises(BadInput) as exc:
        d.check_reference(reference, provider)
    assert exc.value.field == "reference"


def test_payer_email_is_normalised_and_within_payfips_limits():
    assert d.check_email("  Jean.Dupont@Example.FR ") == "jean.dupont@example.fr"
    assert d.check_email("ab@c.fr") == "ab@c.fr"
    for bad in ("a@b.c", "x" * 75 + "@example.fr", "jean.dupont", "jean@", ""):
        with pytest.raises(BadInput) as exc:
            d.check_email(bad)
        assert exc.value.field == "email"


def test_description_is_required_and_bounded():
    assert d.check_description("  Cantine   de mars ") == "Cantine de mars"
    for bad in ("", "   ", "é" * 256, "—", "a\x07b"):
        with pytest.raises(BadInput):
            d.check_description(bad)


def test_metadata_limits_are_govuk_pays():
    fifteen = {f"k{i}": i for i in range(15)}
    assert d.check_metadata(fifteen) == fifteen
    assert d.check_metadata({"a": "x" * 100, "b": True, "c": 1.5, "k" * 30: 0}) is not None
    bad = [{f"k{i}": i for i in range(16)}, {"k" * 31: 1}, {"": 1}, {"a": "x" * 101}, {"a": None}, {"a": [1]},
           {"a": float("nan")}, {"a": {"b": 1}}]
    for metadata in bad:
        with pytest.raises(BadInput) as exc:
            d.check_metadata(metadata)
        assert exc.value.field.startswith("metadata")


def test_metadata_are_frozen_after_creation():
    d.check_metadata_unchanged({"a": 1}, {"a": 1})
    with pytest.raises(Conflict):
        d.check_metadata_unchanged({"a": 1}, {"a": 2})
    with pytest.raises(Conflict):
        d.check_metadata_unchanged({"a": 1}, {"a": 1, "b": 2})


def test_return_url_is_https_except_on_loopback():
    assert d.check_return_url("https://www.sicoval.fr/factures") == "https://www.sicoval.fr/factures"
    assert d.check_return_url("http://127.0.0.1:8000/pay/x") == "http://127.0.0.1:8000/pay/x"
    assert d.check_return_url(None) is None
    for bad in ("http://www.sicoval.fr/", "javascript:alert(1)", "https://", "https://a b/", "https://x/" + "a" * 2000):
        with pytest.raises(BadInput):
            d.check_return_url(bad)


# -- objet ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("text, objet", [
    ("Cantine de mars — Léa", "Cantine de mars Lea"),
    ("Crèche « Les Pitchouns », n°12 / 03/2026", "Creche Les Pitchouns n 12 03 2026"),
    ("Cœur d’été : ÆSTHÉTIQUE, Straße", "Coeur d ete AESTHETIQUE Strasse"),
    ("Eau — 1er semestre (12,50 €)", "Eau 1er semestre 12 50 EUR"),
    ("Ωμέγα école", "ecole"),
])
def test_objet_is_the_description_in_ascii_letters_digits_and_spaces(text, objet):
    assert d.payfip_objet(text) == objet
    assert re.fullmatch(OBJET_PATTERN, objet)


def test_objet_is_cut_at_a_word_within_100_characters():
    text = " ".join(["Facturation"] * 20)
    objet = d.payfip_objet(text)
    assert len(objet) <= 100 and objet.endswith("Facturation") and re.fullmatch(OBJET_PATTERN, objet)
    assert len(d.payfip_objet("x" * 150)) == 100
    assert d.payfip_objet("") == "" and d.payfip_objet(None) == ""


# -- the whole bill -----------------------------------------------------------------------------------
def test_a_bill_is_checked_and_normalised():
    bill = d.check_payment_input(BILL, REGIE, NOW)
    assert bill.email == "jean.dupont@example.fr" and bill.service == "Cantine"
    assert bill.objet == "Cantine de mars Lea" and bill.provider == "payfip"
    assert bill.expires_at == datetime(2026, 3, 31, 22, 0, tzinfo=timezone.utc)  # end of the day, Paris (CEST)
    assert PaymentInput.model_validate(BILL).amount == 4250


def test_a_bill_is_refused_for_a_service_the_regie_does_not_bill_or_an_inactive_regie():
    with pytest.raises(BadInput) as exc:
        d.check_payment_input({**BILL, "service": "Piscine"}, REGIE, NOW)
    assert exc.value.field == "service"
    with pytest.raises(BadInput) as exc:
        d.check_payment_input(BILL, {**REGIE, "active": False}, NOW)
    assert exc.value.field == "regie_id"


def test_link_expiry_is_the_end_of_the_due_date_in_paris():
    assert d.link_expires_at(date(2026, 1, 15), NOW) == datetime(2026, 1, 15, 23, 0, tzinfo=timezone.utc)
    assert d.link_expires_at(date(2026, 7, 15), NOW) == datetime(2026, 7, 15, 22, 0, tzinfo=timezone.utc)
    assert d.link_expires_at(None, NOW) == d.end_of_day(date(2026, 4, 9))  # 30 days by default
    with pytest.raises(BadInput):
        d.check_due_date(date(2026, 3, 9), NOW)
    with pytest.raises(BadInput):
        d.check_due_date(date(2027, 3, 12), NOW)
    assert d.check_due_date(date(2026, 3, 10), NOW) == date(2026, 3, 10)


def test_regies():
    saved = d.check_regie({"numcli": "123456", "name": "  Régie   de l'eau ", "services": ["Eau", "Assainissement"]})
    assert saved["name"] == "Régie de l'eau" and saved["provider"]["provider"] == "payfip"
    for bad, field in (({"numcli": "12345", "name": "x"}, "numcli"), ({"numcli": "12345a", "name": "x"}, "numcli"),
                       ({"numcli": "123456", "name": " "}, "name"),
                       ({"numcli": "123456", "name": "x", "services": ["Eau", "eau"]}, "services.1")):
        with pytest.raises(BadInput) as exc:
            d.check_regie(bad)
        assert exc.value.field == field


# -- idempotency -------------------------------------------------------------------------------------------
def _record(body, at=NOW):
    return d.IdempotencyRecord("agent::agent:1", "key-1", d.request_fingerprint(body), "pay-1", at)


def test_same_key_same_body_within_24h_returns_the_first_payment():
    body = d.check_payment_input(BILL, REGIE, NOW).request_body()
    again = d.check_payment_input({**BILL, "language": "fr", "email": "jean.dupont@example.fr"}, REGIE,
                                  NOW + timedelta(hours=1)).request_body()
    assert d.request_fingerprint(again) == d.request_fingerprint(body)  # same bill, written differently
    assert d.idempotency_decision(_record(body), d.request_fingerprint(again), NOW + timedelta(hours=23)) == \
        ("replay", "pay-1")


def test_same_key_other_body_is_a_conflict():
    body = d.check_payment_input(BILL, REGIE, NOW).request_body()
    other = d.check_payment_input({**BILL, "amount": 4251}, REGIE, NOW).request_body()
    with pytest.raises(Conflict) as exc:
        d.idempotency_decision(_record(body), d.request_fingerprint(other), NOW)
    assert exc.value.field == "idempotency_key"


def test_a_key_is_forgotten_after_24h_and_unknown_keys_are_new():
    body = d.check_payment_input(BILL, REGIE, NOW).request_body()
    other = d.request_fingerprint({**body, "amount": 1})
    assert d.idempotency_decision(_record(body), other, NOW + timedelta(hours=24)) == ("new", None)
    assert d.idempotency_decision(None, other, NOW) == ("new", None)


def test_a_refused_request_leaves_nothing_to_remember():
    """Validation runs first and raises: no fingerprint, no record; the same key with a corrected body is new."""
    with pytest.raises(BadInput):
        d.check_payment_input({**BILL, "amount": 50}, REGIE, NOW)
    corrected = d.check_payment_input(BILL, REGIE, NOW).request_body()
    assert d.idempotency_decision(None, d.request_fingerprint(corrected), NOW) == ("new", None)


def test_fingerprint_is_canonical():
    assert d.request_fingerprint({"a": 1, "b": {"y": 2, "x": "é"}}) == \
        d.request_fingerprint({"b": {"x": "e\u0301", "y": 2}, "a": 1})
    assert d.request_fingerprint({"a": 1}) != d.request_fingerprint({"a": "1"})


def test_idempotency_keys_and_scopes():
    assert d.check_idempotency_key("3f1c2a7e-5d1b-4c55-9d1e-0c7a1b2c3d4e")
    for bad in ("", "a b", "é", "x" * 256):
        with pytest.raises(BadInput):
            d.check_idempotency_key(bad)
    assert d.idempotency_scope("service", "billing", "org-a") != d.idempotency_scope("service", "billing", "org-b")


# -- sessions and expiry ----------------------------------------------------------------------------------
EXPIRES = datetime(2026, 3, 31, 22, 0, tzinfo=timezone.utc)


def test_paying_starts_a_session_or_gives_the_running_one_again():
    window = d.PAYFIP_IDOP_LIFETIME
    assert d.session_action("created", EXPIRES, None, NOW, window) == "new"
    assert d.session_action("started", EXPIRES, NOW, NOW + timedelta(minutes=14), window) == "reuse"
    with pytest.raises(Conflict, match="déjà en cours"):
        d.session_action("started", EXPIRES, NOW, NOW + timedelta(minutes=15), window)
    with pytest.raises(Conflict, match="déjà en cours"):
        d.session_action("submitted", EXPIRES, NOW, NOW + timedelta(minutes=1), timedelta(0))
    with pytest.raises(Conflict, match="déjà payée"):
        d.session_action("success", EXPIRES, NOW, NOW, window)
    with pytest.raises(Conflict, match="expiré"):
        d.session_action("created", EXPIRES, None, EXPIRES, window)


def test_expiry_of_links_and_of_sessions():
    assert d.expiry_outcome("created", EXPIRES, None, EXPIRES - timedelta(seconds=1)) is None
    assert d.expiry_outcome("created", EXPIRES, None, EXPIRES) == "P0020"
    assert d.expiry_outcome("started", NOW, NOW, NOW + timedelta(minutes=89)) is None  # due date passed: paying
    assert d.expiry_outcome("started", NOW, NOW, NOW + timedelta(minutes=90)) == "P0020"
    assert d.expiry_outcome("submitted", EXPIRES, NOW, NOW + timedelta(minutes=91)) == "P0020"
    assert d.expiry_outcome("success", NOW, NOW, NOW + timedelta(days=1)) is None
    assert d.session_expires_at(NOW) == NOW + timedelta(minutes=90)


def test_cancelling():
    d.check_cancel("created", can_cancel_session=False)
    d.check_cancel("started", can_cancel_session=True)
    with pytest.raises(Conflict, match="en cours"):
        d.check_cancel("submitted", can_cancel_session=False)
    with pytest.raises(Conflict):
        d.check_cancel("success", can_cancel_session=True)


def test_retrying_a_bill_after_a_refusal_while_the_link_is_valid():
    assert d.can_retry("failed", "P0010", EXPIRES, NOW)
    assert d.can_retry("failed", "P0030", EXPIRES, NOW)
    assert not d.can_retry("failed", "P0010", EXPIRES, EXPIRES)
    assert not d.can_retry("cancelled", "P0040", EXPIRES, NOW)
    assert not d.can_retry("error", "P0050", EXPIRES, NOW)


# -- the providers' answers --------------------------------------------------------------------------------
@pytest.mark.parametrize("code, minutes, kind, failure", [
    ("P", 1, "success", None), ("V", 1, "success", None),
    ("R", 1, "failed", "P0010"), ("Z", 1, "failed", "P0010"),
    ("A", 1, "pending", None), ("A", 15, "failed", "P0030"),
    ("P5", 1, "pending", None), ("P5", 89, "pending", None), ("P5", 90, "failed", "P0020"),
    ("P1", 1, "pending", None), ("P1", 15, "failed", "P0020"),
    ("X", 1, "error", "P0050"), ("", 1, "error", "P0050"),
])
def test_payfip_resultrans_and_fault_codes(code, minutes, kind, failure):
    outcome = d.payfip_outcome(code, NOW, NOW + timedelta(minutes=minutes))
    assert (outcome.kind, outcome.failure_code) == (kind, failure)
    assert outcome.provider_status == code


def test_an_abandon_is_provisional_while_the_idop_can_still_be_paid():
    outcome = d.payfip_outcome("A", NOW, NOW + timedelta(minutes=2))
    assert outcome.provisional == "abandoned" and outcome.state is None


@pytest.mark.parametrize("status, minutes, kind, failure", [
    ("success", 1, "success", None), ("declined", 1, "failed", "P0010"), ("cancelled", 1, "failed", "P0030"),
    ("expired", 1, "failed", "P0020"), ("error", 1, "error", "P0050"), ("created", 1, "pending", None),
    ("created", 90, "failed", "P0020"), ("weird", 1, "error", "P0050"),
])
def test_card_results(status, minutes, kind, failure):
    outcome = d.provider_outcome("sandbox", status, NOW, NOW + timedelta(minutes=minutes))
    assert (outcome.kind, outcome.failure_code) == (kind, failure)


def test_decisions_after_an_answer():
    pending, paid = d.Outcome("pending", provider_status="P5"), d.Outcome("success", provider_status="P")
    assert d.decide("started", pending, notified=True).state == "submitted"
    assert d.decide("started", pending, notified=False).state is None
    assert d.decide("submitted", pending, notified=True).state is None
    assert d.decide("submitted", paid, notified=False).state == "success"
    refused = d.decide("started", d.Outcome("failed", "P0010", "R"), notified=True)
    assert (refused.state, refused.failure_code) == ("failed", "P0010")
    # A success that does not match what we asked (amount, reference, numcli) is not this bill's.
    mismatch = d.decide("submitted", paid, notified=True, mismatches=["amount"])
    assert (mismatch.state, mismatch.failure_code) == ("error", "P0050")
    assert d.decide("created", paid, notified=True).anomaly == "result_without_session"


def test_detail_mismatches():
    ours = {"amount": 4250, "reference": "FACT2026031", "numcli": "123456"}
    assert d.detail_mismatches(ours, {"amount": 4250, "reference": "FACT2026031", "numcli": "123456"}) == []
    assert d.detail_mismatches(ours, {"amount": 425, "reference": "OTHER1", "numcli": None}) == ["amount", "reference"]


# -- refunds ----------------------------------------------------------------------------------------------
def test_refund_summary_follows_govuk_pay():
    assert d.refund_summary("started", 1000, []) == {"status": "pending", "amount_available": 0, "amount_submitted": 0}
    assert d.refund_summary("failed", 1000, [])["status"] == "unavailable"
    assert d.refund_summary("success", 1000, []) == {"status": "available", "amount_available": 1000,
                                                     "amount_submitted": 0}
    refunds = [{"amount": 300, "status": "success"}, {"amount": 200, "status": "submitted"},
               {"amount": 500, "status": "error"}]  # a failed refund gives its amount back
    assert d.refund_summary("success", 1000, refunds) == {"status": "available", "amount_available": 500,
                                                          "amount_submitted": 500}
    full = [{"amount": 1000, "status": "success"}]
    assert d.refund_summary("success", 1000, full) == {"status": "full", "amount_available": 0,
                                                       "amount_submitted": 1000}


def test_two_racing_refunds_cannot_exceed_the_payment():
    refunds: list[dict] = []
    seen = d.refund_summary("success", 1000, refunds)["amount_available"]  # both agents see 10,00 €
    d.check_refund("success", 1000, refunds, 700, seen)
    refunds.append({"amount": 700, "status": "submitted"})
    with pytest.raises(Conflict) as exc:  # the second one saw 1000, it is now 300
        d.check_refund("success", 1000, refunds, 700, seen)
    assert exc.value.field == "amount_available"
    with pytest.raises(BadInput) as exc:  # told the truth, it still cannot take more than what is left
        d.check_refund("success", 1000, refunds, 301, 300)
    assert exc.value.field == "amount"
    assert d.check_refund("success", 1000, refunds, 300, 300)["amount_available"] == 300


@pytest.mark.parametrize("state, amount, error", [("submitted", 100, Conflict), ("failed", 100, Conflict),
                                                  ("success", 0, BadInput), ("success", True, BadInput)])
def test_refunds_refused(state, amount, error):
    with pytest.raises(error):
        d.check_refund(state, 1000, [], amount, 1000 if state == "success" else 0)


def test_payfip_refunds_go_through_the_accountant():
    assert d.refund_kind(provider_refunds=False) == "accountant"
    assert d.refund_kind(provider_refunds=True) == "provider"
    d.check_settle_refund({"kind": "accountant", "status": "submitted"})
    for refund in ({"kind": "provider", "status": "submitted"}, {"kind": "accountant", "status": "success"}):
        with pytest.raises(Conflict):
            d.check_settle_refund(refund)


# -- reconciliation --------------------------------------------------------------------------------------
def _payment(pid, regie, state, amount, finished_at, refunds=(), failure=None):
    return {"id": pid, "regie_id": regie, "reference": f"REF{pid}", "amount": amount, "state": state,
            "provider": "payfip", "provider_id": f"idop-{pid}", "finished_at": finished_at, "refunds": list(refunds),
            "failure": {"code": failure, "message": ""} if failure else None, "authorisation_code": None}


def test_a_days_rows_and_totals_per_regie():
    day = date(2026, 3, 10)
    late_evening = datetime(2026, 3, 10, 22, 30, tzinfo=timezone.utc)  # 23:30 in Paris: still the 10th
    after_midnight = datetime(2026, 3, 10, 23, 30, tzinfo=timezone.utc)  # the 11th in Paris
    payments = [
        _payment("1", "eau", "success", 5000, NOW, [{"amount": 1000, "status": "success"}]),
        _payment("2", "cantine", "success", 4250, late_evening),
        _payment("3", "cantine", "failed", 4250, NOW, failure="P0010"),
        _payment("4", "cantine", "success", 999, after_midnight),
        _payment("5", "cantine", "submitted", 100, None),
        _payment("6", "eau", "cancelled", 700, NOW, failure="P0040"),
    ]
    rows = d.reconciliation_rows(payments, day)
    assert [r["payment_id"] for r in rows] == ["3", "2", "1", "6"]
    totals = {t["regie_id"]: t for t in d.regie_totals(rows, day)}
    assert totals["cantine"] == {"regie_id": "cantine", "date": day, "succeeded_count": 1, "succeeded_amount": 4250,
                                 "failed_count": 1, "cancelled_count": 0, "error_count": 0, "refunded_amount": 0,
                                 "net_amount": 4250}
    assert totals["eau"]["net_amount"] == 4000 and totals["eau"]["cancelled_count"] == 1
    text = d.report_csv(rows)
    assert text.startswith("\ufeff")
    table = list(csv.reader(io.StringIO(text.lstrip("\ufeff")), delimiter=";"))
    assert table[0] == d.CSV_HEADER
    assert table[2][:5] == ["2026-03-10", "cantine", "REF2", "42,50", "payé"]
    assert table[3][9] == "10,00"


def test_the_timer_asks_about_running_sessions_with_a_backoff():
    assert d.needs_provider_check("started", "idop") and d.needs_provider_check("submitted", "idop")
    assert not d.needs_provider_check("created", None) and not d.needs_provider_check("success", "idop")
    assert not d.needs_provider_check("started", None)
    assert d.next_check_at(0, NOW) == NOW + timedelta(seconds=30)
    assert d.next_check_at(99, NOW) == NOW + timedelta(minutes=15)


def test_keyset_cursors_round_trip_and_refuse_garbage():
    cursor = d.encode_cursor(NOW, "pay-1")
    assert d.decode_cursor(cursor) == (NOW, "pay-1")
    assert d.decode_cursor(None) is None
    for bad in ("nope", "aGVsbG8=", d.encode_cursor(NOW, "x").replace("a", "!")):
        with pytest.raises(BadInput):
            d.decode_cursor(bad)


def test_a_stored_payment_fits_the_contract():
    bill = d.check_payment_input(BILL, REGIE, NOW)
    summary = d.refund_summary("created", bill.amount, [])
    Payment.model_validate({**bill.request_body(), "id": "pay-1", "url": "/pay/pay-1", "regie_name": REGIE["name"],
                            "objet": bill.objet, "expires_at": bill.expires_at, "state": "created", "finished": False,
                            "provider": bill.provider, "refund_summary": summary, "created_at": NOW,
                            "updated_at": NOW})
