"""kill -9 of the notification service in the middle of a fan-out's emails: after a restart every
subscriber gets the email (none lost), and only the batches in flight at the kill may be sent twice
(at most PARVIS_NOTIFY_CONCURRENCY x PARVIS_NOTIFY_BATCH messages)."""
import asyncio
import threading
from datetime import datetime, timezone

import pytest
from kombu import Connection, Exchange, Producer

from contracts import build_envelope
from tests.support import Platform, smtp_server, wait_until

N, BATCH, PIPELINES = 200, 10, 2


class SlowCounting:
    def __init__(self):
        self.lock = threading.Lock()
        self.by_rcpt: dict[str, int] = {}

    async def handle_DATA(self, server, session, envelope):
        await asyncio.sleep(0.01)  # time for the kill to fall in the middle of the emails
        with self.lock:
            for rcpt in envelope.rcpt_tos:
                self.by_rcpt[rcpt] = self.by_rcpt.get(rcpt, 0) + 1
        return "250 OK"

    def total(self) -> int:
        with self.lock:
            return sum(self.by_rcpt.values())


@pytest.fixture
def smtp():
    handler = SlowCounting()
    with smtp_server(handler) as port:
        yield handler, port


def test_a_kill_mid_fan_out_loses_no_email_and_resends_at_most_the_batches_in_flight(mongo, broker, smtp):
    handler, port = smtp
    mongo.drop_all()
    platform = Platform(mongo, broker, SMTP_URL=f"smtp://127.0.0.1:{port}", PARVIS_NOTIFY_INTERVAL="0.2",
                        PARVIS_NOTIFY_BATCH=str(BATCH), PARVIS_NOTIFY_CONCURRENCY=str(PIPELINES),
                        PARVIS_NOTIFY_STALE_SENDING="2")
    try:
        service = platform.service("notification")
        db = mongo.client().parvis_notification
        now = datetime.now(timezone.utc)
        db.subscriptions.insert_many([
            {"_id": f"cit-{i:04d}|agenda:commune:crashville|email", "recipient": f"cit-{i:04d}",
             "topic": "agenda:commune:crashville", "channel": "email", "address": f"sub{i:04d}@crash.example",
             "created_at": now} for i in range(N)])
        envelope = build_envelope("agenda.event_published", {
            "id": "evt-crash", "title": "Fête", "organizer": "org-unknown", "commune": "crashville",
            "category": "fete", "starts_at": "2026-12-05T17:30:00Z", "ends_at": "2026-12-05T19:00:00Z",
            "moderation_state": "published"}, "agenda")
        with Connection(broker.url) as conn:
            exchange = Exchange("agenda.events", type="topic", durable=True)
            Producer(conn).publish(envelope, exchange=exchange, routing_key=envelope["type"], serializer="json",
                                   declare=[exchange], delivery_mode=2)
        wait_until(lambda: handler.total() >= N // 4, 30, 0.01, "a quarter of the emails accepted")
        service.kill9()
        at_kill = handler.total()
        assert at_kill < N, "killed before the end of the fan-out"

        platform.service("notification")
        wait_until(lambda: len(handler.by_rcpt) == N, 60, 0.2, f"every subscriber's email ({len(handler.by_rcpt)})")
        wait_until(lambda: db.notifications.count_documents({"event_id": envelope["event_id"], "status": "delivered"})
                   == N, 30, 0.5, "every notification delivered")
        duplicates = handler.total() - N
        assert duplicates <= PIPELINES * BATCH, handler.by_rcpt
        assert db.notifications.count_documents({"event_id": envelope["event_id"]}) == N
    finally:
        platform.stop_reporting_crashes()
