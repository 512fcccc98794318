"""Two replicas of every service (`parvis up --replicas 2`) on one broker and one database: each replica has its own
metrics port; the exclusive timers run in one replica (their lease), the work they find done once; kiosk votes
are counted exactly once under racing resends and a kill -9 of a replica; racing moderations announce each
publication once; a fan-out to 1,500 subscribers sends one email each, the two replicas sharing the sending."""
from __future__ import annotations

import json
import os
import signal
import threading
import time
import uuid
from datetime import datetime, timedelta, timezone

import httpx
import pytest
from kombu import Connection, Exchange, Producer, Queue

from contracts import build_envelope
from core.settings import SERVICES
from tests.support import Platform, smtp_server, token, wait_until

pytestmark = pytest.mark.slow

AGENT = token("agent", subject="agent:replicas")
SUBSCRIBERS = 1500
CREATE = 'mutation($e: EventInput!) { createEvent(event: $e, organizer: "org-commune-labege") { id version } }'
APPROVE = "mutation($id: ID!, $v: Int!) { moderateEvent(id: $id, version: $v, decision: APPROVE) { moderationState } }"
SUBMIT = "mutation($v: [KioskVoteInput!]!) { submitKioskVotes(votes: $v) { accepted duplicates rejected { id } } }"
EXCLUSIVE = {"satisfaction": ("recover_batches", "watch"), "agenda": ("announce_scheduled",),
             "notification": ("daily_digest",), "payment_link": ("reconcile_round", "expire_links")}


class Counting:
    def __init__(self):
        self.lock = threading.Lock()
        self.by_rcpt: dict[str, int] = {}

    async def handle_DATA(self, server, session, envelope):
        with self.lock:
            for rcpt in envelope.rcpt_tos:
                self.by_rcpt[rcpt] = self.by_rcpt.get(rcpt, 0) + 1
        return "250 OK"


def half_done_batches(db) -> list[str]:
    """Three batches a crash left half-done (votes stored, counters not all applied), before anything starts."""
    from services.satisfaction import domain
    from services.satisfaction.store import SatisfactionStore

    store = SatisfactionStore(db)
    store.ensure_indexes()
    db.sites.insert_one({"_id": "site-r", "name": "Médiathèque", "commune": "labege", "competence": "Culture",
                         "alerts": {}})
    start = datetime.now(timezone.utc) - timedelta(hours=3)
    batches = []
    for n in range(3):
        ids = [str(uuid.uuid4()) for _ in range(30)]
        batch = store.open_batch(ids)
        docs = [{"_id": ids[i], "kiosk_id": "kiosk-r", "site_id": "site-r", "rating": 1, "scale": 4,
                 "pressed_ts": (start + timedelta(minutes=n * 40 + i)).timestamp(), "received_ts": start.timestamp(),
                 "batch": batch} for i in range(30)]
        store.insert_votes_indexed(docs)
        increments = domain.votes_increments(docs)
        store.apply_counters(batch, dict(list(increments.items())[: len(increments) // 2]))
        batches.append(batch)
    return batches


@pytest.fixture(scope="module")
def smtp():
    handler = Counting()
    with smtp_server(handler) as port:
        yield handler, port


@pytest.fixture(scope="module")
def stack(mongo, broker, smtp):
    mongo.drop_all()
    db = mongo.client()
    batches = half_done_batches(db.parvis_satisfaction)
    now = datetime.now(timezone.utc)
    db.parvis_notification.subscriptions.insert_many([
        {"_id": f"cit-{i:05d}|agenda:commune:escalquens|email", "recipient": f"cit-{i:05d}",
         "topic": "agenda:commune:escalquens", "channel": "email", "address": f"sub{i:05d}@replicas.example",
         "created_at": now} for i in range(SUBSCRIBERS)])
    audit = Queue("test.audit.replicas", Exchange("agenda.events", type="topic", durable=True),
                  routing_key="agenda.#", durable=True)
    with Connection(broker.url) as conn:
        audit.bind(conn.default_channel).declare()
    p = Platform(mongo, broker, SMTP_URL=f"smtp://127.0.0.1:{smtp[1]}", PARVIS_NOTIFY_INTERVAL="0.2",
                 PARVIS_DIGEST_HOUR="0")
    up = p.up("--replicas", "2", "--no-demo-events")
    yield {"platform": p, "up": up, "batches": batches, "audit": audit, "db": db}
    p.stop_reporting_crashes()


def gql(platform, query, variables=None, tok=AGENT, timeout=15.0) -> dict:
    headers = {"Authorization": f"Bearer {tok}"} if tok else {}
    return httpx.post(f"{platform.url}/graphql", json={"query": query, "variables": variables or {}},
                      headers=headers, timeout=timeout).json()


def service_pids(up, name: str) -> list[int]:
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
                with open(f"/proc/{entry}/cmdline", "rb") as f:
                    argv = f.read().split(b"\0")
            except OSError:
                continue
            if ppid == up.proc.pid and b"service" in argv and name.encode() in argv:
                pids.append(int(entry))
    return pids


def test_every_service_runs_twice_each_replica_on_its_own_metrics_port(stack):
    p, up = stack["platform"], stack["up"]
    for name in SERVICES:
        assert len(service_pids(up, name)) == 2, name
        for replica in (1, 2):
            assert p.metric(name, "parvis_workers_max", replica=replica, service=name), (name, replica)
    assert "Replicas" in up.output() and f":{p.metrics_port('notification', 2)}" in up.output()
    assert httpx.get(f"{p.url}/readyz", timeout=5).json()["status"] == "ready"


def test_each_exclusive_timer_runs_in_one_replica_and_its_work_is_done_once(stack):
    p, up, db = stack["platform"], stack["up"], stack["db"]

    def holders(service, timer):
        return sum(p.metric(service, "parvis_timer_lease_held", replica=r, service=service, timer=timer) or 0
                   for r in (1, 2))

    for service, timers in EXCLUSIVE.items():
        for name in timers:
            wait_until(lambda: holders(service, name) == 1, 30, 0.5, f"{service}.{name} held by one replica")
            lease = db[f"parvis_{service}"]["_leases"].find_one({"_id": f"{service}.{name}"})
            assert lease and lease["until"] > time.time(), lease
    # The half-done batches left before the start: each recovered once, by one replica.
    wait_until(lambda: db.parvis_satisfaction.batches.count_documents({}) == 0, 90, 0.5, "the batches recovered")
    recovered = [line for line in up.lines if "recovering batch" in line]
    assert sorted(b for b in stack["batches"] if any(b in line for line in recovered)) == sorted(stack["batches"])
    assert len(recovered) == len(stack["batches"]), recovered
    counters = list(db.parvis_satisfaction.counters.find({"scope": "site", "ref": "site-r", "gran": "day"}))
    assert sum(c["total"] for c in counters) == 90
    # The day's digest (PARVIS_DIGEST_HOUR=0: due at once): run by one replica, once.
    wait_until(lambda: db.parvis_notification.digest_runs.find_one({"done": True}), 60, 0.5, "the digest run")
    time.sleep(1)
    assert len([line for line in up.lines if "digest of" in line]) == 1


def test_kiosk_votes_count_once_under_racing_resends_and_a_kill9_of_a_replica(stack):
    p, up, db = stack["platform"], stack["up"], stack["db"]
    site = gql(p, "mutation($s: SiteInput!) { saveSite(site: $s) { id } }",
               {"s": {"name": "Piscine", "commune": "labege", "competence": "Sport"}})["data"]["saveSite"]
    tokens = [gql(p, "mutation($k: KioskInput!) { registerKiosk(kiosk: $k) { token } }",
                  {"k": {"siteId": site["id"], "name": f"Borne {k}", "repeatSeconds": 0}})["data"]["registerKiosk"]
              ["token"] for k in range(3)]
    base = datetime.now(timezone.utc) - timedelta(hours=1)
    acknowledged: set[str] = set()
    lock = threading.Lock()

    def send(tok, batch):
        while True:  # resent until answered
            try:
                body = gql(p, SUBMIT, {"v": batch}, tok, timeout=5.0)
            except httpx.HTTPError:
                continue
            report = (body.get("data") or {}).get("submitKioskVotes")
            if report is not None:
                assert not report["rejected"], report
                with lock:
                    acknowledged.update(report["accepted"] + report["duplicates"])
                return
            time.sleep(0.1)

    def kiosk(tok, k):
        for b in range(30):
            batch = [{"id": str(uuid.uuid4()), "rating": (i % 4) + 1,
                      "pressedAt": (base + timedelta(seconds=b * 50 + i, milliseconds=k)).isoformat()}
                     for i in range(50)]
            # The same batch sent twice at once (a kiosk resending while its first request is still running).
            racers = [threading.Thread(target=send, args=(tok, batch)) for _ in range(2)]
            for t in racers:
                t.start()
            for t in racers:
                t.join()

    threads = [threading.Thread(target=kiosk, args=(t, k)) for k, t in enumerate(tokens)]
    for t in threads:
        t.start()
    wait_until(lambda: len(acknowledged) >= 1000, 60, 0.05, "votes streaming")
    victim = service_pids(up, "satisfaction")[0]
    os.kill(victim, signal.SIGKILL)
    for t in threads:
        t.join(180)
    assert not any(t.is_alive() for t in threads)
    total = 3 * 30 * 50
    assert len(acknowledged) == total

    def counted():
        now = datetime.now(timezone.utc)
        body = gql(p, "query($s: ID, $f: DateTime!, $t: DateTime!) { satisfaction(siteId: $s, from: $f, to: $t, "
                      "granularity: HOUR) { total { total } } }",
                   {"s": site["id"], "f": (now - timedelta(days=1)).isoformat(), "t": now.isoformat()})
        return body["data"]["satisfaction"]["total"]["total"]

    wait_until(lambda: counted() == total, 120, 1.0, f"{total} votes counted (the killed replica's batch recovered)")
    assert db.parvis_satisfaction.votes.count_documents({"site_id": site["id"]}) == total
    assert any("satisfaction" in line and "exited with code -9" in line for line in up.lines)


def test_racing_moderations_and_scheduled_publications_are_announced_once(stack):
    p, db = stack["platform"], stack["db"]

    def event_input(title, publish_at=None):
        day = datetime.now(timezone.utc) + timedelta(days=20)
        return {"title": title, "location": {"commune": "labege", "place": "Halle"}, "category": "fete-locale",
                "slots": [{"startsAt": day.isoformat(), "endsAt": (day + timedelta(hours=1)).isoformat()}],
                **({"publishAt": publish_at.isoformat()} if publish_at else {})}

    made = [gql(p, CREATE, {"e": event_input(f"Course {i}")})["data"]["createEvent"] for i in range(12)]
    ids = [m["id"] for m in made]
    outcomes: list[str | None] = []

    def approve(m):
        body = gql(p, APPROVE, {"id": m["id"], "v": m["version"]})
        outcomes.append(body["errors"][0]["extensions"]["code"] if body.get("errors") else None)

    racers = [threading.Thread(target=approve, args=(m,)) for m in made for _ in range(2)]
    for t in racers:
        t.start()
    for t in racers:
        t.join()
    assert outcomes.count(None) >= len(ids) and set(outcomes) <= {None, "CONFLICT"}, outcomes
    soon = datetime.now(timezone.utc) + timedelta(seconds=3)
    later = [gql(p, CREATE, {"e": event_input(f"Programmé {i}", soon)})["data"]["createEvent"] for i in range(4)]
    for m in later:
        gql(p, APPROVE, {"id": m["id"], "v": m["version"]})
    scheduled = [m["id"] for m in later]
    events = db.parvis_agenda.events
    wait_until(lambda: all(not d.get("announce_pending") for d in events.find({"_id": {"$in": scheduled}}))
               and events.count_documents({"_outbox_n": {"$gt": 0}}) == 0, 40, 0.5, "scheduled ones announced")
    time.sleep(1)
    announced: dict[str, int] = {}
    with Connection(p.broker.url) as conn:
        queue = stack["audit"].bind(conn.default_channel)
        while (message := queue.get(no_ack=True)) is not None:
            env = json.loads(message.body)
            if env["type"] == "agenda.event_published":
                announced[env["data"]["id"]] = announced.get(env["data"]["id"], 0) + 1
    assert {eid: announced.get(eid, 0) for eid in ids + scheduled} == {eid: 1 for eid in ids + scheduled}


def test_a_fan_out_sends_one_email_per_subscriber_both_replicas_sending(stack, smtp):
    p = stack["platform"]
    handler, _ = smtp
    before = {r: p.metric("notification", "parvis_notifications_total", replica=r, channel="email",
                          status="delivered") or 0 for r in (1, 2)}
    envelope = build_envelope("agenda.event_published", {
        "id": "evt-fanout", "title": "Fête du village", "organizer": "org-unknown", "commune": "escalquens",
        "category": "fete-locale", "starts_at": "2026-12-05T17:30:00Z", "ends_at": "2026-12-05T19:00:00Z",
        "moderation_state": "published", "url": "/agenda/events/evt-fanout"}, "agenda")
    with Connection(p.broker.url) as conn:
        exchange = Exchange("agenda.events", type="topic", durable=True)
        for _ in range(2):  # delivered twice: the second copy is a duplicate for whichever replica gets it
            Producer(conn).publish(envelope, exchange=exchange, routing_key=envelope["type"], serializer="json",
                                   declare=[exchange], delivery_mode=2)
    wanted = {f"sub{i:05d}@replicas.example" for i in range(SUBSCRIBERS)}
    wait_until(lambda: wanted <= set(handler.by_rcpt), 180, 1.0, f"{SUBSCRIBERS} emails")
    time.sleep(2)
    assert {r: handler.by_rcpt[r] for r in wanted if handler.by_rcpt[r] != 1} == {}, "duplicate emails"
    sent = {r: (p.metric("notification", "parvis_notifications_total", replica=r, channel="email",
                         status="delivered") or 0) - before[r] for r in (1, 2)}
    assert sum(sent.values()) >= SUBSCRIBERS and all(v > 0 for v in sent.values()), sent
