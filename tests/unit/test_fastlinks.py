"""The compiled `createPaymentLink` path (gateway/compiled/links.py) sends the service exactly what Strawberry sends
and answers exactly what Strawberry answers (data or error), and hands everything else back to Strawberry.

No network: both paths call the same fake service, whose answer goes through the contract as the gateway reads it."""
from __future__ import annotations

import asyncio
from datetime import datetime, timezone

import pytest

from contracts.errors import BadInput, Conflict, Forbidden, ServiceUnavailable, Unauthenticated
from contracts.platform import Caller
from gateway.compiled.links import FastPaymentLinks, coerce_input
from gateway.rpc import read_reply
from gateway.schema import build_schema
from tests.unit.compiled_support import strawberry_answer

BILLING = Caller(role="service", subject="service:bench", regies=["regie-eau"], token_id="t1")
AGENT = Caller(role="agent", subject="agent:x", token_id="t2")
BENCH = ("mutation($i: PaymentLinkInput!, $k: String) { createPaymentLink(input: $i, idempotencyKey: $k) "
         "{ replayed payment { id } } }")
ALL = ("mutation Lien($i: PaymentLinkInput!, $k: String!) { lien: createPaymentLink(input: $i, idempotencyKey: $k) { "
       "__typename rejoue: replayed payment { __typename id url regieId regieName service amount reference "
       "description objet email language etat: state finished provider providerId providerStatus authorisationCode "
       "retryOf createdBy } } }\nquery Autre { __typename }")
NO_KEY = "mutation($i: PaymentLinkInput!) { createPaymentLink(input: $i) { payment { id state url } replayed } }"
NOW = datetime(2026, 3, 14, 9, 30, tzinfo=timezone.utc).isoformat()
INPUT = {"regieId": "regie-eau", "amount": 4250, "reference": "FACT2026031", "description": "Facture d'eau — mars",
         "email": "abonne@example.fr"}


def reply(payment: dict, replayed: bool) -> dict:
    pid = "pay-0123456789abcdef0123"
    return {"replayed": replayed, "payment": {
        "id": pid, "url": f"/pay/{pid}", "regie_id": payment["regie_id"], "regie_name": "Régie de l'eau",
        "service": payment.get("service"), "amount": payment["amount"], "reference": payment["reference"],
        "description": payment["description"], "objet": "Facture d eau mars", "email": payment["email"],
        "language": payment.get("language", "fr"), "metadata": {}, "return_url": payment.get("return_url"),
        "due_date": None, "expires_at": NOW, "state": "created", "finished": False, "failure": None,
        "provider": "payfip", "provider_id": None, "provider_status": None, "session_started_at": None,
        "session_expires_at": None, "paid_at": None, "authorisation_code": None,
        "refund_summary": {"status": "pending", "amount_available": 0, "amount_submitted": 0}, "refunds": [],
        "history": [{"state": "created", "at": NOW, "failure_code": None, "provider_status": None, "actor": "x"}],
        "retry_of": None, "created_by": "service:bench", "created_at": NOW, "updated_at": NOW}}


class FakeService:
    """create_payment_link as the gateway reads it (the contract applied); or an error."""

    def __init__(self, error: Exception | None = None, replayed: bool = False):
        self.error, self.replayed, self.calls = error, replayed, []

    async def __call__(self, service, method, timeout=None, **kwargs):
        assert (service, method) == ("payment_link", "create_payment_link")
        self.calls.append(kwargs)
        if self.error is not None:
            raise self.error
        return read_reply(service, method, reply(kwargs["payment"], self.replayed))


@pytest.fixture(scope="module", params=[False, True], ids=["dev", "production"])
def paths(request):
    schema = build_schema(production=request.param)
    return schema, FastPaymentLinks(schema, production=request.param), request.param


def both(paths, payload, caller=BILLING, error=None, replayed=False):
    schema, fast, production = paths
    slow_service, fast_service = FakeService(error, replayed), FakeService(error, replayed)
    expected = strawberry_answer(schema, payload, caller, slow_service, production)
    got = asyncio.run(fast.execute(payload, caller, fast_service))
    return expected, got, slow_service.calls, fast_service.calls


@pytest.mark.parametrize("query,operation,variables", [
    (BENCH, None, {"i": INPUT, "k": "key-1"}),
    (BENCH, None, {"i": INPUT}),
    (BENCH, None, {"i": {**INPUT, "service": "eau", "language": "en", "returnUrl": "https://factures.example/r"},
                   "k": None}),
    (BENCH, None, {"i": {**INPUT, "metadata": None, "dueDate": None, "language": None}, "k": "key-2"}),
    (ALL, "Lien", {"i": INPUT, "k": "key-3", "unused": 1}),
    (NO_KEY, None, {"i": INPUT}),
], ids=["bench", "no-key", "optional-fields", "explicit-nulls", "every-field", "no-key-argument"])
@pytest.mark.parametrize("caller", [BILLING, AGENT], ids=["service", "agent"])
@pytest.mark.parametrize("replayed", [False, True], ids=["new", "replayed"])
def test_both_paths_answer_alike_and_send_the_same_request(paths, query, operation, variables, caller, replayed):
    payload = {"query": query, "variables": variables, "operationName": operation}
    expected, got, slow_calls, fast_calls = both(paths, payload, caller, replayed=replayed)
    assert got == expected and "errors" not in got
    assert fast_calls == slow_calls and len(fast_calls) == 1


@pytest.mark.parametrize("error", [Unauthenticated("Ce jeton a été révoqué."),
                                   ServiceUnavailable("Le service payment_link ne répond pas."),
                                   BadInput("Le montant doit être d'au moins 1 €.", "amount"),
                                   Conflict("Cette clé d'idempotence a déjà servi.", "idempotency_key"),
                                   Forbidden("Ce jeton de service ne peut agir que pour ses régies.", "regie_id"),
                                   RuntimeError("boom")],
                         ids=["unauthenticated", "unavailable", "bad-input", "conflict", "forbidden", "internal"])
def test_an_error_of_the_service_is_answered_as_strawberry_answers_it(paths, error):
    payload = {"query": ALL, "variables": {"i": INPUT, "k": "k"}, "operationName": "Lien"}
    expected, got, _, _ = both(paths, payload, error=error)
    assert got == expected and got["data"] is None
    assert got["errors"][0]["extensions"]["code"] and got["errors"][0]["path"] == ["lien"]


def test_a_service_token_for_another_regie_is_refused_as_strawberry_refuses_it(paths):
    other = Caller(role="service", subject="service:other", regies=["regie-autre"])
    expected, got, slow_calls, fast_calls = both(paths, {"query": BENCH, "variables": {"i": INPUT, "k": "k"}}, other)
    assert got == expected and got["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    assert slow_calls == fast_calls == []


FALLBACKS = {
    "float amount": {"query": BENCH, "variables": {"i": {**INPUT, "amount": 4250.0}}},
    "boolean amount": {"query": BENCH, "variables": {"i": {**INPUT, "amount": True}}},
    "text amount": {"query": BENCH, "variables": {"i": {**INPUT, "amount": "4250"}}},
    "huge amount": {"query": BENCH, "variables": {"i": {**INPUT, "amount": 2 ** 31}}},
    "number reference": {"query": BENCH, "variables": {"i": {**INPUT, "reference": 12}}},
    "missing email": {"query": BENCH, "variables": {"i": {k: v for k, v in INPUT.items() if k != "email"}}},
    "unknown key": {"query": BENCH, "variables": {"i": {**INPUT, "colour": "bleu"}}},
    "metadata": {"query": BENCH, "variables": {"i": {**INPUT, "metadata": {"dossier": 12}}}},
    "due date": {"query": BENCH, "variables": {"i": {**INPUT, "dueDate": "2026-03-31"}}},
    "number key": {"query": BENCH, "variables": {"i": INPUT, "k": 12}},
    "required key missing": {"query": ALL, "variables": {"i": INPUT}, "operationName": "Lien"},
    "no input": {"query": BENCH, "variables": {"k": "k"}},
    "no variables": {"query": BENCH},
    "input a list": {"query": BENCH, "variables": {"i": [INPUT]}},
    "inline input": {"query": 'mutation { createPaymentLink(input: {regieId: "regie-eau", amount: 4250, reference: "F1", '
                              'description: "d", email: "a@b.fr"}) { replayed } }'},
    "inline key": {"query": 'mutation($i: PaymentLinkInput!) { createPaymentLink(input: $i, idempotencyKey: "k") '
                            '{ replayed } }', "variables": {"i": INPUT}},
    "a date field": {"query": "mutation($i: PaymentLinkInput!) { createPaymentLink(input: $i) { payment { id createdAt } } }",
                     "variables": {"i": INPUT}},
    "an object field": {"query": "mutation($i: PaymentLinkInput!) { createPaymentLink(input: $i) { payment { refundSummary "
                                 "{ status } } } }", "variables": {"i": INPUT}},
    "metadata field": {"query": "mutation($i: PaymentLinkInput!) { createPaymentLink(input: $i) { payment { metadata } } }",
                       "variables": {"i": INPUT}},
    "two fields": {"query": "mutation($i: PaymentLinkInput!) { a: createPaymentLink(input: $i) { replayed } "
                            "b: createPaymentLink(input: $i) { replayed } }", "variables": {"i": INPUT}},
    "fragment": {"query": "mutation($i: PaymentLinkInput!) { createPaymentLink(input: $i) { ...R } } "
                          "fragment R on PaymentCreated { replayed }", "variables": {"i": INPUT}},
    "directive": {"query": "mutation($i: PaymentLinkInput!, $s: Boolean!) { createPaymentLink(input: $i) "
                           "{ replayed @skip(if: $s) } }", "variables": {"i": INPUT, "s": False}},
    "default key": {"query": 'mutation($i: PaymentLinkInput!, $k: String = "k") { createPaymentLink(input: $i, '
                             'idempotencyKey: $k) { replayed } }', "variables": {"i": INPUT}},
    "a query": {"query": "query { __typename }"},
    "another mutation": {"query": 'mutation { cancelPayment(id: "pay-1") { id } }'},
    "invalid document": {"query": "mutation($i: PaymentLinkInput!) { createPaymentLink(input: $i) { nope } }",
                         "variables": {"i": INPUT}},
}


@pytest.mark.parametrize("name", list(FALLBACKS))
def test_everything_else_goes_to_strawberry(paths, name):
    _, fast, _ = paths
    service = FakeService()
    assert asyncio.run(fast.execute(FALLBACKS[name], BILLING, service)) is None
    assert service.calls == [], "nothing sent to the service by the compiled path"


@pytest.mark.parametrize("caller", [Caller(), Caller(role="citizen", subject="c"), Caller(role="operator", subject="o"),
                                    Caller(role="kiosk", subject="k", kiosk="k")], ids=lambda c: c.role)
def test_callers_without_the_permission_go_to_strawberry(paths, caller):
    service = FakeService()
    assert asyncio.run(paths[1].execute({"query": BENCH, "variables": {"i": INPUT}}, caller, service)) is None
    assert service.calls == []


def test_the_schema_still_has_the_shape_the_plan_assumes(paths):
    assert paths[1].enabled


def test_the_input_is_sent_as_strawberry_sends_it():
    assert coerce_input({**INPUT, "service": None}) == {
        "regie_id": "regie-eau", "amount": 4250, "reference": "FACT2026031", "description": "Facture d'eau — mars",
        "email": "abonne@example.fr"}
