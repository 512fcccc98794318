"""Security through the real stack (issue 10): what an anonymous client may do and how often, what a document may
cost, who sees what of an event, the moderation of the version reviewed, sign-in that never tells whether an
address is known, and a production gateway behind a reverse proxy (rate limit by forwarded address, private
/metrics, no introspection, links built from the public URL whatever the Host header says)."""
import uuid
from datetime import datetime, timedelta, timezone

import httpx
import pytest

from tests.support import PYTHON, Platform, Proc, free_port, token, wait_until

LABEGE = "org-commune-labege"
PUBLIC_URL = "https://agenda.sicoval.example"


@pytest.fixture(scope="module")
def platform(mongo, broker):
    mongo.drop_all()
    p = Platform(mongo, broker, PARVIS_LOGIN_ATTEMPTS_PER_ADDRESS="4")
    p.up("agenda", "notification", "satisfaction", "gateway", "--no-demo-events")
    yield p
    p.stop_reporting_crashes()


@pytest.fixture(scope="module")
def production(platform):
    """A second gateway on the same services, as run in production behind a reverse proxy on 127.0.0.1."""
    port = free_port()
    env = {**platform.env, "PARVIS_HTTP_PORT": str(port), "PARVIS_ENV": "production", "PARVIS_RATE_LIMIT": "0.02",
           "PARVIS_RATE_BURST": "5", "PARVIS_TRUSTED_PROXIES": "127.0.0.1/32", "PARVIS_PUBLIC_URL": PUBLIC_URL}
    proc = Proc("gateway-production", [PYTHON, "-m", "parvis.cli", "gateway"], env, None)
    platform.procs.append(proc)
    proc.start()
    url = f"http://127.0.0.1:{port}"
    # Ready for these tests: the services started here answer and the revocation list is loaded.
    def loaded():
        try:
            return httpx.get(f"{url}/readyz", timeout=5).json()["revocations_loaded"]
        except httpx.HTTPError:
            return False
    wait_until(loaded, 30, message="the production gateway's revocation list")
    return url


def gql(url, query, variables=None, tok=None, headers=None):
    h = {"Authorization": f"Bearer {tok}"} if tok else {}
    h.update(headers or {})
    return httpx.post(f"{url}/graphql", json={"query": query, "variables": variables or {}}, headers=h, timeout=20)


def ok(response):
    body = response.json()
    assert "errors" not in body, body
    return body["data"]


def error(response) -> dict:
    body = response.json()
    assert body.get("errors"), body
    return body["errors"][0]


def paris_day(days: int, hour: int) -> str:
    return (datetime.now(timezone.utc) + timedelta(days=days)).strftime(f"%Y-%m-%dT{hour:02d}:00:00")


def draft(platform, org_tok, **over) -> dict:
    event = {"title": f"Atelier {uuid.uuid4().hex[:6]}", "description": "Pour tous.", "category": "atelier",
             "slots": [{"startsAt": paris_day(12, 14), "endsAt": paris_day(12, 16)}],
             "location": {"commune": "labege", "place": "Médiathèque"}, **over}
    q = "mutation($e: EventInput!) { createEvent(event: $e) { id version moderationState } }"
    return ok(gql(platform.url, q, {"e": event}, org_tok))["createEvent"]


def submit(platform, org_tok, event_id: str) -> dict:
    q = "mutation($id: ID!) { submitEvent(id: $id) { id version moderationState } }"
    return ok(gql(platform.url, q, {"id": event_id}, org_tok))["submitEvent"]


MODERATE = """mutation($id: ID!, $v: Int!, $d: ModerationDecision!, $r: String) {
  moderateEvent(id: $id, version: $v, decision: $d, reason: $r) { id version moderationState rejectionReason } }"""


# -- anonymous clients: rate, size, cost ------------------------------------------------------------------------

def test_anonymous_clients_are_limited_by_the_address_the_trusted_proxy_forwards(production):
    alice = {"X-Forwarded-For": "203.0.113.7"}
    answers = [gql(production, "{ __typename }", headers=alice) for _ in range(5)]
    assert [a.status_code for a in answers] == [200] * 5
    refused = gql(production, "{ __typename }", headers=alice)
    assert refused.status_code == 429 and int(refused.headers["Retry-After"]) >= 1
    err = error(refused)
    assert err["extensions"] == {"code": "RATE_LIMITED"} and "réessayez" in err["message"]
    # Another client behind the same proxy is not punished for alice, nor are probes, nor signed-in callers.
    assert gql(production, "{ __typename }", headers={"X-Forwarded-For": "203.0.113.8"}).status_code == 200
    assert httpx.get(f"{production}/healthz", headers=alice, timeout=5).status_code == 200
    assert gql(production, "{ me { role } }", tok=token("agent", subject="bob"), headers=alice).status_code == 200
    # The proxy appends the address it saw: a client cannot choose its own by sending the header itself.
    spoofed = {"X-Forwarded-For": "198.51.100.1, 203.0.113.7"}
    assert gql(production, "{ __typename }", headers=spoofed).status_code == 429


def test_production_metrics_are_for_the_platform_network_only(production):
    assert httpx.get(f"{production}/metrics", timeout=5).status_code == 200  # Prometheus, from inside
    assert httpx.get(f"{production}/metrics", headers={"X-Forwarded-For": "10.1.2.3"}, timeout=5).status_code == 200
    outside = httpx.get(f"{production}/metrics", headers={"X-Forwarded-For": "90.120.1.2"}, timeout=5)
    assert outside.status_code == 403 and outside.json()["code"] == "FORBIDDEN"
    assert "parvis_" not in outside.text


def test_production_offers_no_introspection_nor_graphiql(production):
    err = error(gql(production, "{ __schema { types { name } } }", headers={"X-Forwarded-For": "203.0.113.20"}))
    assert err["extensions"]["code"] in ("GRAPHQL_VALIDATION_FAILED", "BAD_USER_INPUT"), err
    page = httpx.get(f"{production}/graphql", headers={"Accept": "text/html", "X-Forwarded-For": "203.0.113.21"},
                     timeout=5)
    assert "graphiql" not in page.text.lower()


def test_links_are_built_from_the_public_url_not_the_host_header(platform, production):
    agent = token("agent", subject="bob")
    site = ok(gql(production, """mutation($s: SiteInput!) { saveSite(site: $s) { id } }""",
                  {"s": {"name": "Piscine de Castanet", "commune": "castanet-tolosan",
                         "competence": "Equipements culturels, sportifs et de loisirs"}}, agent))["saveSite"]
    forged = {"Host": "evil.example", "X-Forwarded-Host": "evil.example", "X-Forwarded-Proto": "http"}
    kiosk = ok(gql(production, """mutation($k: KioskInput!) { registerKiosk(kiosk: $k) { provisioningUrl } }""",
                   {"k": {"siteId": site["id"], "name": "Borne"}}, agent, headers=forged))["registerKiosk"]
    assert kiosk["provisioningUrl"].startswith(f"{PUBLIC_URL}/kiosk#token=")
    assert "evil" not in kiosk["provisioningUrl"]


def test_documents_are_capped_in_size_and_in_cost(platform):
    padding = "#" + "x" * (33 * 1024) + "\n"
    big = gql(platform.url, padding + "{ __typename }")
    assert big.status_code == 413 and error(big)["extensions"]["code"] == "PAYLOAD_TOO_LARGE"
    assert "Kio" in error(big)["message"]
    # Large data belongs in variables: a 100 KiB variable with a short document is read (and refused on its merits).
    q = "mutation($e: String!) { requestLoginCode(email: $e) { sent } }"
    long_variable = gql(platform.url, q, {"e": "a" * 100_000 + "@example.org"})
    assert long_variable.status_code == 200 and error(long_variable)["extensions"]["code"] == "BAD_USER_INPUT"
    # A body past the HTTP cap is refused before it is read in full.
    huge = httpx.post(f"{platform.url}/graphql", content=b'{"query": "' + b"x" * (2 * 1024 * 1024) + b'"}',
                      headers={"Content-Type": "application/json"}, timeout=20)
    assert huge.status_code == 413
    # Aliases multiply: 30 pages of 500 events is refused before anything runs.
    costly = "{ " + " ".join(f"a{i}: events(first: 500) {{ edges {{ node {{ id }} }} }}" for i in range(30)) + " }"
    err = error(gql(platform.url, costly))
    assert err["extensions"]["code"] == "QUERY_TOO_COSTLY", err
    assert ok(gql(platform.url, "{ events(first: 20) { totalCount edges { node { id occurrences { startsAt } } } } }"))


def test_the_embedded_widget_endpoint_reads_only(platform):
    read = httpx.post(f"{platform.url}/embed/graphql", json={"query": "{ events(first: 1) { totalCount } }"},
                      headers={"Origin": "https://www.mairie-labege.example"}, timeout=10)
    assert read.status_code == 200 and "errors" not in read.json()
    for sneaky in ("#{ events\nmutation { signOut }", "mutation { signOut }",
                   "query A { __typename } mutation B { signOut }", "subscription { satisfactionUpdates(siteId: \"s\") "
                   "{ totalToday } }", ""):
        refused = httpx.post(f"{platform.url}/embed/graphql", json={"query": sneaky}, timeout=10)
        assert refused.status_code in (400, 403), (sneaky, refused.status_code, refused.text)
        assert refused.json()["errors"][0]["extensions"]["code"] in ("BAD_REQUEST", "FORBIDDEN")
    for body in ([], "x", {"query": 42}, {"query": "{ __typename }", "variables": [1]}):
        refused = httpx.post(f"{platform.url}/embed/graphql", json=body, timeout=10)
        assert refused.status_code == 400 and refused.json()["errors"][0]["extensions"]["code"] == "BAD_REQUEST"
    big = httpx.post(f"{platform.url}/embed/graphql", json={"query": "#" + "x" * 40_000 + "\n{ __typename }"}, timeout=10)
    assert big.status_code == 413
    # A token is never used there: the widget is anonymous whatever the page sends.
    me = httpx.post(f"{platform.url}/embed/graphql", json={"query": "{ me { role } }"},
                    headers={"Authorization": f"Bearer {token('operator')}"}, timeout=10)
    assert me.status_code != 200 or me.json()["data"]["me"]["role"] == "PUBLIC"


# -- events: moderation and what each reader sees ---------------------------------------------------------------

def test_moderation_decides_on_the_version_the_agent_reviewed(platform):
    org = token("organizer", org=LABEGE, subject="alice")
    agent = token("agent", subject="bob")
    event = draft(platform, org)
    reviewed = submit(platform, org, event["id"])["version"]
    # The organiser changes the text while the agent reads the previous one.
    q = "mutation($id: ID!, $e: EventInput!) { updateEvent(id: $id, event: $e) { version moderationState } }"
    changed = ok(gql(platform.url, q, {"id": event["id"], "e": {
        "title": "Atelier — lien vers un site douteux", "description": "Cliquez ici.", "category": "atelier",
        "slots": [{"startsAt": paris_day(12, 14), "endsAt": paris_day(12, 16)}],
        "location": {"commune": "labege"}}}, org))["updateEvent"]
    assert changed["version"] > reviewed and changed["moderationState"] == "SUBMITTED"
    stale = error(gql(platform.url, MODERATE, {"id": event["id"], "v": reviewed, "d": "APPROVE"}, agent))
    assert stale["extensions"]["code"] == "CONFLICT" and "relisez" in stale["message"]
    public = ok(gql(platform.url, "query($id: ID!) { event(id: $id) { id } }", {"id": event["id"]}))
    assert public["event"] is None
    decided = ok(gql(platform.url, MODERATE, {"id": event["id"], "v": changed["version"], "d": "REJECT",
                                              "r": "Lien publicitaire"}, agent))["moderateEvent"]
    assert decided["moderationState"] == "REJECTED" and decided["rejectionReason"] == "Lien publicitaire"
    missing = error(gql(platform.url, "mutation($id: ID!) { moderateEvent(id: $id, decision: APPROVE) { id } }",
                        {"id": event["id"]}, agent))
    assert missing["extensions"]["code"] in ("GRAPHQL_VALIDATION_FAILED", "BAD_USER_INPUT")


def test_the_public_reads_its_own_projection_of_an_event(platform):
    org = token("organizer", org=LABEGE, subject="alice")
    agent = token("agent", subject="bob")
    event = draft(platform, org, title="Loto des aînés")
    version = submit(platform, org, event["id"])["version"]
    ok(gql(platform.url, MODERATE, {"id": event["id"], "v": version, "d": "APPROVE"}, agent))
    fields = "id title version rejectionReason possibleDuplicates { id } pendingRevision { title }"
    q = f"query($id: ID!) {{ event(id: $id) {{ {fields} }} }}"
    public = wait_until(lambda: ok(gql(platform.url, q, {"id": event["id"]}))["event"], 15,
                        message="the event in the public copy")
    assert public["title"] == "Loto des aînés"
    assert public["version"] is None and public["rejectionReason"] is None and public["pendingRevision"] is None
    assert public["possibleDuplicates"] == []
    # The organiser's pending revision stays private until approved.
    q_edit = "mutation($id: ID!, $e: EventInput!) { updateEvent(id: $id, event: $e) { pendingRevision { title } } }"
    revised = ok(gql(platform.url, q_edit, {"id": event["id"], "e": {
        "title": "Loto des aînés (complet)", "description": "Pour tous.", "category": "atelier",
        "slots": [{"startsAt": paris_day(12, 14), "endsAt": paris_day(12, 16)}],
        "location": {"commune": "labege", "place": "Médiathèque"}}}, org))["updateEvent"]
    assert revised["pendingRevision"]["title"] == "Loto des aînés (complet)"
    assert ok(gql(platform.url, q, {"id": event["id"]}))["event"]["title"] == "Loto des aînés"
    # Withdrawn: a tombstone says so, without the description or the organiser's reason.
    ok(gql(platform.url, 'mutation($id: ID!) { withdrawEvent(id: $id, reason: "erreur interne du service") { id } }',
           {"id": event["id"]}, org))
    assert ok(gql(platform.url, q, {"id": event["id"]}))["event"] is None
    tomb = wait_until(lambda: removed(platform).get(event["id"]), 15, message="a tombstone for delta sync")
    assert tomb["removed"] and tomb["description"] in ("", None) and "interne" not in str(tomb)


def removed(platform) -> dict:
    q = """{ events(first: 100, filter: {includeRemoved: true}) { edges { node { id removed title description
      rejectionReason } } } }"""
    return {e["node"]["id"]: e["node"] for e in ok(gql(platform.url, q))["events"]["edges"] if e["node"]["removed"]}


def test_an_event_withdrawn_before_its_publication_time_never_shows(platform):
    org = token("organizer", org=LABEGE, subject="alice")
    agent = token("agent", subject="bob")
    soon = (datetime.now(timezone.utc) + timedelta(seconds=3)).isoformat()
    event = draft(platform, org, title="Annonce embargo", publishAt=soon)
    version = submit(platform, org, event["id"])["version"]
    ok(gql(platform.url, MODERATE, {"id": event["id"], "v": version, "d": "APPROVE"}, agent))
    ok(gql(platform.url, "mutation($id: ID!) { withdrawEvent(id: $id) { id } }", {"id": event["id"]}, org))
    import time

    time.sleep(5)
    q = "query($id: ID!) { event(id: $id) { id removed } }"
    assert ok(gql(platform.url, q, {"id": event["id"]}))["event"] is None
    found = ok(gql(platform.url, '{ events(first: 50, filter: {text: "embargo"}) { edges { node { id } } } }'))
    assert found["events"]["edges"] == []
    assert event["id"] not in removed(platform), "never public, so no tombstone either"


def test_other_organisations_cannot_touch_an_event(platform):
    org = token("organizer", org=LABEGE, subject="alice")
    other = token("organizer", org="org-commune-ramonville-saint-agne", subject="eve")
    event = draft(platform, org)
    for mutation in ('mutation($id: ID!) { submitEvent(id: $id) { id } }',
                     'mutation($id: ID!) { withdrawEvent(id: $id) { id } }'):
        err = error(gql(platform.url, mutation, {"id": event["id"]}, other))
        assert err["extensions"]["code"] in ("FORBIDDEN", "NOT_FOUND"), err
    citizen = token("citizen", subject="cit-1")
    err = error(gql(platform.url, MODERATE, {"id": event["id"], "v": 1, "d": "APPROVE"}, citizen))
    assert err["extensions"]["code"] == "FORBIDDEN"


# -- sign-in ----------------------------------------------------------------------------------------------------

LOGIN = "mutation($e: String!) { requestLoginCode(email: $e) { sent expiresInSeconds } }"
VERIFY = "mutation($e: String!, $c: String!) { verifyLoginCode(email: $e, code: $c) { token } }"


def test_sign_in_never_tells_whether_an_address_is_known(platform):
    first, code = login(platform, "known@example.org")
    ok(gql(platform.url, VERIFY, {"e": "known@example.org", "c": code}))
    again, _ = login(platform, "known@example.org")
    stranger = gql(platform.url, LOGIN, {"e": "stranger@example.org"}).json()
    assert first == again == stranger == {"data": {"requestLoginCode": {"sent": True, "expiresInSeconds": 600}}}
    wrong_known = error(gql(platform.url, VERIFY, {"e": "known@example.org", "c": "000000"}))
    wrong_unknown = error(gql(platform.url, VERIFY, {"e": "nobody@example.org", "c": "000000"}))
    assert wrong_known == wrong_unknown


def test_guessing_codes_is_limited_per_address_across_fresh_codes(platform):
    address = "mallory-target@example.org"
    guesses, refused = 0, None
    for _ in range(3):  # a new code does not reset the count (PARVIS_LOGIN_ATTEMPTS_PER_ADDRESS=4 here)
        _, code = login(platform, address)
        for _ in range(2):
            guesses += 1
            wrong = f"{(int(code) + guesses) % 1000000:06d}"
            err = error(gql(platform.url, VERIFY, {"e": address, "c": wrong}))
            if "essais" in err["message"].lower():
                refused = err
                break
        if refused:
            break
    assert refused is not None and guesses == 5, (guesses, refused)
    assert refused["extensions"] == {"code": "BAD_USER_INPUT", "field": "code"}
    # Even the right code is refused now, for this address only.
    _, code = login(platform, address)
    assert "essais" in error(gql(platform.url, VERIFY, {"e": address, "c": code}))["message"].lower()
    _, code = login(platform, "someone-else@example.org")
    assert ok(gql(platform.url, VERIFY, {"e": "someone-else@example.org", "c": code}))["verifyLoginCode"]["token"]


def _mails(platform, address: str) -> list:
    """What parvis up's dev SMTP server received for `address` (kept under the data dir), oldest first."""
    from email import message_from_bytes, policy
    from pathlib import Path

    paths = sorted((Path(platform.data_dir) / "mail").glob("*.eml"), key=lambda p: p.stat().st_mtime_ns)
    found = [message_from_bytes(p.read_bytes(), policy=policy.default) for p in paths]
    return [m for m in found if m["To"] == address]


def login(platform, address: str) -> tuple[dict, str]:
    """Ask for a sign-in code; return the answer and the code mailed."""
    import re

    before = len(_mails(platform, address))
    answer = gql(platform.url, LOGIN, {"e": address}).json()
    msg = wait_until(lambda: len(_mails(platform, address)) > before and _mails(platform, address)[-1], 15,
                     message=f"a code mailed to {address}")
    return answer, re.search(r"\b(\d{6})\b", msg["Subject"]).group(1)
