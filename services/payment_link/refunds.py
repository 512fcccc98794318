"""Refunds with GOV.UK Pay's guard: the caller states the amountAvailable it saw; the refund is written only while
the payment is still the one checked (a conditional write on its version), so two refunds racing cannot both
pass and no refund exceeds what was paid. The card provider refunds by API; PayFiP has none: its refunds are
recorded as submitted to the public accountant, then an agent marks them done (or failed)."""
from __future__ import annotations

import uuid

from contracts import payment_link as c
from contracts.errors import Conflict, NotFound
from services.payment_link import domain, metrics
from services.payment_link.payments import Payments
from services.payment_link.providers import ProviderError
from services.payment_link.store import StaleWrite

CHANGED = ("Le montant remboursable a changé pendant la demande (un autre remboursement vient d'être fait) : "
           "vérifiez-le avant de recommencer.")


class Refunds(Payments):
    def _doc(self, payment_id: str) -> dict:
        self.caller.require({"agent"})
        doc = self.store.get(payment_id)
        if doc is None:
            raise NotFound("Paiement introuvable.", "id")
        return doc

    def refund(self, req: c.RefundPayment) -> dict:
        doc = self._doc(req.id)
        summary = domain.check_refund(doc["state"], doc["amount"], doc.get("refunds") or [], req.amount,
                                      req.amount_available)
        provider = self.provider(doc["provider"])
        kind = domain.refund_kind(provider.capabilities.refunds)
        refund = {"id": f"ref-{uuid.uuid4().hex[:16]}", "amount": req.amount, "status": "submitted", "kind": kind,
                  "reason": req.reason, "provider_refund_id": None, "created_by": self.caller.subject,
                  "created_at": self.now, "settled_at": None}
        # First the refund is reserved (written submitted, under the version read): a racing refund fails here,
        # before any money moves. Then the provider is asked.
        doc = self._write_refunds(doc, [*(doc.get("refunds") or []), refund], refund, c.RefundSubmitted.event_type,
                                  {"reason": req.reason, "created_by": self.caller.subject})
        metrics.REFUNDED.labels(doc["regie_id"], kind).inc(req.amount)
        if kind == "provider":
            try:
                with metrics.provider_call(doc["provider"], "refund"):
                    answer = provider.refund(doc["provider_id"], req.amount, summary["amount_available"], refund["id"])
                status, provider_refund_id = answer.status, answer.provider_refund_id
            except ProviderError:
                status, provider_refund_id = "error", None
            if status in ("success", "error"):
                doc = self._settle(doc, refund["id"], status, provider_refund_id)
        return self.view(doc)

    def settle(self, req: c.SettleRefund) -> dict:
        doc = self._doc(req.payment_id)
        refund = next((r for r in doc.get("refunds") or [] if r["id"] == req.refund_id), None)
        if refund is None:
            raise NotFound("Remboursement introuvable.", "refund_id")
        domain.check_settle_refund(refund)
        return self.view(self._settle(doc, req.refund_id, req.status, None))

    def _settle(self, doc: dict, refund_id: str, status: str, provider_refund_id: str | None) -> dict:
        for _ in range(5):
            refunds = [dict(r, status=status, settled_at=self.now,
                            provider_refund_id=provider_refund_id or r.get("provider_refund_id"))
                       if r["id"] == refund_id else r for r in doc.get("refunds") or []]
            refund = next(r for r in refunds if r["id"] == refund_id)
            event_type = c.RefundSucceeded.event_type if status == "success" else c.RefundFailed.event_type
            try:
                return self._write_refunds(doc, refunds, refund, event_type, {})
            except Conflict:
                doc = self.store.get(doc["id"])
        raise Conflict("Ce paiement change en ce moment : réessayez.", "refund_id")

    def _write_refunds(self, doc: dict, refunds: list[dict], refund: dict, event_type: str, extra: dict) -> dict:
        summary = domain.refund_summary(doc["state"], doc["amount"], refunds)
        event = self.build(event_type, {
            "payment_id": doc["id"], "regie_id": doc["regie_id"], "reference": doc["reference"],
            "refund_id": refund["id"], "refund_amount": refund["amount"], "kind": refund["kind"],
            "refund_summary": summary, **extra})
        try:
            self.store.write(doc["id"], doc["version"], {"refunds": refunds, "updated_at": self.now}, [event])
        except StaleWrite:
            raise Conflict(CHANGED, "amount_available") from None
        return {**doc, "refunds": refunds, "version": doc["version"] + 1}
