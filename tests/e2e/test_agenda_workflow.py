"""The agenda end to end through the gateway on the real stack: an organiser drafts and submits, the public
cannot see it, an agent approves, the public finds it by commune and by an accent-free search, another
organisation's organiser is refused; bad input is refused naming the field; the exports and the widget."""
from datetime import datetime, timedelta, timezone

import httpx
import pytest

from tests.support import Platform, token, wait_until

LABEGE = "org-commune-labege"
OTHER = "org-commune-ramonville-saint-agne"

EVENT_FIELDS = """id title description descriptionHtml startsAt endsAt rrule commune { slug name } category
  moderationState status organizer { id name } occurrences { startsAt endsAt } removed rejectionReason
  possibleDuplicates { id title } pendingRevision { title }"""


@pytest.fixture(scope="module")
def platform(mongo, broker):
    mongo.drop_all()
    p = Platform(mongo, broker)
    p.up_proc = p.up("agenda", "notification", "gateway", "--no-demo-events")
    yield p
    p.stop()


def gql(platform, query, variables=None, tok=None):
    h = {"Authorization": f"Bearer {tok}"} if tok else {}
    r = httpx.post(f"{platform.url}/graphql", json={"query": query, "variables": variables or {}}, headers=h,
                   timeout=20)
    return r.json()


def ok(body):
    assert "errors" not in body, body
    return body["data"]


def paris_day(days: int, hour: int) -> str:
    d = datetime.now(timezone.utc) + timedelta(days=days)
    return d.strftime(f"%Y-%m-%dT{hour:02d}:00:00")


def event_input(**over):
    base = {"title": "Fête de la musique", "description": "Concerts **gratuits** sur la place.",
            "slots": [{"startsAt": paris_day(10, 19), "endsAt": paris_day(10, 23)}],
            "location": {"commune": "labege", "place": "Place de la mairie"}, "category": "fete-locale",
            "accessibility": ["MOTOR"], "tags": ["musique"]}
    base.update(over)
    return base


CREATE = f"mutation($e: EventInput!) {{ createEvent(event: $e) {{ {EVENT_FIELDS} }} }}"
SEARCH = """query($f: EventFilter, $first: Int!, $after: String) { events(filter: $f, first: $first, after: $after) {
  totalCount pageInfo { hasNextPage endCursor } edges { cursor node { id title commune { slug } status } } } }"""


def version(platform, event_id: str) -> int:
    """The version of the event an agent reviews before deciding (moderateEvent names it)."""
    return ok(gql(platform, "query($id: ID!) { event(id: $id) { version } }", {"id": event_id},
                  token("agent")))["event"]["version"]


def categories(platform):
    return {c["slug"] for c in ok(gql(platform, "{ categories { slug } }"))["categories"]}


def test_workflow_from_draft_to_public(platform):
    assert "fete-locale" in categories(platform)
    org_tok = token("organizer", org=LABEGE, subject="alice")
    agent = token("agent", subject="bob")
    created = ok(gql(platform, CREATE, {"e": event_input()}, org_tok))["createEvent"]
    assert created["moderationState"] == "DRAFT" and created["organizer"]["id"] == LABEGE
    assert created["commune"] == {"slug": "labege", "name": "Labège"}
    assert "<strong>gratuits</strong>" in created["descriptionHtml"]
    eid = created["id"]
    submitted = ok(gql(platform, "mutation($id: ID!) { submitEvent(id: $id) { moderationState } }", {"id": eid},
                       org_tok))["submitEvent"]
    assert submitted["moderationState"] == "SUBMITTED"

    # The public sees nothing yet; the other organisation's organiser may not touch it.
    assert ok(gql(platform, "query($id: ID!) { event(id: $id) { id } }", {"id": eid}))["event"] is None
    assert ok(gql(platform, SEARCH, {"f": {"communes": ["labege"]}, "first": 10}))["events"]["totalCount"] == 0
    other = token("organizer", org=OTHER)
    refused = gql(platform, "mutation($id: ID!) { withdrawEvent(id: $id) { id } }", {"id": eid}, other)
    assert refused["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    refused = gql(platform, "mutation($id: ID!, $v: Int!) { moderateEvent(id: $id, version: $v, decision: APPROVE) { id } }", {"id": eid, "v": version(platform, eid)},
                  org_tok)
    assert refused["errors"][0]["extensions"]["code"] == "FORBIDDEN"

    queue = ok(gql(platform, "{ moderationQueue { totalCount counts { submitted total } edges { node { id } } } }",
                   tok=agent))["moderationQueue"]
    assert eid in [e["node"]["id"] for e in queue["edges"]] and queue["counts"]["submitted"] >= 1
    approved = ok(gql(platform, "mutation($id: ID!, $v: Int!) { moderateEvent(id: $id, version: $v, decision: APPROVE) { moderationState } }",
                      {"id": eid, "v": version(platform, eid)}, agent))["moderateEvent"]
    assert approved["moderationState"] == "PUBLISHED"

    by_commune = ok(gql(platform, SEARCH, {"f": {"communes": ["labege"]}, "first": 10}))["events"]
    assert [e["node"]["id"] for e in by_commune["edges"]] == [eid] and by_commune["totalCount"] == 1
    by_text = ok(gql(platform, SEARCH, {"f": {"text": "FETE musique"}, "first": 10}))["events"]
    assert [e["node"]["title"] for e in by_text["edges"]] == ["Fête de la musique"]
    assert ok(gql(platform, SEARCH, {"f": {"communes": ["escalquens"]}, "first": 10}))["events"]["totalCount"] == 0
    assert ok(gql(platform, SEARCH, {"f": {"text": "fete", "to": paris_day(2, 0)}, "first": 10}))["events"]["totalCount"] == 0

    # An organiser's edit of the published event waits for an agent; the public keeps the published version.
    edited = ok(gql(platform, f"mutation($id: ID!, $e: EventInput!) {{ updateEvent(id: $id, event: $e) {{ {EVENT_FIELDS} }} }}",
                    {"id": eid, "e": event_input(title="Fête de la musique 2e édition")}, org_tok))["updateEvent"]
    assert edited["title"] == "Fête de la musique" and edited["pendingRevision"]["title"].endswith("2e édition")
    public = ok(gql(platform, "query($id: ID!) { event(id: $id) { title pendingRevision { title } } }", {"id": eid}))
    assert public["event"] == {"title": "Fête de la musique", "pendingRevision": None}
    ok(gql(platform, "mutation($id: ID!, $v: Int!) { moderateEvent(id: $id, version: $v, decision: APPROVE) { id } }", {"id": eid, "v": version(platform, eid)}, agent))
    public = ok(gql(platform, "query($id: ID!) { event(id: $id) { title } }", {"id": eid}))
    assert public["event"]["title"] == "Fête de la musique 2e édition"

    # Cancelled, then withdrawn: a tombstone for partners' delta sync.
    since = datetime.now(timezone.utc).isoformat()
    cancelled = ok(gql(platform, 'mutation($id: ID!) { setEventStatus(id: $id, status: CANCELLED, reason: "pluie") { status } }',
                       {"id": eid}, org_tok))["setEventStatus"]
    assert cancelled["status"] == "CANCELLED"
    ok(gql(platform, "mutation($id: ID!) { withdrawEvent(id: $id) { removed } }", {"id": eid}, org_tok))
    assert ok(gql(platform, SEARCH, {"f": {"communes": ["labege"]}, "first": 10}))["events"]["totalCount"] == 0
    delta = ok(gql(platform, """query($f: EventFilter) { events(filter: $f, first: 10) { edges { node { id removed } } } }""",
                   {"f": {"updatedSince": since, "includeRemoved": True}}))["events"]["edges"]
    assert [e["node"] for e in delta] == [{"id": eid, "removed": True}]


def test_rejection_with_reason_and_my_events(platform):
    org_tok = token("organizer", org=OTHER, subject="carol")
    agent = token("agent")
    eid = ok(gql(platform, CREATE, {"e": event_input(title="Loto du club", location={"commune": "ramonville-saint-agne"})},
                 org_tok))["createEvent"]["id"]
    ok(gql(platform, "mutation($id: ID!) { submitEvent(id: $id) { id } }", {"id": eid}, org_tok))
    no_reason = gql(platform, "mutation($id: ID!, $v: Int!) { moderateEvent(id: $id, version: $v, decision: REJECT) { id } }", {"id": eid, "v": version(platform, eid)}, agent)
    assert no_reason["errors"][0]["extensions"] == {"code": "BAD_USER_INPUT", "field": "reason"}
    rejected = ok(gql(platform, 'mutation($id: ID!, $v: Int!) { moderateEvent(id: $id, version: $v, decision: REJECT, reason: "Doublon") { moderationState rejectionReason } }',
                      {"id": eid, "v": version(platform, eid)}, agent))["moderateEvent"]
    assert rejected == {"moderationState": "REJECTED", "rejectionReason": "Doublon"}
    mine = ok(gql(platform, "{ myEvents { totalCount edges { node { id moderationState } } } }", tok=org_tok))["myEvents"]
    assert {"id": eid, "moderationState": "REJECTED"} in [e["node"] for e in mine["edges"]]
    assert gql(platform, "{ myEvents { totalCount } }")["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"


@pytest.mark.parametrize("over, field", [
    ({"slots": [{"startsAt": paris_day(5, 20), "endsAt": paris_day(5, 18)}]}, "slots.0.ends_at"),
    ({"location": {"commune": "paris"}}, "location.commune"),
    ({"rrule": "FREQ=DAILY"}, "rrule"),
    ({"rrule": "FREQ=DAILY;COUNT=1000"}, "rrule"),
    ({"rrule": "NOT A RULE"}, "rrule"),
    ({"title": "x" * 300}, "title"),
    ({"registrationUrl": "javascript:alert(1)"}, "registration_url"),
    ({"description": "Bonjour <script>alert(1)</script>"}, "description"),
    ({"description": "[clic](javascript:alert(1))"}, "description"),
])
def test_bad_input_names_the_field_and_stores_nothing(platform, mongo, over, field):
    org_tok = token("organizer", org=LABEGE)
    before = mongo.client()["parvis_agenda"].events.count_documents({})
    body = gql(platform, CREATE, {"e": event_input(**over)}, org_tok)
    assert body["errors"][0]["extensions"] == {"code": "BAD_USER_INPUT", "field": field}, body
    assert mongo.client()["parvis_agenda"].events.count_documents({}) == before


def test_duplicate_warning_and_recurrence(platform):
    org_tok = token("organizer", org=LABEGE)
    agent = token("agent")
    first = ok(gql(platform, CREATE, {"e": event_input(title="Marché de Noël de Labège")}, org_tok))["createEvent"]["id"]
    ok(gql(platform, "mutation($id: ID!, $v: Int!) { moderateEvent(id: $id, version: $v, decision: APPROVE) { id } }", {"id": first, "v": version(platform, first)}, agent))
    second = ok(gql(platform, CREATE, {"e": event_input(title="Marche de noel Labege")}, org_tok))["createEvent"]["id"]
    sub = ok(gql(platform, "mutation($id: ID!) { submitEvent(id: $id) { possibleDuplicates { id } } }", {"id": second},
                 org_tok))["submitEvent"]
    assert sub["possibleDuplicates"] == [{"id": first}]
    weekly = ok(gql(platform, CREATE, {"e": event_input(title="Yoga", rrule="FREQ=WEEKLY;COUNT=5")}, org_tok))["createEvent"]
    assert weekly["rrule"] == "FREQ=WEEKLY;COUNT=5" and len(weekly["occurrences"]) == 5


def test_scheduled_publication_and_metrics(platform):
    agent = token("agent")
    later = (datetime.now(timezone.utc) + timedelta(days=2)).isoformat()
    organizer = token("organizer", org=LABEGE)
    eid = ok(gql(platform, CREATE, {"e": event_input(title="Vernissage secret", publishAt=later)},
                 organizer))["createEvent"]["id"]
    ok(gql(platform, "mutation($id: ID!) { submitEvent(id: $id) { id } }", {"id": eid}, organizer))
    ok(gql(platform, "mutation($id: ID!, $v: Int!) { moderateEvent(id: $id, version: $v, decision: APPROVE) { id } }", {"id": eid, "v": version(platform, eid)}, agent))
    assert ok(gql(platform, "query($id: ID!) { event(id: $id) { id } }", {"id": eid}))["event"] is None
    assert ok(gql(platform, SEARCH, {"f": {"text": "vernissage"}, "first": 5}))["events"]["totalCount"] == 0
    metrics = httpx.get(f"http://127.0.0.1:{platform.metrics_base}/metrics", timeout=10).text
    assert 'parvis_agenda_transitions_total{action="approve",outcome="published"}' in metrics
    assert "parvis_agenda_moderation_queue{" in metrics and "parvis_agenda_time_to_decision_seconds_bucket" in metrics


@pytest.fixture(scope="module")
def published(platform):
    """Two public events in Escalquens: a weekly one, and a cancelled one."""
    agent = token("agent")
    ids = []
    for over in ({"title": "Atelier jardinage", "rrule": "FREQ=WEEKLY;COUNT=4", "category": "atelier"},
                 {"title": "Concert de l'école", "category": "concert"}):
        e = event_input(location={"commune": "escalquens", "place": "Salle des fêtes"}, **over)
        eid = ok(gql(platform, CREATE, {"e": e}, token("organizer", org="org-jardins-partages-d-escalquens")))["createEvent"]["id"]
        ok(gql(platform, "mutation($id: ID!, $v: Int!) { moderateEvent(id: $id, version: $v, decision: APPROVE) { id } }", {"id": eid, "v": version(platform, eid)}, agent))
        ids.append(eid)
    ok(gql(platform, "mutation($id: ID!) { setEventStatus(id: $id, status: CANCELLED) { id } }", {"id": ids[1]}, agent))
    return ids


def test_ics_export_parses_back(platform, published):
    import icalendar

    r = httpx.get(f"{platform.url}/agenda.ics", params={"commune": "escalquens"}, timeout=20)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/calendar")
    cal = icalendar.Calendar.from_ical(r.content)
    assert [tz["TZID"] for tz in cal.walk("VTIMEZONE")] == ["Europe/Paris"]
    events = {str(e["UID"]): e for e in cal.walk("VEVENT")}
    weekly, cancelled = (events[f"{i}@parvis.sicoval.fr"] for i in published)
    assert weekly["RRULE"]["FREQ"] == ["WEEKLY"] and weekly["RRULE"]["COUNT"] == [4]
    assert weekly.decoded("DTSTART").tzinfo.key == "Europe/Paris" and weekly.decoded("DTSTART").hour == 19
    assert str(cancelled["STATUS"]) == "CANCELLED" and str(weekly["STATUS"]) == "CONFIRMED"
    again = icalendar.Calendar.from_ical(httpx.get(f"{platform.url}/agenda.ics?commune=escalquens").content)
    assert sorted(str(e["UID"]) for e in again.walk("VEVENT")) == sorted(events)  # stable UIDs


def test_csv_jsonld_and_print(platform, published):
    import csv
    import io

    r = httpx.get(f"{platform.url}/agenda.csv", params={"commune": "escalquens"}, timeout=20)
    assert r.content.startswith("\ufeff".encode()), "the byte-order mark French spreadsheets need"
    rows = list(csv.DictReader(io.StringIO(r.content.decode("utf-8-sig"))))
    assert {row["id"] for row in rows} == set(published) and rows[0]["commune"] == "Escalquens"
    assert "license" in r.headers["link"]
    doc = httpx.get(f"{platform.url}/agenda.jsonld", params={"commune": "escalquens"}, timeout=20).json()
    statuses = {e["identifier"]: e["eventStatus"] for e in doc["@graph"]}
    assert statuses[published[1]] == "https://schema.org/EventCancelled"
    assert doc["@context"] == "https://schema.org" and all(e["@type"] == "Event" for e in doc["@graph"])
    page = httpx.get(f"{platform.url}/agenda/print", params={"commune": "escalquens"}, timeout=20)
    assert "@page" in page.text and "Atelier jardinage" in page.text and "ANNULÉ" in page.text
    bad = httpx.get(f"{platform.url}/agenda.csv", params={"from": "not a date"}, timeout=20)
    assert bad.status_code == 400 and bad.json()["code"] == "BAD_USER_INPUT"
    assert bad.json()["field"] == "from" and bad.json()["error"].startswith("from : date et heure attendues")
    semicolon = httpx.get(f"{platform.url}/agenda.csv", params={"commune": "escalquens", "sep": "semicolon"}, timeout=20)
    assert semicolon.content.decode("utf-8-sig").splitlines()[0].startswith("id;titre;description;")


def test_unknown_communes_are_refused_by_name_and_names_are_accepted(platform, published):
    """An unknown commune gave empty results with no error, everywhere; a commune's name was not understood."""
    body = gql(platform, SEARCH, {"f": {"communes": ["paris"]}, "first": 5})
    assert body["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT" and "« paris »" in body["errors"][0]["message"]
    unknown = gql(platform, SEARCH, {"f": {"categories": ["rodeo"]}, "first": 5})
    assert unknown["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT" and "« rodeo »" in unknown["errors"][0]["message"]
    for typed in ("Escalquens", "ESCALQUENS", "escalquens"):
        assert ok(gql(platform, SEARCH, {"f": {"communes": [typed]}, "first": 5}))["events"]["totalCount"] == 2
    ics = httpx.get(f"{platform.url}/agenda.ics", params={"commune": "paris"}, timeout=20)
    assert ics.status_code == 400 and "« paris »" in ics.json()["error"] and ics.json()["field"] == "commune"
    assert httpx.get(f"{platform.url}/agenda/print", params={"commune": "paris"}, timeout=20).status_code == 404
    page = httpx.get(f"{platform.url}/agenda/print", params={"commune": "Labège"}, timeout=20)
    assert page.status_code == 200 and "Labège" in page.text
    rows = httpx.get(f"{platform.url}/agenda.csv", params={"commune": "Escalquens"}, timeout=20)
    assert rows.status_code == 200 and len(rows.content.decode("utf-8-sig").splitlines()) == 3


def test_links_use_the_configured_public_url_whatever_the_host_header(platform, published):
    """CSV and ICS used https://parvis.sicoval.fr, JSON-LD and pages the request's Host: one public URL now."""
    forged = {"Host": "evil.example"}
    doc = httpx.get(f"{platform.url}/agenda.jsonld", params={"commune": "escalquens"}, headers=forged, timeout=20).json()
    assert {e["url"].split("/agenda/")[0] for e in doc["@graph"]} == {platform.url}
    ics = httpx.get(f"{platform.url}/agenda.ics", params={"commune": "escalquens"}, headers=forged, timeout=20).text
    assert f"URL:{platform.url}/agenda/events/" in ics and "evil.example" not in ics
    csv_text = httpx.get(f"{platform.url}/agenda.csv", params={"commune": "escalquens"}, timeout=20).text
    assert f"{platform.url}/agenda/events/" in csv_text and "parvis.sicoval.fr/agenda" not in csv_text
    page = httpx.get(f"{platform.url}/agenda/events/{published[0]}", headers=forged, timeout=20).text
    assert "evil.example" not in page


def test_widget_renders_in_a_foreign_page_in_headless_chromium(platform, published):
    from playwright.sync_api import sync_playwright

    from tests.support import launch_chromium

    host_page = (f'<!doctype html><html lang="fr"><title>Mairie</title><h1>Escalquens</h1>'
                 f'<script src="{platform.url}/embed/agenda.js" data-commune="escalquens"></script></html>')
    import http.server
    import threading

    class HostPage(http.server.BaseHTTPRequestHandler):  # a commune's site, on another origin
        def do_GET(self):
            body = host_page.encode()
            self.send_response(200)
            self.send_header("content-type", "text/html; charset=utf-8")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), HostPage)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    with sync_playwright() as p:
        browser = launch_chromium(p)
        try:
            page = browser.new_page()
            console = []
            page.on("console", lambda m: console.append(m.text))
            page.goto(f"http://127.0.0.1:{server.server_address[1]}/")
            try:
                page.wait_for_selector("div.parvis-agenda[data-state=ready]", timeout=15000)
            except Exception:
                raise AssertionError(f"widget not ready; console: {console}") from None
            titles = page.locator("div.parvis-agenda li.event a").all_inner_texts()
            assert set(titles) == {"Atelier jardinage", "Concert de l'école"}
            page.locator("div.parvis-agenda select").select_option("atelier")
            wait_until(lambda: page.locator("div.parvis-agenda li.event a").all_inner_texts() == ["Atelier jardinage"],
                       10, message="category filter")
            # A commune's site that names a commune the Sicoval does not have is told so, not shown nothing.
            host_page = host_page.replace('data-commune="escalquens"', 'data-commune="paris"')
            page.goto(f"http://127.0.0.1:{server.server_address[1]}/")
            page.wait_for_selector("div.parvis-agenda[data-state=error]", timeout=15000)
            assert "« paris »" in page.locator("div.parvis-agenda li").first.inner_text()
        finally:
            browser.close()
            server.shutdown()
            server.server_close()


def gateway_metric(platform, line_start: str) -> float:
    for line in httpx.get(f"{platform.url}/metrics", timeout=10).text.splitlines():
        if line.startswith(line_start + " "):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_the_gateway_copy_follows_writes_made_elsewhere_and_answers_the_public(platform):
    """A write that does not go through the gateway (another gateway, a script) reaches the gateway's public
    copy through the agenda's events on the bus; public queries are then answered by the compiled path."""
    from tests.support import rpc_call

    agent = {"role": "agent", "subject": "script"}
    served = 'parvis_gateway_fast_path_total{outcome="served"}'
    before = gateway_metric(platform, served)
    e = {"title": "Brocante des Granges", "slots": [{"starts_at": paris_day(12, 8), "ends_at": paris_day(12, 18)}],
         "location": {"commune": "labege", "place": "Les Granges"}, "category": "fete-locale"}
    view = rpc_call(platform.env["AMQP_URL"], "agenda", "create_event", caller=agent, event=e, organizer=LABEGE)
    rpc_call(platform.env["AMQP_URL"], "agenda", "moderate_event", caller=agent, id=view["id"], version=view["version"],
             decision="approve")
    query = {"f": {"communes": ["labege"], "text": "granges"}, "first": 5}
    found = wait_until(lambda: ok(gql(platform, SEARCH, query))["events"]["edges"], 5, 0.1, "the public sees it")
    assert [x["node"]["id"] for x in found] == [view["id"]]
    assert gateway_metric(platform, served) > before
    assert gateway_metric(platform, 'parvis_gateway_public_syncs_total{outcome="ok",trigger="event"}') >= 1
    # What the compiled path cannot answer goes to Strawberry, which explains the error as always.
    body = gql(platform, "{ events(first: 10000) { totalCount } }")
    assert body["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT" and "first" in body["errors"][0]["message"]


def test_every_public_event_has_its_page_and_calendar_file(platform, published):
    import json
    import re

    from icalendar import Calendar

    weekly, cancelled = published
    r = httpx.get(f"{platform.url}/agenda/events/{weekly}", timeout=10)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assert "Atelier jardinage" in r.text and 'lang="fr"' in r.text and "Ajouter à mon agenda" in r.text
    ld = json.loads(re.search(r'<script type="application/ld\+json">(.*?)</script>', r.text, re.S).group(1))
    assert ld["@type"] == "Event" and ld["name"] == "Atelier jardinage" and ld["eventSchedule"]["repeatFrequency"]
    page = httpx.get(f"{platform.url}/agenda/events/{cancelled}", timeout=10).text
    assert "Annulé" in page and "EventCancelled" in page
    cal = Calendar.from_ical(httpx.get(f"{platform.url}/agenda/events/{weekly}.ics", timeout=10).content)
    [vevent] = [c for c in cal.walk("VEVENT")]
    assert str(vevent["SUMMARY"]) == "Atelier jardinage" and "RRULE" in vevent
    missing = httpx.get(f"{platform.url}/agenda/events/evt-nope", timeout=10)
    assert missing.status_code == 404 and "introuvable" in missing.text


def test_a_scheduled_publication_is_announced_when_it_goes_public_not_before(platform):
    """Subscribers must not hear of an event they cannot see yet: `agenda.event_published` leaves at
    publishAt (within the announcer's 10 s), and updated_at moves then, so delta sync gets the event."""
    import json as _json

    from kombu import Connection, Exchange, Queue

    agent = token("agent")
    publish_at = datetime.now(timezone.utc) + timedelta(seconds=4)
    with Connection(platform.env["AMQP_URL"]) as conn:
        queue = Queue(exclusive=True, auto_delete=True, exchange=Exchange("agenda.events", type="topic", durable=True),
                      routing_key="agenda.event_published")
        with conn.SimpleQueue(queue) as q:
            eid = ok(gql(platform, CREATE, {"e": event_input(title="Expo photo programmée",
                                                               publishAt=publish_at.isoformat())},
                         token("organizer", org=LABEGE)))["createEvent"]["id"]
            approved = ok(gql(platform, "mutation($id: ID!, $v: Int!) { moderateEvent(id: $id, version: $v, decision: APPROVE) { "
                                        "updatedAt } }", {"id": eid, "v": version(platform, eid)}, agent))["moderateEvent"]
            seen = []

            def published_of_ours():
                try:
                    msg = q.get(timeout=0.5)
                except q.Empty:
                    return None
                msg.ack()
                body = msg.payload if isinstance(msg.payload, dict) else _json.loads(msg.payload)
                if body["data"]["id"] == eid:
                    seen.append(datetime.now(timezone.utc))
                return seen
            wait_until(published_of_ours, 30, 0, "agenda.event_published of the scheduled event")
    assert seen[0] >= publish_at, "announced before it was public"
    node = wait_until(lambda: ok(gql(platform, "query($id: ID!) { event(id: $id) { updatedAt } }", {"id": eid}))["event"],
                      10, 0.2, "the event public")
    assert node["updatedAt"] > approved["updatedAt"]
