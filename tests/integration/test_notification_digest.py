"""The daily digest of the agenda on the real broker, nx-27017 and SMTP/TCP: a citizen with digest
subscriptions gets one email a day listing the events published for any of them (each once, by start),
and no email per event, even when the digest is asked for twice or by a restarted timer; a citizen
without digest still gets one email per event; SMS digests are refused; the digest's link unsubscribes."""
import re
import time
from datetime import datetime, timedelta
from email import message_from_bytes, policy
from zoneinfo import ZoneInfo

import pytest
from kombu import Connection, Exchange, Producer

from contracts import build_envelope
from contracts.errors import BadInput, Forbidden
from tests.support import Platform, rpc_call, smtp_server, wait_until

PUBLIC = "https://parvis.example"
DORA = {"role": "citizen", "subject": "cit-dora"}  # digest of agenda:commune:labege and agenda:category:concert
PAUL = {"role": "citizen", "subject": "cit-paul"}  # one email per event of agenda:commune:labege
EVE = {"role": "citizen", "subject": "cit-eve"}  # subscribes with digest later (the timer's digest)
OPERATOR = {"role": "operator", "subject": "ops"}


def event(eid: str, title: str, commune: str, category: str, starts_at: str) -> dict:
    return {"id": eid, "title": title, "organizer": "org-unknown", "commune": commune, "category": category,
            "starts_at": starts_at, "ends_at": starts_at, "moderation_state": "published",
            "url": f"/agenda/events/{eid}"}


LABEGE = {"id": "org-commune-labege", "slug": "commune-labege", "name": "Mairie de Labège", "kind": "commune",
          "commune": "labege", "contact_email": None}
EVENTS = [  # published in this order; the digest lists Dora's by start
    event("dg-concert", "Concert <du> marché", "labege", "concert", "2026-12-05T17:30:00Z"),
    event("dg-loto", "Loto", "ayguesvives", "loto", "2026-12-01T19:00:00Z"),  # none of Dora's topics
    event("dg-theatre", "Théâtre", "escalquens", "concert", "2026-12-03T18:00:00Z"),
]


class Mailbox:
    def __init__(self):
        self.accepted: list = []

    async def handle_DATA(self, server, session, envelope):
        self.accepted.append(message_from_bytes(envelope.original_content, policy=policy.default))
        return "250 OK"

    def to(self, rcpt: str) -> list:
        return [m for m in self.accepted if m["To"] == rcpt]


@pytest.fixture(scope="module")
def smtp():
    handler = Mailbox()
    with smtp_server(handler) as port:
        yield handler, port


@pytest.fixture(scope="module")
def platform(mongo, broker, smtp):
    mongo.drop_all()
    p = Platform(mongo, broker, SMTP_URL=f"smtp://127.0.0.1:{smtp[1]}", PARVIS_NOTIFY_INTERVAL="0.2",
                 PARVIS_PUBLIC_URL=PUBLIC, PARVIS_DIGEST_HOUR="off")  # digests by send_digests only, at first
    p.service("notification")
    db = mongo.client().parvis_notification
    db.citizens.insert_many([{"_id": "cit-dora", "email": "dora@example.org"},
                             {"_id": "cit-paul", "email": "paul@example.org"},
                             {"_id": "cit-eve", "email": "eve@example.org"}])
    yield p
    p.stop()
    for proc in p.procs:
        if proc.proc.returncode not in (None, 0, -15):
            print(f"--- {proc.name} ---\n{proc.output()[-3000:]}")


def call(platform, method: str, caller: dict, **kwargs):
    return rpc_call(platform.broker.url, "notification", method, caller=caller, **kwargs)


def publish(platform, envelope: dict) -> None:
    with Connection(platform.broker.url) as conn:
        exchange = Exchange("agenda.events", type="topic", durable=True)
        Producer(conn).publish(envelope, exchange=exchange, routing_key=envelope["type"], serializer="json",
                               declare=[exchange], delivery_mode=2)


def paris_today():
    return datetime.now(ZoneInfo("Europe/Paris")).date()


def test_subscriptions_with_digest(platform):
    got = call(platform, "subscribe", DORA, topic="agenda:commune:labege", channel="email", digest=True)
    assert got["digest"] is True and got["address"] == "dora@example.org"
    # Changed by subscribing again: per event first, then the digest.
    assert call(platform, "subscribe", DORA, topic="agenda:category:concert", channel="email")["digest"] is False
    assert call(platform, "subscribe", DORA, topic="agenda:category:concert", channel="email", digest=True)["digest"]
    call(platform, "subscribe", DORA, topic="agenda:commune:labege", channel="in_app", digest=True)
    call(platform, "subscribe", PAUL, topic="agenda:commune:labege", channel="email")
    mine = {(s["topic"], s["channel"]): s["digest"] for s in call(platform, "my_subscriptions", DORA)}
    assert mine == {("agenda:category:concert", "email"): True, ("agenda:commune:labege", "email"): True,
                    ("agenda:commune:labege", "in_app"): True}
    assert [s["digest"] for s in call(platform, "my_subscriptions", PAUL)] == [False]
    for kwargs in ({"channel": "sms", "phone": "06 12 34 56 78"}, {"topic": "consultation:new"}):
        with pytest.raises(BadInput) as exc:
            call(platform, "subscribe", PAUL, **{"topic": "agenda:commune:labege", "channel": "email", "digest": True,
                                                 **kwargs})
        assert exc.value.field == "digest"
    assert len(call(platform, "my_subscriptions", PAUL)) == 1, "nothing subscribed by a refused request"


def test_one_digest_a_day_lists_the_events_once_and_no_email_per_event(platform, smtp, mongo):
    handler, _ = smtp
    db = mongo.client().parvis_notification
    publish(platform, build_envelope("agenda.organization_upserted", LABEGE, "agenda"))
    wait_until(lambda: db.organization_contacts.find_one({"_id": LABEGE["id"]}), 15, message="Labège's name")
    envelopes = [build_envelope("agenda.event_published", e, "agenda") for e in EVENTS]
    for envelope in envelopes:
        publish(platform, envelope)
    publish(platform, envelopes[0])  # redelivered
    wait_until(lambda: db.digest_items.count_documents({}) == 3, 20, message="the three events stored for digests")
    # Paul (no digest) is told of the Labège concert at once; Dora is not, whatever her channel.
    msg = wait_until(lambda: handler.to("paul@example.org") and handler.to("paul@example.org")[0], 20,
                     message="Paul's email for the concert")
    assert msg["Subject"] == "Nouvel événement : Concert <du> marché"
    wait_until(lambda: db.notifications.count_documents({"event_id": envelopes[0]["event_id"], "status": "delivered"}), 10,
               message="delivered")
    assert db.notifications.count_documents({"recipient": "cit-dora"}) == 0

    with pytest.raises(Forbidden):
        call(platform, "send_digests", DORA)
    with pytest.raises(BadInput) as exc:
        call(platform, "send_digests", OPERATOR, day=(paris_today() + timedelta(days=2)).isoformat())
    assert exc.value.field == "day"

    first = call(platform, "send_digests", OPERATOR)
    assert first == {"day": paris_today().isoformat(), "events": 3, "recipients": 2, "created": 2}
    again = call(platform, "send_digests", OPERATOR)
    assert again["created"] == 0, "once per citizen, channel and day"
    digest = wait_until(lambda: handler.to("dora@example.org") and handler.to("dora@example.org")[0], 20,
                        message="Dora's digest")
    time.sleep(1.5)  # a second digest, if any, would have been sent by now
    assert len(handler.to("dora@example.org")) == 1
    assert len(handler.to("paul@example.org")) == 1, "Paul has no digest, and one email for the one Labège event"

    assert digest["Subject"].startswith("2 nouveaux événements dans votre agenda du ")
    text = digest.get_body(("plain",)).get_content()
    html = digest.get_body(("html",)).get_content()
    assert text.count("Concert <du> marché") == 1 and text.count("Théâtre") == 1 and "Loto" not in text
    assert text.index("Théâtre") < text.index("Concert"), "sorted by start"
    assert "samedi 5 décembre 2026 à 18 h 30, Labège" in text and "jeudi 3 décembre 2026 à 19 h 00, Escalquens" in text
    assert f"{PUBLIC}/agenda/events/dg-concert" in text and f'href="{PUBLIC}/agenda/events/dg-theatre"' in html
    assert "Concert &lt;du&gt; marché" in html
    assert digest["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    link = re.fullmatch(r"<(.+)>", digest["List-Unsubscribe"]).group(1)
    assert link.startswith(f"{PUBLIC}/notifications/unsubscribe?t=") and link in text

    notes = call(platform, "my_notifications", DORA)
    assert len(notes) == 1 and notes[0]["event_id"] == f"digest:{paris_today().isoformat()}"
    assert notes[0]["text"].startswith("Agenda du ") and "Concert <du> marché" in notes[0]["text"]
    assert "Théâtre" not in notes[0]["text"], "in-app, Dora follows Labège only"

    # The digest's one-click link: the email digest subscriptions go, the in-app one stays.
    gone = call(platform, "unsubscribe", {"role": "anonymous"}, token=link.split("?t=", 1)[1])
    assert gone == {"unsubscribed": True, "topic": "agenda:category:concert, agenda:commune:labege"}
    assert [(s["topic"], s["channel"]) for s in call(platform, "my_subscriptions", DORA)] == [
        ("agenda:commune:labege", "in_app")]


def test_the_timer_after_a_restart_sends_the_new_digests_and_none_twice(platform, smtp, mongo):
    """A restarted service whose digest hour has come runs the day's digest by itself; the citizens who
    had theirs already get nothing more (the window is even forgotten here, as by another instance)."""
    handler, _ = smtp
    db = mongo.client().parvis_notification
    call(platform, "subscribe", DORA, topic="agenda:category:concert", channel="email", digest=True)
    call(platform, "subscribe", EVE, topic="agenda:category:concert", channel="email", digest=True)
    db.digest_runs.delete_many({})
    service = next(p for p in platform.procs if p.name == "notification")
    service.stop()
    platform.service("notification", PARVIS_DIGEST_HOUR="0")
    wait_until(lambda: db.digest_runs.find_one({"done": True}), 60, message="the timer's digest run")
    mail = wait_until(lambda: handler.to("eve@example.org") and handler.to("eve@example.org")[0], 20,
                      message="Eve's digest")
    text = mail.get_body(("plain",)).get_content()
    assert "Théâtre" in text and "Concert <du> marché" in text and "Loto" not in text
    time.sleep(1.5)
    assert len(handler.to("dora@example.org")) == 1, "Dora had today's digest already"
    assert len(handler.to("eve@example.org")) == 1
    assert db.notifications.count_documents({"event_id": f"digest:{paris_today().isoformat()}"}) == 3
