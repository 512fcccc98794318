"""Reconciliation: the timer's round (ask the provider about every payment still waiting for its result, with
backoff, until it is final or expired; expire links past their due date) and the accountant's day per régie."""
from __future__ import annotations

import logging

from contracts import payment_link as c
from services.payment_link import domain, metrics
from services.payment_link.sessions import Sessions
from services.payment_link.store import StaleWrite

log = logging.getLogger(__name__)


class Reconciliation(Sessions):
    def round(self, req: c.Reconcile, expire: bool = True) -> dict:
        """One round: the payments due for a question (or the one named), then the links past their expiry."""
        if req.payment_id:
            docs = [d for d in [self.store.get(req.payment_id)] if d is not None]
        else:
            docs = self.store.due_checks(self.now, req.limit)
        examined = changed = pending = errors = 0
        for doc in docs:
            examined += 1
            try:
                after, moved = self.check(doc, notified=False)
            except Exception as exc:  # noqa: BLE001 - one payment's provider failure must not stop the round
                errors += 1
                metrics.RECONCILED.labels("error").inc()
                log.warning("reconciliation of %s failed: %s", doc["id"], exc)
                continue
            changed += moved
            pending += not after["finished"]
            metrics.RECONCILED.labels("changed" if moved else "pending").inc()
        if expire and not req.payment_id:
            changed += self.expire(req.limit)
        metrics.unconfirmed(self.store.unconfirmed(), self.now)
        return {"examined": examined, "changed": changed, "pending": pending, "errors": errors}

    def expire(self, limit: int) -> int:
        """Links never started whose due date passed: failed P0020 (a running session is the provider's to end)."""
        expired = 0
        for doc in self.store.due_expiries(self.now, limit):
            code = domain.expiry_outcome(doc["state"], doc["expires_at"], doc.get("session_started_at"), self.now)
            if code is None or doc["state"] != domain.CREATED:
                continue
            try:
                self.transition(doc, domain.FAILED, failure_code=code)
                expired += 1
            except StaleWrite:  # started meanwhile: its session decides
                pass
        return expired

    def report(self, req: c.ReconciliationQuery) -> dict:
        caller = self.caller.require({"agent", "operator", "service"})
        if caller.role == "service":
            self.require_regie(req.regie_id or "", roles={"service"})
        docs = self.store.finished_on(req.date.isoformat(), req.regie_id)
        rows = domain.reconciliation_rows(docs, req.date)
        return {"date": req.date, "regie_id": req.regie_id, "rows": rows, "totals": domain.regie_totals(rows, req.date),
                "csv": domain.report_csv(rows) if req.format == "csv" else None}
