"""The outbox relay against nx-27017 (services/common/mongo.py): a document whose envelopes were all published is
emptied at once; an envelope written while its page was being published stays for the next round, and nothing is
counted off twice. The broker is a fake publisher here: what is asserted is what stays in the database."""
from __future__ import annotations

import uuid
from datetime import datetime, timezone

import pytest

from services.common.mongo import OUTBOX, OUTBOX_CLAIM, OUTBOX_COUNT, OutboxRelay, Repository


class Repo(Repository):
    outbox_collections = ("things",)


def envelope(n: int = 0) -> dict:
    return {"event_id": str(uuid.uuid4()), "type": "test.happened", "version": 1, "producer": "test",
            "occurred_at": datetime(2026, 1, 1, 0, 0, n, tzinfo=timezone.utc).isoformat(), "data": {"n": n}}


class Publisher:
    def __init__(self, during=None):
        self.sent: list[dict] = []
        self.during = during

    def publish_all(self, envelopes):
        self.sent.extend(envelopes)
        if self.during is not None:
            self.during()
            self.during = None

    def close(self):
        pass


@pytest.fixture
def relay(mongo):
    mongo.drop_all()
    repo = Repo(mongo.client()["parvis_test_outbox"])
    repo.ensure_indexes()
    r = OutboxRelay("test", repo, "amqp://unused", {})
    r.publisher = Publisher()
    yield r
    mongo.client().drop_database("parvis_test_outbox")


def test_documents_published_whole_are_emptied_and_each_envelope_sent_once(relay):
    things = relay.repo.db.things
    things.insert_many([Repository.doc_with_events({"_id": f"t{i}", "version": 1},
                                                   [envelope(k) for k in range(1 + i % 3)]) for i in range(30)])
    assert relay.run_once() == sum(1 + i % 3 for i in range(30))
    assert len({e["event_id"] for e in relay.publisher.sent}) == len(relay.publisher.sent)
    for doc in things.find():
        assert doc[OUTBOX_COUNT] == 0 and OUTBOX not in doc and OUTBOX_CLAIM not in doc
    assert relay.run_once() == 0


def test_an_envelope_added_while_its_page_is_published_stays_for_the_next_round(relay):
    things = relay.repo.db.things
    first, later = envelope(1), envelope(2)
    things.insert_one(Repository.doc_with_events({"_id": "a", "version": 1}, [first]))
    things.insert_one(Repository.doc_with_events({"_id": "b", "version": 1}, [envelope(3)]))

    def write_meanwhile():  # a state change of "a" with its event, as replace_versioned writes it
        assert relay.repo.replace_versioned("things", "a", 1, {"state": "next"}, [later]) is not None

    relay.publisher.during = write_meanwhile
    assert relay.run_once() == 2
    a = things.find_one({"_id": "a"})
    assert a[OUTBOX_COUNT] == 1 and list(a[OUTBOX]) == [later["event_id"]]
    assert things.find_one({"_id": "b"})[OUTBOX_COUNT] == 0
    assert relay.run_once() == 1
    assert relay.publisher.sent[-1]["event_id"] == later["event_id"]
    a = things.find_one({"_id": "a"})
    assert a[OUTBOX_COUNT] == 0 and not a.get(OUTBOX)


def test_versioned_writes_together_tell_which_passed(relay):
    things = relay.repo.db.things
    things.create_index("bill", unique=True, sparse=True)
    things.insert_many([Repository.doc_with_events({"_id": f"t{i}", "version": 1}, [envelope(i)]) for i in range(4)])
    things.insert_one({"_id": "paid", "version": 1, "bill": "B1"})
    relay.repo.replace_versioned("things", "t1", 1, {"state": "other"}, [])  # another writer passed first
    event = envelope(9)
    written = relay.repo.replace_versioned_many("things", [
        ("t0", 1, {"state": "done"}, [event], ()),
        ("t1", 1, {"state": "done"}, [], ()),  # stale
        ("t2", 1, {"state": "done", "bill": "B1"}, [], ()),  # a unique index refuses it
        ("t3", 1, {"state": "done"}, [], ("nothing",)),
        ("gone", 1, {"state": "done"}, [], ()),
    ])
    assert written == {0, 3}
    t0 = things.find_one({"_id": "t0"})
    assert (t0["state"], t0["version"], t0[OUTBOX_COUNT]) == ("done", 2, 2) and event["event_id"] in t0[OUTBOX]
    assert things.find_one({"_id": "t1"})["state"] == "other"
    assert things.find_one({"_id": "t2"}).get("state") is None


def test_a_live_claim_of_another_relay_is_left_alone_an_expired_one_and_our_own_are_taken(relay):
    """Another replica's relay is publishing "live": not sent twice. One that died left "expired": taken over. Our own
    claim (a round that failed after claiming) and a document never claimed: sent."""
    import time

    things = relay.repo.db.things
    now = time.time()
    claims = {"live": {"owner": "other", "until": now + 60}, "expired": {"owner": "dead", "until": now - 1},
              "ours": {"owner": relay.owner, "until": now + 60}, "free": None}
    events = {}
    for name, claim in claims.items():
        events[name] = envelope()
        doc = Repository.doc_with_events({"_id": name, "version": 1}, [events[name]])
        if claim:
            doc[OUTBOX_CLAIM] = claim
        things.insert_one(doc)
    assert relay.run_once() == 3
    assert {e["event_id"] for e in relay.publisher.sent} == {events[n]["event_id"] for n in ("expired", "ours", "free")}
    live = things.find_one({"_id": "live"})
    assert live[OUTBOX_COUNT] == 1 and live[OUTBOX_CLAIM]["owner"] == "other"
    for name in ("expired", "ours", "free"):
        assert things.find_one({"_id": name})[OUTBOX_COUNT] == 0
