"""Partners' webhooks: delivery receipts POSTed to each registered endpoint, signed, at least once, retried
with backoff; the registered endpoints read at most every few seconds (a fan-out records thousands of outcomes)."""
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
        the status, while webhooks are registered; here they are claimed in batches, sent, and dropped
        once every webhook answered. A failure is retried with exponential backoff (from the first of
        PARVIS_RETRY_DELAYS, up to PARVIS_NOTIFY_RETRY_CAP between attempts) for PARVIS_NOTIFY_RETRY_PERIOD,
        then kept on the notification with its error (`callback_error`) and logged. At least once: a
        process that dies after a POST and before the record posts it again after the lease.
        (Receipts used to come back through the bus to this same service, which cost two database writes
        of its inbox and a message per email: as much as the delivery itself in a fan-out.)
        """
        deadline = time.monotonic() + 20.0
        delivered = 0
        while time.monotonic() < deadline:
            claim = uuid.uuid4().hex
            docs = self.store.claim_callbacks(time.time(), CALLBACK_BATCH, claim, CALLBACK_LEASE)
            if not docs:
                break
            hooks = self.store.webhooks()
            failure: list = []  # the first refusal of this batch: the receipts not yet sent wait as long

            def post(doc):
                if failure:
                    return doc, None, False
                try:
                    self.post(doc["receipt"], hooks)
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
                self.store.record_callbacks(claim, done, retries, abandoned)
            delivered += len(done)
        return delivered

    def post(self, receipt: dict, hooks: list[dict]) -> None:
        """One receipt to every webhook, signed; ServiceUnavailable if one of them did not take it."""
        if not hooks:
            return
        body = json.dumps(receipt, separators=(",", ":")).encode()
        stamp = int(time.time())
        for hook in hooks:
            signature = domain.webhook_signature(domain.webhook_secret(self.settings.secret, hook["_id"]), body, stamp)
            headers = {"Content-Type": "application/json", "X-Parvis-Timestamp": str(stamp),
                       "X-Parvis-Signature": signature, "X-Parvis-Event": receipt["type"]}
            try:  # checked again after DNS resolution, no redirects, a short timeout (egress.py)
                egress.post(hook["url"], body, headers, production=self.settings.production,
                            allow=self.settings.webhook_allow)
            except Exception as exc:  # noqa: BLE001 - retried with backoff (an address refused now too: it may change)
                raise ServiceUnavailable(f"webhook {hook['_id']} unreachable: {exc}") from None
