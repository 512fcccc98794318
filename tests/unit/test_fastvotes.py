"""The compiled `submitKioskVotes` path (gateway/compiled/votes.py) sends the service exactly what Strawberry sends and
answers exactly what Strawberry answers (data or error), and hands everything else back to Strawberry.

No network: both paths call the same fake service."""
from __future__ import annotations

import asyncio
import random
from datetime import datetime, timedelta, timezone

import dateutil.parser
import pytest

from contracts.errors import BadInput, ServiceUnavailable, Unauthenticated
from contracts.platform import Caller
from gateway.compiled.votes import ISO_INSTANT, FastKioskVotes, coerce_votes
from gateway.schema import build_schema
from tests.unit.compiled_support import strawberry_answer

KIOSK = Caller(role="kiosk", subject="kiosk:k1", kiosk="k1", token_id="t1")
APP_JS = ("mutation($votes: [KioskVoteInput!]!) { submitKioskVotes(votes: $votes) "
          "{ accepted duplicates rejected { id reason } } }")
BENCH = "mutation($v: [KioskVoteInput!]!) { submitKioskVotes(votes: $v) { accepted duplicates rejected { id } } }"
ALIASED = """mutation Envoi($v: [KioskVoteInput!]!) {
  r: submitKioskVotes(votes: $v) { __typename ok: accepted duplicates rejected { __typename why: reason id } }
}
query Autre { __typename }"""


class FakeService:
    """submit_votes as the service answers it: the first vote accepted, the second a duplicate, the rest
    rejected; or an error."""

    def __init__(self, error: Exception | None = None):
        self.error, self.calls = error, []

    async def __call__(self, votes: list[dict]) -> dict:
        self.calls.append(votes)
        if self.error is not None:
            raise self.error
        ids = [v["id"] for v in votes]
        return {"accepted": ids[:1], "duplicates": ids[1:2], "rejected": [{"id": i, "reason": "trop ancien"} for i in ids[2:]]}


def strawberry_service(service):
    async def call(_service, method, timeout=None, **kwargs):
        assert (_service, method) == ("satisfaction", "submit_votes")
        return await service(kwargs["votes"])
    return call


@pytest.fixture(scope="module", params=[False, True], ids=["dev", "production"])
def paths(request):
    schema = build_schema(production=request.param)
    return schema, FastKioskVotes(schema, production=request.param), request.param


def both(paths, payload, error=None):
    schema, fast, production = paths
    slow_service, fast_service = FakeService(error), FakeService(error)
    expected = strawberry_answer(schema, payload, KIOSK, strawberry_service(slow_service), production)
    got = asyncio.run(fast.execute(payload, fast_service))
    return expected, got, slow_service.calls, fast_service.calls


NOW = datetime(2026, 11, 26, 9, 30, tzinfo=timezone.utc)
VOTES = [
    {"id": "0d6c1c9e-1d1b-4b1f-9d76-1f0c2c3d4e5f", "rating": 1, "pressedAt": "2026-11-26T09:30:00Z"},
    {"id": 42, "rating": 4, "pressedAt": "2026-11-26T10:30:00.250+01:00", "followUp": "Attente", "comment": None},
    {"id": "v3", "rating": 3, "pressedAt": "2026-11-26T04:00:00.1-05:30", "comment": "Trop d'attente au guichet"},
    {"id": "v4", "rating": 2, "pressedAt": "2026-11-25T23:59:59.123456+00:00", "followUp": None},
]


@pytest.mark.parametrize("query,operation", [(APP_JS, None), (BENCH, None), (ALIASED, "Envoi")])
def test_both_paths_answer_alike_and_send_the_same_votes(paths, query, operation):
    variables = {"votes" if "$votes" in query else "v": VOTES}
    expected, got, slow_calls, fast_calls = both(paths, {"query": query, "variables": variables, "operationName": operation})
    assert got == expected and "errors" not in got
    assert fast_calls == slow_calls and len(fast_calls) == 1


@pytest.mark.parametrize("error", [Unauthenticated("Ce jeton de borne a été remplacé ou révoqué."),
                                   ServiceUnavailable("Le service satisfaction ne répond pas."),
                                   BadInput("Trop de votes.", "votes"), RuntimeError("boom")],
                         ids=["unauthenticated", "unavailable", "bad-input", "internal"])
def test_an_error_of_the_service_is_answered_as_strawberry_answers_it(paths, error):
    expected, got, _, _ = both(paths, {"query": ALIASED, "variables": {"v": VOTES}, "operationName": "Envoi"}, error)
    assert got == expected and got["data"] is None
    assert got["errors"][0]["extensions"]["code"] and got["errors"][0]["path"] == ["r"]


def vote(**changes):
    return {**VOTES[0], **changes}


FALLBACKS = {
    "24:00": {"query": APP_JS, "variables": {"votes": [vote(pressedAt="2026-11-26T24:00:00Z")]}},
    "space": {"query": APP_JS, "variables": {"votes": [vote(pressedAt="2026-11-26 09:30:00Z")]}},
    "naive": {"query": APP_JS, "variables": {"votes": [vote(pressedAt="2026-11-26T09:30:00")]}},
    "date only": {"query": APP_JS, "variables": {"votes": [vote(pressedAt="2026-11-26")]}},
    "30 February": {"query": APP_JS, "variables": {"votes": [vote(pressedAt="2026-02-30T09:30:00Z")]}},
    "float rating": {"query": APP_JS, "variables": {"votes": [vote(rating=1.0)]}},
    "boolean rating": {"query": APP_JS, "variables": {"votes": [vote(rating=True)]}},
    "huge rating": {"query": APP_JS, "variables": {"votes": [vote(rating=2 ** 31)]}},
    "boolean id": {"query": APP_JS, "variables": {"votes": [vote(id=True)]}},
    "unknown key": {"query": APP_JS, "variables": {"votes": [vote(mood="bof")]}},
    "missing rating": {"query": APP_JS, "variables": {"votes": [{"id": "x", "pressedAt": "2026-11-26T09:30:00Z"}]}},
    "one object": {"query": APP_JS, "variables": {"votes": vote()}},
    "empty list": {"query": APP_JS, "variables": {"votes": []}},
    "501 votes": {"query": APP_JS, "variables": {"votes": [vote(id=str(i)) for i in range(501)]}},
    "no variables": {"query": APP_JS},
    "inline votes": {"query": 'mutation { submitKioskVotes(votes: [{id: "a", rating: 1, pressedAt: "2026-11-26T09:30:00Z"}]) '
                              '{ accepted } }'},
    "two fields": {"query": "mutation($v: [KioskVoteInput!]!) { a: submitKioskVotes(votes: $v) { accepted } "
                            "b: submitKioskVotes(votes: $v) { accepted } }", "variables": {"v": [vote()]}},
    "fragment": {"query": "mutation($v: [KioskVoteInput!]!) { submitKioskVotes(votes: $v) { ...R } } "
                          "fragment R on VoteSubmitReport { accepted }", "variables": {"v": [vote()]}},
    "directive": {"query": "mutation($v: [KioskVoteInput!]!, $s: Boolean!) { submitKioskVotes(votes: $v) "
                           "{ accepted @skip(if: $s) } }", "variables": {"v": [vote()], "s": False}},
    "a query": {"query": "query { __typename }"},
    "heartbeat": {"query": "mutation { kioskHeartbeat(battery: 50) { id } }"},
    "invalid document": {"query": "mutation($v: [KioskVoteInput!]!) { submitKioskVotes(votes: $v) { nope } }",
                         "variables": {"v": [vote()]}},
    "too many aliases": {"query": "mutation($v: [KioskVoteInput!]!) { submitKioskVotes(votes: $v) { "
                                  + " ".join(f"a{i}: accepted" for i in range(31)) + " } }", "variables": {"v": [vote()]}},
}


@pytest.mark.parametrize("name", list(FALLBACKS))
def test_everything_else_goes_to_strawberry(paths, name):
    _, fast, _ = paths
    service = FakeService()
    assert asyncio.run(fast.execute(FALLBACKS[name], service)) is None
    assert service.calls == [], "nothing sent to the service by the compiled path"


def test_the_schema_still_has_the_shape_the_plan_assumes(paths):
    assert paths[1].enabled


def test_pressed_at_gets_the_instant_strawberry_gets():
    """Over random instants in the forms the regular expression admits, fromisoformat (this path) and
    dateutil's isoparse (Strawberry's DateTime) read the same instant, written back the same way."""
    rnd = random.Random(7)
    for _ in range(3000):
        at = NOW + timedelta(seconds=rnd.uniform(-40 * 86400, 86400))
        offset = rnd.choice([None, 0, 60, -300, 330, 840, -720, -1])
        digits = rnd.choice([0, 1, 2, 3, 6])
        text = at.strftime("%Y-%m-%dT%H:%M:%S")
        if digits:
            text += "." + f"{at.microsecond:06d}"[:digits]
        if offset is None:
            text += "Z"
        else:
            sign = "-" if offset < 0 else "+"
            text += f"{sign}{abs(offset) // 60:02d}:{abs(offset) % 60:02d}"
        assert ISO_INSTANT.match(text), text
        (ours,) = coerce_votes([{"id": "x", "rating": 1, "pressedAt": text}])
        assert ours["pressed_at"] == dateutil.parser.isoparse(text).isoformat(), text
