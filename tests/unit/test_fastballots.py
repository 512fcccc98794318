"""The compiled `castBudgetBallot` path (gateway/compiled/ballots.py) sends the service exactly what Strawberry sends and
answers exactly what Strawberry answers (data or error), and hands everything else back to Strawberry.

No network: both paths call the same fake service."""
from __future__ import annotations

import asyncio

import pytest

from contracts.errors import BadInput, Conflict, Forbidden, ServiceUnavailable
from contracts.platform import Caller
from gateway.compiled.ballots import FastBudgetBallots, coerce_headings
from gateway.schema import build_schema
from tests.unit.compiled_support import strawberry_answer

CITIZEN = Caller(role="citizen", subject="cit-0123456789abcdef0123", token_id="t1")
WEB = ("mutation($b: ID!, $h: [HeadingBallotInput!]!) { castBudgetBallot(budgetId: $b, headings: $h) "
       "{ consultationId receiptCode headings { headingId projectIds } } }")
BENCH = "mutation($b: ID!, $h: [HeadingBallotInput!]!) { castBudgetBallot(budgetId: $b, headings: $h) { receiptCode } }"
ALIASED = """mutation Vote($h: [HeadingBallotInput!]!, $budget: ID!) {
  recu: castBudgetBallot(headings: $h, budgetId: $budget) {
    __typename code: receiptCode consultationId choix: headings { __typename projectIds rubrique: headingId }
  }
}
query Autre { __typename }"""
HEADINGS = [{"headingId": "labege", "projectIds": ["p1", "p2"]}, {"headingId": 7, "projectIds": [3, "p4"]},
            {"headingId": "escalquens", "projectIds": []}]


class FakeService:
    """cast_budget_ballot as the service answers it (the ballot echoed, ids as text), or an error."""

    def __init__(self, error: Exception | None = None):
        self.error, self.calls = error, []

    async def __call__(self, budget_id: str, headings: list[dict]) -> dict:
        self.calls.append((budget_id, headings))
        if self.error is not None:
            raise self.error
        return {"consultation_id": budget_id, "receipt_code": "K7Q2-9XWM-4TZR",
                "headings": [{"heading_id": h["heading_id"], "project_ids": list(h["project_ids"])} for h in headings]}


def strawberry_service(service):
    async def call(_service, method, timeout=None, **kwargs):
        assert (_service, method) == ("consultation", "cast_budget_ballot")
        return await service(kwargs["budget_id"], kwargs["headings"])
    return call


@pytest.fixture(scope="module", params=[False, True], ids=["dev", "production"])
def paths(request):
    schema = build_schema(production=request.param)
    return schema, FastBudgetBallots(schema, production=request.param), request.param


def both(paths, payload, error=None):
    schema, fast, production = paths
    slow_service, fast_service = FakeService(error), FakeService(error)
    expected = strawberry_answer(schema, payload, CITIZEN, strawberry_service(slow_service), production)
    got = asyncio.run(fast.execute(payload, fast_service))
    return expected, got, slow_service.calls, fast_service.calls


@pytest.mark.parametrize("query,operation,variables", [
    (WEB, None, {"b": "cons-1", "h": HEADINGS}),
    (BENCH, None, {"b": 12, "h": HEADINGS[:1]}),
    (ALIASED, "Vote", {"budget": "cons-2", "h": HEADINGS, "ignored": 1}),
])
def test_both_paths_answer_alike_and_send_the_same_ballot(paths, query, operation, variables):
    expected, got, slow_calls, fast_calls = both(paths, {"query": query, "variables": variables,
                                                         "operationName": operation})
    assert got == expected and "errors" not in got
    assert fast_calls == slow_calls and len(fast_calls) == 1


@pytest.mark.parametrize("error", [Conflict("Vous avez déjà voté : un vote secret est définitif.", "participation"),
                                   ServiceUnavailable("Le service consultation ne répond pas."),
                                   BadInput("Projet inconnu : p9.", "headings"), Forbidden("Réservé au panel."),
                                   RuntimeError("boom")],
                         ids=["conflict", "unavailable", "bad-input", "forbidden", "internal"])
def test_an_error_of_the_service_is_answered_as_strawberry_answers_it(paths, error):
    expected, got, _, _ = both(paths, {"query": ALIASED, "variables": {"budget": "c", "h": HEADINGS},
                                       "operationName": "Vote"}, error)
    assert got == expected and got["data"] is None
    assert got["errors"][0]["extensions"]["code"] and got["errors"][0]["path"] == ["recu"]


FALLBACKS = {
    "float id": {"query": WEB, "variables": {"b": 1.0, "h": HEADINGS}},
    "boolean id": {"query": WEB, "variables": {"b": True, "h": HEADINGS}},
    "null budget": {"query": WEB, "variables": {"b": None, "h": HEADINGS}},
    "one heading, not a list": {"query": WEB, "variables": {"b": "c", "h": HEADINGS[0]}},
    "one project, not a list": {"query": WEB, "variables": {"b": "c", "h": [{"headingId": "l", "projectIds": "p1"}]}},
    "unknown key": {"query": WEB, "variables": {"b": "c", "h": [{**HEADINGS[0], "rank": 1}]}},
    "missing projects": {"query": WEB, "variables": {"b": "c", "h": [{"headingId": "l"}]}},
    "null project": {"query": WEB, "variables": {"b": "c", "h": [{"headingId": "l", "projectIds": [None]}]}},
    "empty list": {"query": WEB, "variables": {"b": "c", "h": []}},
    "51 headings": {"query": WEB, "variables": {"b": "c", "h": [HEADINGS[0]] * 51}},
    "no variables": {"query": WEB},
    "inline arguments": {"query": 'mutation { castBudgetBallot(budgetId: "c", headings: [{headingId: "l", '
                                  'projectIds: ["p"]}]) { receiptCode } }'},
    "one variable shared": {"query": "mutation($b: ID!, $h: [HeadingBallotInput!]!, $x: ID) { castBudgetBallot("
                                     "budgetId: $b, headings: $h) { receiptCode } }",
                            "variables": {"b": "c", "h": HEADINGS}},
    "nullable variable": {"query": "mutation($b: ID, $h: [HeadingBallotInput!]!) { castBudgetBallot(budgetId: $b, "
                                   "headings: $h) { receiptCode } }", "variables": {"b": "c", "h": HEADINGS}},
    "two fields": {"query": "mutation($b: ID!, $h: [HeadingBallotInput!]!) { a: castBudgetBallot(budgetId: $b, "
                            "headings: $h) { receiptCode } b: castBudgetBallot(budgetId: $b, headings: $h) "
                            "{ receiptCode } }", "variables": {"b": "c", "h": HEADINGS}},
    "fragment": {"query": "mutation($b: ID!, $h: [HeadingBallotInput!]!) { castBudgetBallot(budgetId: $b, "
                          "headings: $h) { ...R } } fragment R on BallotReceipt { receiptCode }",
                 "variables": {"b": "c", "h": HEADINGS}},
    "directive": {"query": "mutation($b: ID!, $h: [HeadingBallotInput!]!, $s: Boolean!) { castBudgetBallot("
                           "budgetId: $b, headings: $h) { receiptCode @skip(if: $s) } }",
                  "variables": {"b": "c", "h": HEADINGS, "s": False}},
    "a query": {"query": "query { __typename }"},
    "another mutation": {"query": 'mutation { supportProject(projectId: "p") { id } }'},
    "invalid document": {"query": "mutation($b: ID!, $h: [HeadingBallotInput!]!) { castBudgetBallot(budgetId: $b, "
                                  "headings: $h) { nope } }", "variables": {"b": "c", "h": HEADINGS}},
}


@pytest.mark.parametrize("name", list(FALLBACKS))
def test_everything_else_goes_to_strawberry(paths, name):
    _, fast, _ = paths
    service = FakeService()
    assert asyncio.run(fast.execute(FALLBACKS[name], service)) is None
    assert service.calls == [], "nothing sent to the service by the compiled path"


def test_the_schema_still_has_the_shape_the_plan_assumes(paths):
    assert paths[1].enabled


def test_headings_are_sent_as_the_resolver_sends_them():
    assert coerce_headings(HEADINGS) == [{"heading_id": "labege", "project_ids": ["p1", "p2"]},
                                         {"heading_id": "7", "project_ids": ["3", "p4"]},
                                         {"heading_id": "escalquens", "project_ids": []}]
