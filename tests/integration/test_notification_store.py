"""The notification store on a real nx-27017: one notification per (event, recipient, channel) whatever
the number of fan-outs, and two dispatchers never claim the same notification."""
from datetime import datetime, timedelta, timezone

import pytest

from services.notification import domain
from services.notification.dispatch import new_notification
from services.notification.store import NotificationStore


@pytest.fixture
def store(mongo):
    client = mongo.client()
    client.drop_database("parvis_notification_store_test")
    s = NotificationStore(client["parvis_notification_store_test"])
    s.ensure_indexes()
    yield s
    client.drop_database("parvis_notification_store_test")


def docs(event_id: str, recipients: list[str], now) -> list[dict]:
    tpl = domain.template("login_code")
    return [new_notification(event_id=event_id, event_type="agenda.event_published", template=tpl, channel="email",
                             recipient=r, address=f"{r}@example.org", parts={"subject": "s", "text": "t", "html": "h"},
                             now=now) for r in recipients]


def test_a_fan_out_run_three_times_inserts_each_notification_once(store):
    now = datetime.now(timezone.utc)
    recipients = [f"cit-{i}" for i in range(300)]
    assert store.insert_notifications(docs("evt-1", recipients[:200], now)) == 200
    # A redelivery after a crash mid-fan-out: the first 200 are there, the rest are new.
    assert store.insert_notifications(docs("evt-1", recipients, now)) == 100
    assert store.insert_notifications(docs("evt-1", recipients, now)) == 0
    assert store.db.notifications.count_documents({"event_id": "evt-1"}) == 300
    assert store.insert_notifications(docs("evt-2", recipients[:1], now)) == 1, "another event is another notification"


def test_claims_do_not_overlap_and_stale_ones_come_back(store):
    now = datetime.now(timezone.utc)
    store.insert_notifications(docs("evt-3", [f"cit-{i}" for i in range(50)], now))
    first = store.claim_due(now + timedelta(seconds=1), 30, "claim-a")
    second = store.claim_due(now + timedelta(seconds=1), 30, "claim-b")
    assert len(first) == 30 and len(second) == 20
    assert not {d["_id"] for d in first} & {d["_id"] for d in second}
    assert store.claim_due(now + timedelta(seconds=2), 30, "claim-c") == []
    # A dispatcher that died mid-batch: after a while its claims are due again.
    later = now + timedelta(minutes=6)
    assert len(store.claim_due(later, 100, "claim-d")) == 50


def test_the_newest_organisation_contact_wins_whatever_the_delivery_order(store):
    t0 = datetime.now(timezone.utc)
    org = {"id": "org-x", "name": "X", "contact_email": "old@x.example", "kind": "association", "commune": "labege"}
    assert store.save_organization_contact(org, "e1", t0)
    assert store.save_organization_contact({**org, "contact_email": "new@x.example"}, "e2", t0 + timedelta(seconds=5))
    assert not store.save_organization_contact({**org, "contact_email": "late@x.example"}, "e0", t0 - timedelta(seconds=5))
    doc = store.organization_contact("org-x")
    assert doc["contact_email"] == "new@x.example" and doc["applied"] == 2


def test_a_token_revoked_twice_stays_revoked(store):
    expires = datetime.now(timezone.utc) + timedelta(hours=1)
    store.revoke("token-id-1234", expires, "perdu")
    store.revoke("token-id-1234", expires, "perdu encore")
    assert [r["token_id"] for r in store.revoked()] == ["token-id-1234"]


def test_a_claim_returns_the_notifications_as_stored_under_it(store):
    now = datetime.now(timezone.utc)
    store.insert_notifications(docs("evt-4", [f"cit-{i}" for i in range(20)], now))
    batch = store.claim_due(now + timedelta(seconds=1), 50, "claim-e")
    assert len(batch) == 20
    stored = {d["_id"]: d for d in store.db.notifications.find({"claim": "claim-e"})}
    # nx-27017 keeps fewer digits of a float: `due` (the claim's expiry) compared to the millisecond.
    without_due = lambda d: {k: v for k, v in d.items() if k != "due"}  # noqa: E731
    assert {d["_id"]: without_due(d) for d in batch} == {k: without_due(d) for k, d in stored.items()}
    assert all(abs(d["due"] - stored[d["_id"]]["due"]) < 1e-3 for d in batch)
    assert all(d["status"] == domain.SENDING for d in batch)
