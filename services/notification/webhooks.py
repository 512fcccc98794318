"""Partners' webhooks: what concerns each partner POSTed to its endpoints, signed, at least once, retried with
backoff: the delivery receipts of the messages it asked for (kept on each notification by the dispatcher) and the
events of other services it subscribed to for its own régies (payments, kept in `webhook_events`). Never a sign-in
code's receipt, never the platform's own messages (domain.webhook_targets). The registered endpoints are read at most
every few seconds (a fan-out records thousands of outcomes)."""
from __future__ import annotations

import json
import logging
import time
import uuid
from datetime import datetime

import eventlet

from contracts.errors import ServiceUnavailable
from services.notification import domain, egress
from services.notification.settings import NotificationSettings

log = logging.getLogger(__name__)

CALLBACK_BATCH = 100  # receipts claimed at once for the webhooks
CALLBACK_LEASE = 120.0  # seconds a claim of receipts is held (a batch of POSTs, 5 s timeout each)
CALLBACK_CONCURRENCY = 10  # POSTs at once


class Webhooks:
    """Partners' endpoints, read at most every 5 s: a fan-out records thousands of outcomes."""

    ttl = 5.0
    _cache: tuple[float, list] = (-1e9, [])

    @classmethod
    def get(cls, store) -> list[dict]:
        at, hooks = cls._cache
        if time.monotonic() - at > cls.ttl:
            hooks = store.webhooks()
            cls._cache = (time.monotonic(), hooks)
        return hooks

    @classmethod
    def forget(cls) -> None:
        """A webhook was added here: read them again (other processes see it within `ttl`)."""
        cls._cache = (-1e9, [])


class Receipts:
    """Takes the store and the service's settings (the signing keys derive from PARVIS_SECRET)."""

    def __init__(self, store, settings: NotificationSettings):
        self.store, self.settings = store, settings

    def deliver(self) -> int:
        """Delivery receipts (notification.delivered / .failed, as published) POSTed to partners' webhooks; returns
        how many were delivered.

        The dispatcher keeps each outcome's event as its receipt, in the same single-document update as
        the status, when the partner that asked for the message has a webhook for it; other services' events
        wait in `webhook_events`; here both are claimed in batches, sent, and dropped once every webhook they
        concern answered. A failure is retried with exponential backoff (from the first of
        PARVIS_RETRY_DELAYS, up to PARVIS_NOTIFY_RETRY_CAP between attempts) for PARVIS_NOTIFY_RETRY_PERIOD,
        then kept on the notification with its error (`callback_error`) and logged. At least once: a
        process that dies after a POST and before the record posts it again after the lease.
        (Receipts used to come back through the bus to this same service, which cost two database writes
        of its inbox and a message per email: as much as the delivery itself in a fan-out.)
        """
        deadline = time.monotonic() + 20.0
        delivered = 0
        busy = ["notifications", "webhook_events"]  # in turns: a long run of receipts does not hold back payments
        while busy and time.monotonic() < deadline:
            for collection in list(busy):
                sent = self._round(collection)
                if sent is None:
                    busy.remove(collection)
                else:
                    delivered += sent
        return delivered

    def _round(self, collection: str) -> int | None:
        """One batch of receipts or events claimed, sent and recorded; None when none was due."""
        claim = uuid.uuid4().hex
        docs = self.store.claim_callbacks(time.time(), CALLBACK_BATCH, claim, CALLBACK_LEASE, collection)
        if not docs:
            return None
        hooks = self.store.webhooks()
        failure: list = []  # the first refusal of this batch: the receipts not yet sent wait as long

        def post(doc):
            if failure:
                return doc, None, False
            try:
                self.post(doc["receipt"], domain.webhook_targets(hooks, doc["receipt"], doc.get("partner"),
                                                                 doc.get("regie_id")))
                return doc, None, True
            except ServiceUnavailable as exc:
                failure.append(exc)
                return doc, exc, True

        done, retries, abandoned = [], [], []
        try:
            for doc, exc, tried in eventlet.GreenPool(CALLBACK_CONCURRENCY).imap(post, docs):
                if exc is None and tried:
                    done.append(doc["_id"])
                    continue
                attempts = int(doc.get("callback_attempts") or 0) + (1 if tried else 0)
                delay = min(self.settings.retry.cap, self.settings.callback_delay * 2 ** max(0, attempts - 1))
                occurred = datetime.fromisoformat(doc["receipt"]["occurred_at"].replace("Z", "+00:00"))
                error = str(exc or failure[0])
                if tried and time.time() + delay - occurred.timestamp() > self.settings.retry.period:
                    log.error("receipt %s: webhooks given up after %s attempts: %s", doc["_id"], attempts, error)
                    abandoned.append((doc["_id"], error))
                else:
                    if tried:
                        log.warning("receipt %s: webhook failed (attempt %s), retry in %.0fs: %s",
                                    doc["_id"], attempts, delay, error)
                    retries.append((doc["_id"], time.time() + delay, error, tried))
        finally:
            self.store.record_callbacks(claim, done, retries, abandoned, collection)
        return len(done)

    def post(self, receipt: dict, hooks: list[dict]) -> None:
        """One receipt or event to the webhooks it concerns, signed; ServiceUnavailable if one did not take it.
        Each carries its unique message id (the event's): a partner drops one it has seen (at least once)."""
        if not hooks:
            return
        body = json.dumps(receipt, separators=(",", ":"), default=str).encode()
        stamp = int(time.time())
        for hook in hooks:
            key = domain.webhook_secret(self.settings.secret, hook["_id"])
            headers = {"Content-Type": "application/json", "X-Parvis-Timestamp": str(stamp),
                       "X-Parvis-Signature": domain.webhook_signature(key, body, stamp),
                       "Pay-Signature": domain.pay_signature(key, body),
                       "X-Parvis-Event": receipt["type"], "X-Parvis-Message-Id": str(receipt.get("event_id", ""))}
            try:  # checked again after DNS resolution, no redirects, a short timeout (egress.py)
                egress.post(hook["url"], body, headers, production=self.settings.production,
                            allow=self.settings.webhook_allow)
            except Exception as exc:  # noqa: BLE001 - retried with backoff (an address refused now too: it may change)
                raise ServiceUnavailable(f"webhook {hook['_id']} unreachable: {exc}") from None
