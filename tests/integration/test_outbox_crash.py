"""Nothing is lost between a write and its event: kill -9 the producer in that window, restart it,
and the consumer acts on each event exactly once, even when the relay publishes one twice."""
import pytest

from parvis.seed import demo_data
from services.common.mongo import OUTBOX, OUTBOX_COUNT
from tests.support import Platform, rpc_call, wait_until

N_ORGS = 43


@pytest.fixture
def platform(mongo, broker):
    mongo.drop_all()
    p = Platform(mongo, broker)
    yield p
    p.stop_reporting_crashes((None, 0, -15))


def metric(platform, service_index: int, name: str, **labels) -> float:
    from core.settings import SERVICES

    return platform.metric(SERVICES[service_index], name, **labels) or 0.0


def test_kill9_between_write_and_publish_loses_nothing_and_acts_once(platform, mongo):
    platform.service("notification")
    agenda = platform.service("agenda", PARVIS_OUTBOX_HOLD="1")  # the relay does not run: the window stays open
    report = rpc_call(platform.broker.url, "agenda", "import_reference_data", **demo_data())
    assert report["organizations_created"] == N_ORGS

    db = mongo.client()
    orgs, contacts = db.parvis_agenda.organizations, db.parvis_notification.organization_contacts
    assert orgs.count_documents({OUTBOX_COUNT: {"$gt": 0}}) == N_ORGS, "each write holds its event"
    agenda.kill9()
    assert contacts.count_documents({}) == 0, "nothing was published before the crash"

    platform.service("agenda")  # restarted normally: its relay finds the pending events
    wait_until(lambda: contacts.count_documents({}) == N_ORGS, 30, 0.2, "every organisation known to notification")
    wait_until(lambda: orgs.count_documents({OUTBOX_COUNT: {"$gt": 0}}) == 0, 10, 0.2, "the outbox emptied")
    assert all(doc["applied"] == 1 for doc in contacts.find())
    assert contacts.find_one({"_id": "org-commune-labege"})["contact_email"] == "mairie@labege.example"

    # The relay crashing after the broker confirmed but before it marked the event sent: the same
    # envelope goes out again. The consumer recognises the event_id and does not act twice.
    doc = orgs.find_one({"_id": "org-commune-labege"})
    envelope = db.parvis_notification["_inbox"].find_one({"type": "agenda.organization_upserted"})
    assert envelope is not None
    sent_before = metric(platform, 0, "parvis_events_published_total", service="agenda", type="agenda.organization_upserted")
    from contracts import build_envelope

    replayed = build_envelope("agenda.organization_upserted", {k: doc.get(k) for k in
                              ("id", "slug", "name", "kind", "commune", "contact_email")}, "agenda")
    handled_id = contacts.find_one({"_id": "org-commune-labege"})["event_id"]
    replayed["event_id"] = handled_id
    orgs.update_one({"_id": doc["_id"]}, {"$set": {f"{OUTBOX}.{handled_id}": replayed}, "$inc": {OUTBOX_COUNT: 1}})
    wait_until(lambda: metric(platform, 4, "parvis_events_handled_total", service="notification",
                              handler="on_organization_upserted", outcome="duplicate") >= 1, 10, 0.2, "the duplicate seen")
    assert metric(platform, 0, "parvis_events_published_total", service="agenda",
                  type="agenda.organization_upserted") == sent_before + 1
    assert contacts.find_one({"_id": "org-commune-labege"})["applied"] == 1


def test_the_correlation_id_follows_the_write_into_the_consumer_logs(platform, mongo):
    notification = platform.service("notification")
    platform.service("agenda")
    rpc_call(platform.broker.url, "agenda", "import_reference_data", **demo_data())
    db = mongo.client()
    wait_until(lambda: db.parvis_notification.organization_contacts.count_documents({}) == N_ORGS, 30, 0.2,
               "events handled")
    contact = db.parvis_notification.organization_contacts.find_one({"_id": "org-sicoval"})
    assert contact is not None
    # The seed's correlation id travelled: RPC context -> envelope -> consumer's context data.
    inbox = db.parvis_notification["_inbox"].count_documents({})
    assert inbox == N_ORGS
    # Every JSON log line of notification names its service; those of the handler name the entrypoint.
    logs = notification.json_logs()
    assert logs and all(line["service"] == "notification" for line in logs)
