"""A bounded property-based fuzz of the whole GraphQL schema (hypothesis-graphql) against the running stack, as the
public, a citizen and an agent: queries and mutations drawn from the committed SDL, with a fixed seed and a time
budget per role. Whatever is asked, the gateway answers below 500, never with INTERNAL_SERVER_ERROR, and never
with exception text (a trace, a Python exception's name, a driver's message)."""
from __future__ import annotations

import re
import time
from datetime import datetime, timedelta, timezone

import httpx
import pytest
from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st
from hypothesis_graphql import from_schema, nodes

from tests.support import ROOT, Platform, token

pytestmark = pytest.mark.slow

BUDGET = 30.0  # seconds of fuzzing per role (three roles: ~1.5 min)
SEED = 20261201
MAX_EXAMPLES = 600
SCHEMA = (ROOT / "gateway" / "schema.graphql").read_text()
LEAKS = re.compile(r"Traceback|File \"|\b(?:Attribute|Type|Key|Value|Index|Name|Runtime|Assertion|ZeroDivision|Lookup|"
                   r"Recursion|Unicode\w*|Overflow|Operational|DuplicateKey|Validation)Error\b|object has no attribute|"
                   r"\bpymongo\b|\bpydantic\b|\bnameko\b|\bkombu\b|\baio_pika\b|NoneType")

# Valid date-times (UTC, an offset, naive = Paris wall time): a malformed one makes the whole document invalid, which
# the validation answers before any resolver runs (tested apart: test_error_codes.py, the e2e tests).
DATETIMES = st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1),
                         timezones=st.sampled_from([timezone.utc, timezone(timedelta(hours=2)), None])).map(
    lambda d: nodes.String(d.isoformat()))
DATES = st.dates(min_value=datetime(2000, 1, 1).date(), max_value=datetime(2100, 1, 1).date()).map(
    lambda d: nodes.String(d.isoformat()))  # a day (the reconciliation's, a bill's due date)
JSONS = st.recursive(st.none() | st.booleans() | st.integers(-10, 10) | st.text(max_size=8),
                     lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
                     max_leaves=5).map(lambda v: nodes.String(str(v)))


@pytest.fixture(scope="module")
def stack(mongo, broker):
    mongo.drop_all()
    p = Platform(mongo, broker)
    p.up()
    yield p
    p.stop_reporting_crashes()


# A fresh token for each document: a drawn `signOut` revokes the token it was sent with, and every later document
# would then be answered UNAUTHENTICATED, fuzzing nothing but the authentication.
ROLES = {"public": lambda: None, "citizen": lambda: token("citizen", subject="cit-fuzz"),
         "agent": lambda: token("agent", subject="agent:fuzz")}


@pytest.mark.parametrize("role", list(ROLES))
def test_no_query_or_mutation_makes_the_gateway_fail_or_leak(stack, role):
    http = httpx.Client(base_url=stack.url, timeout=30)
    started = time.monotonic()
    deadline = started + BUDGET
    seen = {"sent": 0, "ok": 0, "skipped": 0, "codes": {}, "invalid": {}}

    @seed(SEED)
    # No shrinking: each step is a request to the stack, and the budget is the point; the failing document is
    # reported whole. max_examples bounds the run when the stack answers faster than the budget.
    @settings(max_examples=MAX_EXAMPLES, deadline=None, database=None, print_blob=True,
              phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
    @given(document=from_schema(SCHEMA, custom_scalars={"DateTime": DATETIMES, "Date": DATES, "JSON": JSONS}))
    def fuzz(document):
        if time.monotonic() > deadline:
            seen["skipped"] += 1
            return  # the budget is spent: the remaining examples pass at once
        bearer = ROLES[role]()
        r = http.post("/graphql", json={"query": document}, headers={"Authorization": f"Bearer {bearer}"} if bearer else {})
        seen["sent"] += 1
        assert r.status_code < 500, (r.status_code, document, r.text[:2000])
        body = r.json()
        for error in body.get("errors") or []:
            code = (error.get("extensions") or {}).get("code")
            seen["codes"][code] = seen["codes"].get(code, 0) + 1
            if code == "GRAPHQL_VALIDATION_FAILED":
                key = re.sub(r"« .*? »|'.*?'|\d+", "…", error["message"])[:70]
                seen["invalid"][key] = seen["invalid"].get(key, 0) + 1
            assert code != "INTERNAL_SERVER_ERROR", (document, error)
        if not body.get("errors"):
            seen["ok"] += 1
        leak = LEAKS.search(r.text)
        assert leak is None, (leak.group(), document, r.text[:2000])

    try:
        fuzz()
    finally:
        http.close()
    print(f"\nfuzz as {role}: {seen['sent']} documents sent in {time.monotonic() - started:.0f} s (budget "
          f"{BUDGET:.0f} s, {seen['skipped']} drawn after it), {seen['ok']} without errors, error codes {seen['codes']}; "
          f"invalid because: {sorted(seen['invalid'].items(), key=lambda kv: -kv[1])[:4]}")
    assert seen["sent"] > 50


def test_notification_deliveries_answer_their_dates(stack):
    """Regression (found by fuzzing as an agent): `notificationDeliveries` answered "'str' object has no attribute
    'isoformat'" for deliveries whose dates nx-27017 gives back as text (written by `$set`). Replies are now read
    by their contracts in the gateway (gateway/rpc.py: read_reply), dates included."""
    with httpx.Client(base_url=stack.url, timeout=15) as http:
        r = http.post("/graphql", json={"query": 'mutation { requestLoginCode(email: "dates@fuzz.example") { sent } }'})
        assert r.json()["data"]["requestLoginCode"]["sent"] is True
        query = ('{ notificationDeliveries(filter: {template: "login_code"}) { id status createdAt deliveredAt '
                 'failedAt nextAttemptAt readAt } }')
        agent = {"Authorization": f"Bearer {ROLES['agent']()}"}

        def delivered():
            body = http.post("/graphql", json={"query": query}, headers=agent).json()
            assert "errors" not in body, body
            return [d for d in body["data"]["notificationDeliveries"] if d["status"] == "DELIVERED"]

        from tests.support import wait_until

        [row] = wait_until(delivered, 30, 0.5, "the sign-in code delivered")
    created, done = datetime.fromisoformat(row["createdAt"]), datetime.fromisoformat(row["deliveredAt"])
    assert created.tzinfo is not None and timedelta(0) <= done - created < timedelta(seconds=30)
    assert row["failedAt"] is None and row["nextAttemptAt"] is None
