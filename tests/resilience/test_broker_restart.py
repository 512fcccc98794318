"""The broker restarts under load: a RabbitMQ node of the test's own (tests/support.py: RabbitNode), the whole
platform on it (`parvis up`), kiosk votes and agenda writes streaming in, the node stopped for 15 s and started
again. Then: every vote the gateway acknowledged is counted exactly once; every event the agenda announced
(scheduled publications announced *while the broker was down* among them) reaches its consumer; services,
the gateway's RPC client, the outbox relay and the event consumers come back by themselves within 30 s of the
broker's return; meanwhile the gateway answers SERVICE_UNAVAILABLE fast, /readyz names what is down, and the
public agenda is still served from the gateway's copy. The figures are printed (run with -s to see them)."""
from __future__ import annotations

import json
import threading
import time
import uuid
from datetime import datetime, timedelta, timezone
from types import SimpleNamespace

import httpx
import pytest
from kombu import Connection, Exchange, Queue

from tests.support import Platform, token, wait_until

pytestmark = pytest.mark.slow

OUTAGE = 12.0  # seconds between the node's stop and its start (down ~16 s, with its start: the issue says 10-20)
BACK_WITHIN = 30.0  # seconds after its return by which everything must have reconnected
AGENT = token("agent", subject="agent:resilience")
SUBMIT = "mutation($v: [KioskVoteInput!]!) { submitKioskVotes(votes: $v) { accepted duplicates rejected { id } } }"
PUBLIC = "{ events(first: 100) { totalCount edges { node { id } } } }"
CREATE = 'mutation($e: EventInput!) { createEvent(event: $e, organizer: "org-commune-labege") { id version } }'
APPROVE = "mutation($id: ID!, $v: Int!) { moderateEvent(id: $id, version: $v, decision: APPROVE) { moderationState } }"


def event_input(title: str, publish_at: datetime | None = None) -> dict:
    day = datetime.now(timezone.utc) + timedelta(days=10)
    return {"title": title, "location": {"commune": "labege", "place": "Salle des fêtes"}, "category": "fete-locale",
            "slots": [{"startsAt": day.isoformat(), "endsAt": (day + timedelta(hours=2)).isoformat()}],
            **({"publishAt": publish_at.isoformat()} if publish_at else {})}


class Client:
    """Timed GraphQL calls: every answer kept with its time, duration and error code."""

    def __init__(self, url: str):
        self.url = url
        self.http = httpx.Client(timeout=15.0)
        self.log: list[tuple[float, float, str | None, str]] = []  # (at, seconds, error code, what)
        self.lock = threading.Lock()

    def gql(self, what: str, query: str, variables: dict | None = None, tok: str | None = None) -> dict:
        started = time.monotonic()
        headers = {"Authorization": f"Bearer {tok}"} if tok else {}
        try:
            r = self.http.post(f"{self.url}/graphql", json={"query": query, "variables": variables or {}},
                               headers=headers)
            body = r.json()
            code = (body.get("errors") or [{}])[0].get("extensions", {}).get("code") if body.get("errors") else None
            if r.status_code >= 500 and code is None:
                code = f"HTTP {r.status_code}"
        except httpx.HTTPError as exc:
            body, code = {}, f"transport: {exc.__class__.__name__}"
        with self.lock:
            self.log.append((started, time.monotonic() - started, code, what))
        return body

    def close(self) -> None:
        self.http.close()

    def during(self, start: float, end: float, what: str | None = None):
        return [e for e in self.log if start <= e[0] <= end and (what is None or e[3] == what)]


@pytest.fixture
def platform(mongo, node):
    mongo.drop_all()
    p = Platform(mongo, SimpleNamespace(url=node.url), PARVIS_RETRY_DELAYS="0.5,1,2")
    yield p
    p.stop_reporting_crashes()


@pytest.fixture
def client(platform):
    c = Client(platform.url)
    yield c
    c.close()


def audit_queue(url: str) -> Queue:
    """A durable queue of the test's own on the agenda's event exchange: what the outbox announced, kept across
    the restart (persistent messages in a durable queue)."""
    queue = Queue("test.audit.agenda", Exchange("agenda.events", type="topic", durable=True), routing_key="agenda.#",
                  durable=True)
    with Connection(url) as conn:
        queue.bind(conn.default_channel).declare()
    return queue


def drain(url: str, queue: Queue) -> list[dict]:
    out = []
    with Connection(url) as conn:
        bound = queue.bind(conn.default_channel)
        while (message := bound.get(no_ack=True)) is not None:
            out.append(json.loads(message.body))
    return out


def test_the_platform_rides_out_a_broker_restart(platform, node, mongo, client):
    up = platform.up("--no-demo-events")
    audit = audit_queue(node.url)
    c = client
    site = c.gql("setup", "mutation($s: SiteInput!) { saveSite(site: $s) { id } }",
                 {"s": {"name": "Accueil", "commune": "labege", "competence": "Accueil"}}, AGENT)["data"]["saveSite"]
    kiosk_tokens = [c.gql("setup", "mutation($k: KioskInput!) { registerKiosk(kiosk: $k) { token } }",
                          {"k": {"siteId": site["id"], "name": f"Borne {k}", "repeatSeconds": 0}}, AGENT)
                    ["data"]["registerKiosk"]["token"] for k in range(2)]
    first = c.gql("setup", CREATE, {"e": event_input("Avant la coupure")}, AGENT)["data"]["createEvent"]
    c.gql("setup", APPROVE, {"id": first["id"], "v": first["version"]}, AGENT)
    wait_until(lambda: c.gql("setup", PUBLIC)["data"]["events"]["totalCount"] == 1, 20, 0.2, "the gateway's copy")

    stop = threading.Event()
    acknowledged: set[str] = set()
    ack_lock = threading.Lock()
    pressed_base = datetime.now(timezone.utc) - timedelta(minutes=30)

    def kiosk(tok: str, k: int) -> None:
        n = 0
        while not stop.is_set():
            batch = [{"id": str(uuid.uuid4()), "rating": (i % 4) + 1,
                      "pressedAt": (pressed_base + timedelta(milliseconds=100 * (n + i) + k)).isoformat()}
                     for i in range(20)]
            n += 20
            while True:  # as the kiosk client: a batch is resent until the server answers for every vote
                report = (c.gql("votes", SUBMIT, {"v": batch}, tok).get("data") or {}).get("submitKioskVotes")
                if report is not None:
                    assert not report["rejected"], report
                    with ack_lock:
                        acknowledged.update(report["accepted"] + report["duplicates"])
                    break
                time.sleep(0.2)
            time.sleep(0.05)

    created: list[str] = []

    def agenda_writer() -> None:
        i = 0
        while not stop.is_set():
            i += 1
            body = c.gql("agenda write", CREATE, {"e": event_input(f"Pendant le flux {i}")}, AGENT)
            if body.get("data"):
                made = body["data"]["createEvent"]
                created.append(made["id"])
                c.gql("agenda write", APPROVE, {"id": made["id"], "v": made["version"]}, AGENT)
            time.sleep(0.3)

    def public_reader() -> None:
        while not stop.is_set():
            c.gql("public", PUBLIC)
            time.sleep(0.2)

    def agent_reader() -> None:  # an RPC-backed read: SERVICE_UNAVAILABLE while the broker is away
        while not stop.is_set():
            c.gql("rpc read", "{ organizations(kind: COMMUNE) { id } }", tok=AGENT)
            time.sleep(0.2)

    readyz: list[tuple[float, int, dict]] = []

    def ready_probe() -> None:
        with httpx.Client(timeout=10) as http:
            while not stop.is_set():
                at = time.monotonic()
                try:
                    r = http.get(f"{platform.url}/readyz")
                    readyz.append((at, r.status_code, r.json()))
                except httpx.HTTPError:
                    pass
                time.sleep(0.3)

    # Publications scheduled inside the outage: the agenda's timer announces them while the broker is down,
    # their events wait in the outbox, and the relay publishes them once it is back.
    outage_starts_in = 8.0
    scheduled = []
    for n in range(3):
        made = c.gql("setup", CREATE, {"e": event_input(f"Programmé {n}", datetime.now(timezone.utc) + timedelta(
            seconds=outage_starts_in + 4 + n))}, AGENT)["data"]["createEvent"]
        c.gql("setup", APPROVE, {"id": made["id"], "v": made["version"]}, AGENT)
        scheduled.append(made["id"])

    threads = [threading.Thread(target=kiosk, args=(t, k)) for k, t in enumerate(kiosk_tokens)]
    threads += [threading.Thread(target=f) for f in (agenda_writer, public_reader, agent_reader, ready_probe)]
    for t in threads:
        t.start()
    try:
        time.sleep(outage_starts_in)
        acked_before = len(acknowledged)
        down_at = time.monotonic()
        node.stop()
        stopped_at = time.monotonic()
        time.sleep(OUTAGE)
        restart_at = time.monotonic()
        node.start()
        back_at, back_wall = time.monotonic(), time.time()
        db = mongo.client()
        agenda, inbox = db.parvis_agenda.events, db.parvis_notification["_inbox"]

        def ready_part(check) -> bool:
            return any(at > back_at and check(body) for at, _, body in readyz[-3:])

        watched = {
            "gateway RPC client": lambda: any(at > back_at and code is None for at, _, code, what in c.log[-20:]
                                              if what == "rpc read"),
            **{f"service {name}": (lambda name=name: ready_part(
                lambda b: b.get("services", {}).get(name, {}).get("ok")))
               for name in ("agenda", "consultation", "satisfaction", "payment_link", "notification")},
            "gateway agenda events listener": lambda: ready_part(lambda b: b["public_agenda"]["following_events"]),
            "outbox relay (agenda)": lambda: agenda.count_documents({"_outbox_n": {"$gt": 0}}) == 0 and all(
                not d.get("announce_pending") for d in agenda.find({"_id": {"$in": scheduled}})),
            "event consumers (notification)": lambda: inbox.find_one(
                {"type": "agenda.event_published", "state": "done", "at": {"$gt": back_wall}}) is not None,
        }

        took: dict[str, float] = {}
        deadline = back_at + BACK_WITHIN + 10
        while len(took) < len(watched) and time.monotonic() < deadline:
            for name, predicate in watched.items():
                if name not in took and predicate():
                    took[name] = time.monotonic() - back_at
            time.sleep(0.1)
        assert set(took) == set(watched), f"not back {BACK_WITHIN + 10} s after the broker: {set(watched) - set(took)}"
        time.sleep(5)  # the stream goes on a little after the return
    finally:
        stop.set()
        for t in threads:
            t.join(60)
    assert not any(t.is_alive() for t in threads)

    # -- while the broker was down ------------------------------------------------------------------------
    outage = (stopped_at, restart_at)
    rpc_backed = [e for e in c.during(*outage) if e[3] in ("rpc read", "agenda write", "votes")]
    unavailable = [e for e in rpc_backed if e[2] == "SERVICE_UNAVAILABLE"]
    other_errors = [e for e in rpc_backed if e[2] not in (None, "SERVICE_UNAVAILABLE")]
    assert len(unavailable) > 20, "requests were refused while the broker was down"
    assert not other_errors, f"errors other than SERVICE_UNAVAILABLE: {other_errors[:5]}"
    slowest_refusal = max(e[1] for e in unavailable)
    assert slowest_refusal < 1.0, f"a refusal took {slowest_refusal:.2f} s (hanging requests)"
    public_reads = c.during(*outage, "public")
    assert len(public_reads) > 30 and all(e[2] is None for e in public_reads), \
        [e for e in public_reads if e[2]][:5]
    down_bodies = [body for at, status, body in readyz if stopped_at + 1 < at < restart_at]
    assert down_bodies and all("broker" in b["down"] and b["broker"] is False for b in down_bodies), down_bodies[:2]
    assert all(b["public_agenda"]["serving"] for b in down_bodies)

    # -- after: reconnected by themselves, nothing lost, nothing counted twice --------------------------------
    assert all(v <= BACK_WITHIN for v in took.values()), took
    died = [line for line in up.lines if "exited with code" in line]
    assert not died, "\n".join(died + [line for line in up.lines if "Traceback" in line or '"error"' in line][-20:])

    def counted() -> int:
        now = datetime.now(timezone.utc)
        body = c.gql("check", "query($s: ID, $f: DateTime!, $t: DateTime!) { satisfaction(siteId: $s, from: $f, "
                              "to: $t, granularity: HOUR) { total { total } } }",
                     {"s": site["id"], "f": (now - timedelta(days=1)).isoformat(), "t": now.isoformat()}, AGENT)
        return body["data"]["satisfaction"]["total"]["total"]

    votes = mongo.client().parvis_satisfaction.votes
    wait_until(lambda: counted() == len(acknowledged), 90, 0.5, f"{len(acknowledged)} votes counted")
    assert votes.count_documents({"site_id": site["id"]}) == len(acknowledged)
    assert {d["_id"] for d in votes.find({"site_id": site["id"]}, {"_id": 1})} == acknowledged

    published = {d["_id"] for d in agenda.find({"moderation_state": "published"}, {"_id": 1})}
    assert set(scheduled) <= published and len(published) > 10
    wait_until(lambda: inbox.count_documents({"type": "agenda.event_published", "state": "done"}) >= len(published),
               30, 0.5, "every publication handled")
    handled = inbox.count_documents({"type": "agenda.event_published", "state": "done"})
    announced = [e for e in drain(node.url, audit) if e["type"] == "agenda.event_published"]
    announced_ids = {e["data"]["id"] for e in announced}
    assert published <= announced_ids, f"publications never announced: {published - announced_ids}"
    assert handled == len({e["event_id"] for e in announced}), "each announcement handled once"

    # What must survive a restart is durable (the handlers', retry and dead-letter queues); RPC reply queues are not.
    queues = node.queues("name", "durable", "exclusive")
    kept = [q for q in queues if q["name"].startswith("evt-") or q["name"] == "parvis.dead-letters"]
    assert len(kept) > 10 and all(q["durable"] for q in kept), kept
    assert any(".retry-" in q["name"] for q in kept)
    assert all(q["exclusive"] and not q["durable"] for q in queues if q["name"].startswith("rpc.reply-gateway"))

    figures = {
        "outage_s": round(back_at - stopped_at, 1), "broker_stop_s": round(stopped_at - down_at, 1),
        "reconnected_after_return_s": {k: round(v, 1) for k, v in took.items()},
        "votes_acknowledged": len(acknowledged), "votes_acknowledged_before_outage": acked_before,
        "votes_stored": votes.count_documents({"site_id": site["id"]}), "votes_counted": counted(),
        "refused_during_outage": len(unavailable), "slowest_refusal_ms": round(slowest_refusal * 1000),
        "public_reads_during_outage": len(public_reads), "events_published": len(published),
        "event_published_announcements": len(announced),
        "announced_twice": len(announced) - len({e["event_id"] for e in announced}),
        "handled_by_notification": handled, "scheduled_during_outage": len(scheduled),
    }
    print("\nBROKER RESTART FIGURES " + json.dumps(figures, indent=1))
