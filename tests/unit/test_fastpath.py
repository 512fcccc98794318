"""The compiled public `events` path (gateway/compiled/events.py) answers exactly what Strawberry answers over the
same public copy (gateway/readmodel.py), and hands everything else back to Strawberry.

No network: the copy is filled from documents built by the agenda's own domain code."""
from __future__ import annotations

import asyncio
import random
import time
from datetime import datetime, timedelta, timezone

import pytest

from contracts import agenda as c
from contracts.platform import Caller
from gateway.compiled.events import FastQueries
from gateway.readmodel import Entry, PublicAgenda
from gateway.schema import build_schema
from gateway.schema.agenda import to_event
from parvis.seed import demo_data
from contracts import agenda_public
from services.agenda import domain

NOW = datetime.now(timezone.utc).replace(microsecond=0)
COMMUNES = ["labege", "ramonville-saint-agne", "castanet-tolosan"]


def build_copy(n: int = 240) -> PublicAgenda:
    data = demo_data()
    ref = domain.Reference({x["slug"]: x["name"] for x in data["communes"]},
                           {x["slug"]: x["name"] for x in data["categories"]}, {t["slug"]: t["name"] for t in data["themes"]})
    rnd = random.Random(3)
    words = ["Fête", "Concert", "Marché", "Atelier", "Randonnée", "Loto"]
    public = PublicAgenda(call=None, to_node=to_event)
    for i in range(n):
        start = (NOW + timedelta(days=rnd.randint(-20, 120), hours=rnd.randint(0, 23))).astimezone(domain.PARIS)
        start = start.replace(minute=0, second=0, microsecond=0, tzinfo=None)
        inp = c.EventInput(
            title=f"{rnd.choice(words)} {rnd.choice(words).lower()} n°{i}", description="Un **événement** de test.",
            slots=[{"starts_at": start, "ends_at": start + timedelta(hours=2)}],
            rrule="FREQ=WEEKLY;COUNT=3" if i % 17 == 0 else None,
            location={"commune": COMMUNES[i % 3], "place": "Salle des fêtes"},
            category=rnd.choice(list(ref.categories)), theme=rnd.choice([None, *list(ref.themes)[:3]]),
            free=i % 5 != 0, price=None if i % 5 else "5 €", tags=["famille"] if i % 4 == 0 else [],
            accessibility=["motor", "hearing"][: i % 3])
        fields = domain.validate_event(inp, ref, NOW - timedelta(days=30))
        state = "withdrawn" if i % 23 == 0 else "published"
        visible_from = NOW + timedelta(days=2) if i % 19 == 0 else NOW - timedelta(days=1)
        updated = NOW - timedelta(minutes=n - i)
        doc = {"_id": f"evt-{i:04d}", **fields, "organizer": f"org-{i % 4}", "organizer_name": f"Association {i % 4}",
               "moderation_state": state, "status": "cancelled" if i % 13 == 0 else "scheduled",
               "price_kind": "free" if inp.free else "paid", "created_at": updated, "updated_at": updated,
               "visible_from": visible_from, "version": 1}
        item = c.PublicFeedItem(view=domain.event_view(doc), visible_from=visible_from, price_kind=doc["price_kind"],
                                search=doc["search"], updated_ts=updated.timestamp())
        public.entries[doc["_id"]] = Entry(item, to_event)
    public.loaded, public.synced_at = True, time.monotonic()
    return public


@pytest.fixture(scope="module")
def setup():
    schema = build_schema(production=True)
    public = build_copy()
    return schema, public, FastQueries(schema, public)


def strawberry_answer(schema, public, payload) -> dict:
    async def go():
        result = await schema.execute(payload["query"], variable_values=payload.get("variables"),
                                      operation_name=payload.get("operationName"),
                                      context_value={"caller": Caller(), "public_agenda": public})
        out = {"data": result.data}
        if result.errors:
            out["errors"] = [e.message for e in result.errors]
        return out
    return asyncio.run(go())


FULL = """query($f: EventFilter, $n: Int!, $after: String) { events(filter: $f, first: $n, after: $after) {
  totalCount pageInfo { hasNextPage endCursor }
  edges { cursor node { id title description descriptionHtml startsAt endsAt allDay rrule
    slots { startsAt endsAt } occurrences { startsAt endsAt } commune { slug name }
    location { place address lat lon } category categoryName theme tags audience free price registrationUrl
    accessibility attendanceMode onlineUrl imageUrl contact { name email phone } externalIds { source id }
    publishAt organizer { id name } moderationState status schemaOrgStatus rejectionReason statusReason removed
    createdAt updatedAt submittedAt decidedAt url possibleDuplicates { id title } pendingRevision { id } } } } }"""

CASES = [
    (FULL, {"n": 50}),
    (FULL, {"n": 20, "f": {"communes": ["labege"], "from": (NOW + timedelta(days=3)).isoformat(),
                          "to": (NOW + timedelta(days=60)).isoformat()}}),
    (FULL, {"n": 10, "f": {"text": "fete", "communes": ["labege", "castanet-tolosan"]}}),
    (FULL, {"n": 50, "f": {"from": (NOW + timedelta(days=10)).isoformat(), "to": (NOW + timedelta(days=12)).isoformat()}}),
    (FULL, {"n": 50, "f": {"communes": ["castanet-tolosan", "labege"], "to": (NOW + timedelta(days=1)).isoformat()}}),
    (FULL, {"n": 50, "f": {"communes": ["labege"], "from": "2026-12-24T18:00:00"}}),  # Paris wall time
    (FULL, {"n": 10, "f": {"accessibility": ["MOTOR"], "free": False}}),
    (FULL, {"n": 30, "f": {"updatedSince": (NOW - timedelta(minutes=100)).isoformat(), "includeRemoved": True}}),
    (FULL, {"n": 5, "after": "bzo1", "f": {"communes": ["ramonville-saint-agne"]}}),
    ("""query Named($c: [String!]!, $withCount: Boolean!) { __typename
         upcoming: events(filter: {communes: $c}, first: 7) { total: totalCount @include(if: $withCount)
           nodes { ...Card } edges { node { ... on Event { title } } } } }
       fragment Card on Event { id t: title startsAt commune { slug } organizer { name } __typename }""",
     {"c": ["labege"], "withCount": False}),
    ("{ events { totalCount edges { node { id status } } } }", {}),
    ("query { a: events(first: 3) { totalCount } b: events(first: 2, filter: {themes: [\"x\"]}) { totalCount } }", {}),
]


@pytest.mark.parametrize("query,variables", CASES)
def test_the_compiled_path_answers_what_strawberry_answers(setup, query, variables):
    schema, public, fast = setup
    payload = {"query": query, "variables": variables}
    served = fast.execute(payload)
    assert served is not None, "this document is for the compiled path"
    expected = strawberry_answer(schema, public, payload)
    assert "errors" not in expected
    assert served == expected


def test_the_date_index_finds_what_a_scan_finds(setup):
    _, public, _ = setup
    for days in range(-25, 130, 7):
        for width in (1, 3, 30):
            f = c.EventFilter(communes=["labege"] if days % 2 else [], starts_after=NOW + timedelta(days=days),
                              starts_before=NOW + timedelta(days=days + width))
            indexed = [v["id"] for v in public.search(f, 500, None, NOW).views]
            scanned = [d["_id"] for d in agenda_public.search(public.docs(f.communes), f, NOW)]
            assert indexed == scanned


def test_renderings_kept_on_the_events_do_not_leak_between_plans(setup):
    _, _, fast = setup
    a = fast.execute({"query": "{ events(first: 3) { edges { node { id title } } } }"})["data"]
    b = fast.execute({"query": "{ events(first: 3) { edges { node { id status } } } }"})["data"]
    assert set(a["events"]["edges"][0]["node"]) == {"id", "title"}
    assert set(b["events"]["edges"][0]["node"]) == {"id", "status"}


def test_the_copy_follows_the_agenda_rules(setup):
    schema, public, fast = setup
    data = fast.execute({"query": "{ events(first: 500, filter: {includeRemoved: true}) { edges { node { id "
                                  "moderationState } } } }"})["data"]
    ids = {e["node"]["id"] for e in data["events"]["edges"]}
    assert "evt-0019" not in ids, "publishAt in the future: not yet public"
    assert {"evt-0023", "evt-0046"} <= ids  # tombstones are listed with includeRemoved
    data = fast.execute({"query": "{ events(first: 500) { edges { node { id } } } }"})["data"]
    assert "evt-0023" not in {e["node"]["id"] for e in data["events"]["edges"]}


@pytest.mark.parametrize("query,variables", [
    ("{ communes { slug } }", {}),  # another root field
    ("{ events { totalCount } communes { slug } }", {}),
    ("mutation { submitEvent(id: \"x\") { id } }", {}),
    ("{ events { edges { node { nope } } } }", {}),  # invalid document
    ("{ events(first: 10000) { totalCount } }", {}),  # the contract refuses it
    ("query($n: Int!) { events(first: $n) { totalCount } }", {"n": "many"}),  # invalid variables
    ("query($n: Int!) { events(first: $n) { totalCount } }", {}),  # missing variable
    ("{ events(after: \"garbage!!\") { totalCount } }", {}),  # a bad cursor
    ("{ events { edges { node { id title } } edges { node { status } } } }", {}),  # field merging
    ("{ events { totalCount @deprecated } }", {}),
    ("{ " + " ".join(f"a{i}: events {{ totalCount }}" for i in range(31)) + " }", {}),  # over the alias limit
])
def test_everything_else_goes_to_strawberry(setup, query, variables):
    _, _, fast = setup
    assert fast.execute({"query": query, "variables": variables}) is None


def test_not_ready_copy_is_never_used(setup):
    schema, _, _ = setup
    public = build_copy(10)
    public.synced_at = time.monotonic() - 3600
    assert FastQueries(schema, public).execute({"query": "{ events { totalCount } }"}) is None
