"""Partners: their webhook endpoints (topics, régies) and the payment service's events they and the payers hear of.

A partner is another application of the authority (billing software, a commune's portal). Each one hears only what
concerns it (issue 10, GOV.UK Notify's callbacks and Pay's webhooks): the delivery receipts of the messages it asked
for (`send_notification(partner=…)`; a caller of role `service` is its own partner), and the payment events of the
régies named on its endpoint. Never a sign-in code's receipt, never the platform's own messages.

The entrypoints are a mixin of NotificationService (nameko finds inherited entrypoints): service.py stays thin.
"""
from __future__ import annotations

import logging
import time
import uuid

from contracts import notification as c
from core import french
from contracts import payment_link as pay_c
from contracts.errors import NotFound
from services.common.events import handle_event
from services.common.mongo import utcnow
from services.common.rpc import contract, rpc
from services.notification import domain, egress
from services.notification.dispatch import new_notification
from services.notification.webhooks import Webhooks

log = logging.getLogger(__name__)

RECEIPT_TEMPLATE = "payment_receipt"


def webhook_info(doc: dict) -> dict:
    return {"id": doc["_id"], "partner": doc["partner"], "url": doc["url"], "created_at": doc.get("created_at"),
            "topics": doc.get("topics") or sorted(domain.RECEIPT_TOPICS), "regie_ids": doc.get("regie_ids") or []}


PAYMENT_BATCH = 100  # payment events handled by one worker (services/common/events.py: batches)


class PaymentNews:
    """Takes the notification store and the service's settings. Works on batches of events (each a (data, envelope)
    pair): each batch costs one insert of receipts and one of webhook events, whatever its size."""

    def __init__(self, store, settings):
        self.store, self.settings = store, settings

    def for_webhooks(self, items: list) -> dict[int, Exception]:
        """Keep payment events for the partners' endpoints that named their régie and their type (sent by the
        callbacks timer, at least once, signed). Nothing kept for an event no endpoint wants."""
        hooks, docs = Webhooks.get(self.store), []
        for data, envelope in items:
            receipt = envelope.model_dump(mode="json")
            if domain.webhook_targets(hooks, receipt, regie_id=data.regie_id):
                docs.append({"_id": envelope.event_id, "receipt": receipt, "regie_id": data.regie_id,
                             "callback_due": time.time(), "callback_attempts": 0, "created_at": utcnow()})
        if docs:
            self.store.add_webhook_events(docs)
        return {}

    def succeeded(self, items: list) -> dict[int, Exception]:
        """Successes: each payer's emailed receipt (once per payment: its id is the notification's reference), then
        the events for the webhooks. An event whose receipt cannot be made (an address refused) fails alone, as
        its own worker would, and is not kept for the webhooks either."""
        failed: dict[int, Exception] = {}
        docs, kept = [], []
        for i, (data, envelope) in enumerate(items):
            try:
                docs.append(self.receipt(envelope, data))
                kept.append((data, envelope))
            except Exception as exc:  # noqa: BLE001 - settled by the handler's retry rules (a refusal: dead letter)
                failed[i] = exc
        if docs:
            self.store.insert_notifications(docs)
        self.for_webhooks(kept)
        return failed

    def receipt(self, envelope, data: pay_c.PaymentSucceeded) -> dict:
        tpl = domain.template(RECEIPT_TEMPLATE)
        parts = domain.render(tpl, "email", {
            "amount": french.euros(data.amount), "description": data.description, "reference": data.reference,
            "regie": data.regie_name, "paid_at": domain.french_datetime(data.paid_at), "payment_id": data.payment_id,
            "url": f"{self.settings.public_url}/pay/{data.payment_id}"})
        email = domain.normalise_email(data.email, "email")
        return new_notification(event_id=f"payment:{data.payment_id}", event_type=envelope.type, template=tpl,
                                channel="email", recipient=email, address=email, parts=parts, now=utcnow())


def partners_want(store, envelope) -> bool:
    """Whether an endpoint listens to this payment event (its type, its régie): without one, the event is dropped
    before the inbox (services/common/events.py: `wanted`), as `PaymentNews.for_webhooks` would keep nothing."""
    return bool(domain.webhook_targets(Webhooks.get(store), {"type": envelope.type},
                                       regie_id=(envelope.data or {}).get("regie_id")))


class PartnerEntrypoints:
    """Webhook endpoints (agents, operators) and the payment events; mixed into NotificationService."""

    @rpc
    @contract(c.ADD_WEBHOOK)
    def add_webhook(self, req: c.AddWebhook) -> dict:
        self.caller.require({"agent", "operator"})
        url = egress.check(req.url, production=self.settings.production, allow=self.settings.webhook_allow)
        topics, regies = domain.check_webhook_topics(list(req.topics), req.regie_ids)
        hook_id = f"wh-{uuid.uuid4().hex[:12]}"
        doc = self.store.add_webhook({"_id": hook_id, "partner": req.partner, "url": url, "topics": topics,
                                      "regie_ids": regies, "created_at": utcnow()})
        Webhooks.forget()  # other instances see it within 5 s
        return {**webhook_info(doc), "signing_secret": domain.webhook_secret(self.settings.secret, hook_id)}

    @rpc
    @contract(c.LIST_WEBHOOKS)
    def list_webhooks(self, _req) -> list[dict]:
        self.caller.require({"agent", "operator"})
        return [webhook_info(h) for h in sorted(self.store.webhooks(), key=lambda h: (h["partner"], h["_id"]))]

    @rpc
    @contract(c.REMOVE_WEBHOOK)
    def remove_webhook(self, req: c.WebhookRef) -> dict:
        self.caller.require({"agent", "operator"})
        doc = self.store.remove_webhook(req.id)
        if doc is None:
            raise NotFound("Point d'appel introuvable.", "id")
        Webhooks.forget()  # other instances stop within 5 s
        return webhook_info(doc)

    # -- payment events, in batches: to the partners of their régie; a success also to the payer (receipt) --
    def _payments(self, items) -> dict:
        return PaymentNews(self.store, self.settings).for_webhooks(items)

    @handle_event("payment_link", pay_c.PaymentSucceeded.event_type, batch=PAYMENT_BATCH)
    def on_payment_succeeded(self, items) -> dict:
        return PaymentNews(self.store, self.settings).succeeded(items)

    @handle_event("payment_link", pay_c.PaymentLinkCreated.event_type, wanted=partners_want, batch=PAYMENT_BATCH)
    def on_payment_created(self, items) -> dict:
        return self._payments(items)

    @handle_event("payment_link", pay_c.PaymentStarted.event_type, wanted=partners_want, batch=PAYMENT_BATCH)
    def on_payment_started(self, items) -> dict:
        return self._payments(items)

    @handle_event("payment_link", pay_c.PaymentSubmitted.event_type, wanted=partners_want, batch=PAYMENT_BATCH)
    def on_payment_submitted(self, items) -> dict:
        return self._payments(items)

    @handle_event("payment_link", pay_c.PaymentFailed.event_type, wanted=partners_want, batch=PAYMENT_BATCH)
    def on_payment_failed(self, items) -> dict:
        return self._payments(items)

    @handle_event("payment_link", pay_c.PaymentCancelled.event_type, wanted=partners_want, batch=PAYMENT_BATCH)
    def on_payment_cancelled(self, items) -> dict:
        return self._payments(items)

    @handle_event("payment_link", pay_c.PaymentErrored.event_type, wanted=partners_want, batch=PAYMENT_BATCH)
    def on_payment_errored(self, items) -> dict:
        return self._payments(items)

    @handle_event("payment_link", pay_c.RefundSubmitted.event_type, wanted=partners_want, batch=PAYMENT_BATCH)
    def on_refund_submitted(self, items) -> dict:
        return self._payments(items)

    @handle_event("payment_link", pay_c.RefundSucceeded.event_type, wanted=partners_want, batch=PAYMENT_BATCH)
    def on_refund_succeeded(self, items) -> dict:
        return self._payments(items)

    @handle_event("payment_link", pay_c.RefundFailed.event_type, wanted=partners_want, batch=PAYMENT_BATCH)
    def on_refund_failed(self, items) -> dict:
        return self._payments(items)
