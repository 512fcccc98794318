"""Delivery of claimed notifications over their channels, and the metrics of delivery.

Used by the service's dispatcher timer: a few pipelines at once each claim a batch in the store,
send it (email over the pipeline's SMTP connection, kept from one batch to the next), and write
every outcome back in one bulk write: each notification's status with its delivered/failed event
in the same single-document update (outbox), and, when the partner that asked for the message registered a
webhook for it, the receipt that the callback timer POSTs to that partner.

Crash window: the outcomes of a batch are written once the whole batch is sent. A process killed
after the SMTP server accepted a message and before that write leaves the notification `sending`
under its claim; the claim expires (PARVIS_NOTIFY_STALE_SENDING) and it is sent again. So a crash
may send the in-flight batch of each pipeline twice (at most PARVIS_NOTIFY_BATCH messages per
pipeline), and never loses one: nothing is marked delivered before the server accepted it.
"""
from __future__ import annotations

import logging
import time
import uuid
from datetime import datetime

import eventlet
from eventlet.semaphore import Semaphore
from prometheus_client import Counter, Gauge, Histogram

from contracts import notification as c
from core.logjson import SLO_BUCKETS
from services.common.mongo import utcnow
from services.notification import domain
from services.notification.channels import (
    DevSmsProvider, PermanentFailure, SmtpSender, TemporaryFailure, build_email)
from services.notification.settings import NotificationSettings
from services.notification.webhooks import Webhooks

log = logging.getLogger(__name__)

NOTIFICATIONS = Counter("parvis_notifications_total", "Notifications by channel and outcome status",
                        ["channel", "status"])
DELIVERY_LATENCY = Histogram("parvis_notification_delivery_seconds", "From creation (or the end of the recipient's "
                             "quiet hours) to delivery", ["channel"], buckets=SLO_BUCKETS + (60.0, 300.0, 3600.0))
LOGIN_CODE_DELIVERY = Histogram("parvis_login_code_delivery_seconds", "Sign-in codes: from the request to the email "
                                "accepted by the SMTP server", buckets=(1.0, 5.0, 10.0, 30.0, 60.0, 300.0))
LOGIN_CODE_FAILURES = Counter("parvis_login_code_failures_total", "Sign-in codes that could not be delivered")
LOGIN_TEMPLATE = "login_code"
BACKLOG = Gauge("parvis_notification_backlog", "Notifications created or awaiting a retry", ["channel"])
RETRIES = Counter("parvis_notification_retries_total", "Temporary failures scheduled for a retry", ["channel"])

IDLE_WAIT = (0.1, 1.0)  # a pipeline with nothing to claim while others deliver waits, doubling up to 1 s


class _Pace:
    """A per-channel rate limit: at most `rate` sends per second (0 = none)."""

    def __init__(self, rate: float):
        self.gap = 1.0 / rate if rate > 0 else 0.0
        self.next = 0.0

    def wait(self) -> None:
        """Take the next slot, then sleep until it: shared by the pipelines (green threads), each
        reserves its slot before sleeping, so two never get the same one."""
        if not self.gap:
            return
        now = time.monotonic()
        slot = max(now, self.next)
        self.next = slot + self.gap
        if slot > now:
            time.sleep(slot - now)


def new_notification(*, event_id: str, event_type: str | None, template, channel: str, recipient: str,
                     address: str, parts: dict, now: datetime, topic: str | None = None,
                     unsubscribe_url: str | None = None, partner: str | None = None) -> dict:
    doc = {
        "_id": domain.notification_id(event_id, recipient, channel),
        "event_id": event_id, "event_type": event_type, "template": template.name,
        "template_version": template.version, "channel": channel, "recipient": recipient, "address": address,
        "topic": topic, "content": parts, "unsubscribe_url": unsubscribe_url, "status": domain.CREATED,
        "attempts": 0, "created_at": now, "next_attempt_at": now, "due": now.timestamp(), "read_at": None,
    }
    if partner:  # the partner application it was sent for: its receipts go to that partner only
        doc["partner"] = partner
    return doc


class Dispatcher:
    def __init__(self, store, settings: NotificationSettings, events):
        self.store, self.settings, self.events = store, settings, events
        self.sms = DevSmsProvider(store)

    def run(self, budget: float = 20.0) -> int:
        """Claim and deliver due notifications in batches until none is due or the budget is spent.

        Several pipelines at once (PARVIS_NOTIFY_CONCURRENCY), each with its own claims and its own
        SMTP connection, kept open from one batch to the next: while one waits for the database,
        the others talk to the SMTP server.
        """
        deadline = time.monotonic() + budget
        paces = {ch: _Pace(rate) for ch, rate in self.settings.rates.items()}
        done = [0]
        busy = [0]  # pipelines claiming or delivering a batch right now
        claiming = Semaphore()  # one claim at a time here: together they would read the same due ones

        def pipeline():
            smtp = SmtpSender(self.settings.smtp) if self.settings.smtp else None
            idle = IDLE_WAIT[0]
            try:
                while time.monotonic() < deadline:
                    claim = uuid.uuid4().hex
                    busy[0] += 1
                    try:
                        with claiming:
                            batch = self.store.claim_due(utcnow(), self.settings.batch, claim,
                                                         self.settings.stale_sending)
                        if batch:
                            idle = IDLE_WAIT[0]
                            self.deliver(batch, claim, paces, smtp)
                            done[0] += len(batch)
                    finally:
                        busy[0] -= 1
                    if not batch:
                        if not busy[0]:
                            return  # nothing due and nobody sending: the run is over
                        # Others are still at it (a fan-out being inserted, say): the next timer tick
                        # waits for the whole run, so a pipeline that left now would be missing until then.
                        eventlet.sleep(idle)
                        idle = min(idle * 2, IDLE_WAIT[1])
            finally:
                if smtp is not None:
                    smtp.close()

        pool = eventlet.GreenPool(self.settings.concurrency)
        for _ in range(self.settings.concurrency):
            pool.spawn(pipeline)
        pool.waitall()
        return done[0]

    def deliver(self, batch: list[dict], claim: str, paces: dict, smtp: SmtpSender | None = None) -> None:
        """Send a claimed batch, then record every outcome in one bulk write (see the crash window above)."""
        own = smtp is None and self.settings.smtp is not None
        if own:
            smtp = SmtpSender(self.settings.smtp)
        # Read before anything is sent (a database error here must not follow a message accepted).
        receipts = Webhooks.get(self.store)
        outcomes = []
        try:
            for doc in batch:
                paces[doc["channel"]].wait()
                try:
                    self._send(doc, smtp)
                except TemporaryFailure as exc:
                    outcomes.append(self._temporary(doc, exc.reason, receipts))
                except PermanentFailure as exc:
                    outcomes.append(self._failed(doc, exc.reason, receipts))
                except Exception as exc:  # noqa: BLE001 - a bug in one message must not stop the batch
                    log.exception("delivery of %s failed unexpectedly", doc["_id"])
                    outcomes.append(self._temporary(doc, f"erreur interne : {type(exc).__name__}", receipts))
                else:
                    outcomes.append(self._delivered(doc, receipts))
        finally:
            if own:
                smtp.close()
            self.store.record_outcomes(claim, outcomes)

    def _send(self, doc: dict, smtp: SmtpSender | None) -> None:
        channel = doc["channel"]
        if channel == "email":
            if smtp is None:
                raise TemporaryFailure("SMTP_URL n'est pas configuré")
            try:
                domain.normalise_email(doc["address"])
            except Exception:  # noqa: BLE001
                raise PermanentFailure(f"adresse invalide : {doc['address']!r}") from None
            smtp.send(doc["address"], build_email(smtp.settings.sender, doc["address"], doc["content"],
                                                  doc.get("unsubscribe_url"), doc["_id"]))
        elif channel == "sms":
            self.sms.send(doc["address"], doc["content"]["text"], doc["_id"])
        # in_app: stored with the notification itself; delivered as soon as it is dispatched

    def _delivered(self, doc: dict, receipts: list | None = None):
        now = utcnow()
        created = doc["created_at"]
        # Held by quiet hours: the wait the recipient asked for is not a delay of the platform's.
        since = max(created.timestamp(), float(doc.get("held_until") or 0))
        DELIVERY_LATENCY.labels(doc["channel"]).observe(max(0.0, now.timestamp() - since))
        if doc.get("template") == LOGIN_TEMPLATE:
            LOGIN_CODE_DELIVERY.observe(max(0.0, (now - created).total_seconds()))
        NOTIFICATIONS.labels(doc["channel"], domain.DELIVERED).inc()
        event = self.events.build(c.NotificationDelivered.event_type, {
            "id": doc["_id"], "event_id": doc["event_id"], "template": doc["template"], "channel": doc["channel"],
            "recipient": doc["recipient"], "attempts": doc.get("attempts", 0) + 1, "delivered_at": now})
        return doc["_id"], self._with_receipt({"status": domain.DELIVERED, "delivered_at": now, "next_attempt_at": None,
                                               "due": None, "error": None}, event, doc, receipts), [event]

    def _temporary(self, doc: dict, reason: str, receipts: list | None = None):
        now = utcnow()
        due = self.settings.retry.next_attempt(doc["created_at"], doc.get("attempts", 0) + 1, now)
        if due is None:
            return self._failed(doc, f"{reason} (nouvelles tentatives épuisées)", receipts)
        RETRIES.labels(doc["channel"]).inc()
        NOTIFICATIONS.labels(doc["channel"], domain.TEMPORARY).inc()
        log.info("notification %s: temporary failure, retry at %s: %s", doc["_id"], due.isoformat(), reason)
        return doc["_id"], {"status": domain.TEMPORARY, "next_attempt_at": due, "due": due.timestamp(),
                            "error": reason}, []

    def _failed(self, doc: dict, reason: str, receipts: list | None = None):
        now = utcnow()
        NOTIFICATIONS.labels(doc["channel"], domain.PERMANENT).inc()
        if doc.get("template") == LOGIN_TEMPLATE:
            LOGIN_CODE_FAILURES.inc()
        log.warning("notification %s failed: %s", doc["_id"], reason)
        event = self.events.build(c.NotificationFailed.event_type, {
            "id": doc["_id"], "event_id": doc["event_id"], "template": doc["template"], "channel": doc["channel"],
            "recipient": doc["recipient"], "attempts": doc.get("attempts", 0) + 1, "reason": reason[:500],
            "failed_at": now})
        return doc["_id"], self._with_receipt({"status": domain.PERMANENT, "failed_at": now, "next_attempt_at": None,
                                               "due": None, "error": reason[:500]}, event, doc, receipts), [event]

    @staticmethod
    def _with_receipt(fields: dict, event: dict, doc: dict, hooks: list | None) -> dict:
        """When the partner that asked for this message has a webhook for it, the outcome also keeps its event for
        the callback timer, due now (a sign-in code's or the platform's own message never has a receipt)."""
        if (hooks and doc.get("partner") and doc.get("template") not in domain.PRIVATE_TEMPLATES
                and domain.webhook_targets(hooks, event, doc["partner"])):
            fields.update({"receipt": event, "callback_due": time.time(), "callback_attempts": 0})
        return fields
