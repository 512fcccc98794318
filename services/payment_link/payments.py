"""Payments as agents and billing software handle them: régies, creating a link (with its Idempotency-Key),
reading, listing, cancelling; who may see which payment; every state change written with its event.

`Payments` takes the store, the event builder, the caller, the providers, the settings and the instant of the
request; sessions.py, refunds.py and reconcile.py build on its `transition` and `view`.
"""
from __future__ import annotations

import hashlib
import hmac
import logging
import uuid
from datetime import datetime

from contracts import payment_link as c
from contracts.errors import BadInput, Conflict, Forbidden, NotFound, ParvisError, ServiceUnavailable
from services.common.identity import citizen_id
from services.payment_link import domain, metrics
from services.payment_link.providers import ProviderError
from services.payment_link.store import DuplicateKeyError, StaleWrite

log = logging.getLogger(__name__)

STAFF = frozenset({"agent", "operator"})
WRITE_ATTEMPTS = 8  # a payment written by several hands at once (timer, notification, payer): read again, decide again


class Payments:
    def __init__(self, store, build, caller, providers: dict, settings, now: datetime):
        self.store, self.build, self.caller, self.providers, self.settings, self.now = (
            store, build, caller, providers, settings, now)

    # -- who may do what ------------------------------------------------------------------------------
    def require_regie(self, regie_id: str, roles=frozenset({"agent", "service"})) -> dict:
        """The régie, if the caller may act for it: agents for any, a service token for its own."""
        caller = self.caller.require(roles)
        regie = self.store.get_regie(regie_id)
        if caller.role == "service" and regie_id not in (caller.regies or []):
            raise Forbidden("Ce jeton de service ne peut agir que pour ses régies.", "regie_id")
        if regie is None:
            raise BadInput(f"Régie inconnue : {regie_id}.", "regie_id")
        return regie

    def readable(self, doc: dict | None) -> dict:
        """The payment if the caller may read it (agents, the régie's service token, the payer), else NotFound."""
        role = self.caller.role
        allowed = doc is not None and (
            role in STAFF
            or (role == "service" and doc["regie_id"] in (self.caller.regies or []))
            or (role == "citizen" and doc.get("payer_id") == self.caller.subject))
        if not allowed:
            raise NotFound("Paiement introuvable.", "id")
        return doc

    def provider(self, name: str):
        provider = self.providers.get(name)
        if provider is None:
            raise ServiceUnavailable(f"Le prestataire de paiement « {name} » n'est pas configuré ici.", "provider")
        return provider

    # -- régies -------------------------------------------------------------------------------------------
    def save_regie(self, req: c.RegieInput) -> dict:
        self.caller.require(STAFF)
        fields = domain.check_regie(req.model_dump())
        # An id not known yet creates the régie under it (seeds and imports name theirs).
        regie_id = req.id or f"regie-{uuid.uuid4().hex[:12]}"
        return self.store.save_regie(regie_id, fields, self.now)

    def list_regies(self, req: c.ListRegies) -> list[dict]:
        caller = self.caller.require(STAFF | {"service"})
        only = (caller.regies or []) if caller.role == "service" else None
        return self.store.list_regies(req.include_inactive, only)

    # -- creating a link ----------------------------------------------------------------------------------
    def create(self, req: c.CreatePaymentLink) -> dict:
        doc, event, slot, fingerprint = self.prepare(req)
        # The insert first, the key's unique index deciding: a new key costs one write; a key seen before (a resend,
        # or two at once) fails it, and the payment holding the key says whether to replay, refuse or reuse the key.
        for _ in range(3):
            try:
                self.store.insert(doc, [event])
                break
            except DuplicateKeyError:
                replay = self._replay(slot, fingerprint) if slot else None
                if replay is not None:
                    return replay
                # The key is free (freed after 24 h): its derived id may still be its old payment's, so a new one.
                doc, event, slot, fingerprint = self.prepare(req, random_id=True)
        else:
            raise Conflict("Une demande avec cette clé d'idempotence est en cours : réessayez.", "idempotency_key")
        return self.created(doc)

    @staticmethod
    def create_many(asks: list[tuple["Payments", c.CreatePaymentLink | Exception]]) -> list[dict]:
        """Several links at once (the gateway's group commit), each with its own caller (`Payments` made for it):
        one unordered insert of every new link with its event, one read (by id) of the payments holding the keys refused
        by the index, then for each the answer its `create` would give: {"result": …} or {"error": exc}. What
        this path does not settle alone (a key to free after 24 h, a payment gone meanwhile) goes through
        `create`, one by one."""
        answers: list[dict | None] = [None] * len(asks)
        ready: list[tuple[int, Payments, c.CreatePaymentLink, dict, str | None, str | None]] = []
        for i, (payments, req) in enumerate(asks):
            if isinstance(req, Exception):
                answers[i] = {"error": req}
                continue
            try:
                doc, event, slot, fingerprint = payments.prepare(req)
            except ParvisError as exc:
                answers[i] = {"error": exc}
                continue
            ready.append((i, payments, req, payments.store.doc_with_events(doc, [event]), slot, fingerprint))
        if not ready:
            return answers
        store = ready[0][1].store
        refused = store.insert_many([doc for _, _, _, doc, _, _ in ready])
        # A keyed payment's id derives from its key (`payment_id`): the payments holding the keys refused are read by
        # their ids, in one read on the primary key.
        holders = store.get_many([ready[k][3]["_id"] for k in refused if ready[k][4]]) if refused else {}
        for k, (i, payments, req, doc, slot, fingerprint) in enumerate(ready):
            try:
                if k not in refused:
                    answers[i] = {"result": payments.created(doc)}
                    continue
                existing = holders.get(doc["_id"]) if slot else None
                if existing is not None and existing.get("idem_slot") != slot:
                    existing = None  # its key was freed: the single path decides
                replay = payments.replay_of(existing, slot, fingerprint) if existing is not None else None
                answers[i] = {"result": replay if replay is not None else payments.create(req)}
            except ParvisError as exc:
                answers[i] = {"error": exc}
        return answers

    def prepare(self, req: c.CreatePaymentLink, random_id: bool = False) -> tuple[dict, dict, str | None, str | None]:
        """The payment to insert for `req`, its event, its idempotency slot and fingerprint; refused (BadInput,
        Forbidden…) before anything is stored. A payment with a key has an id derived from it (`payment_id`) unless
        `random_id`."""
        key = domain.check_idempotency_key(req.idempotency_key)
        regie = self.require_regie(req.payment.regie_id)
        new = domain.check_payment_input(req.payment.model_dump(), regie, self.now)  # refused: nothing stored
        slot = fingerprint = None
        if key is not None:
            slot = f"{domain.idempotency_scope(self.caller.role, self.caller.subject, self.caller.org)}|{key}"
            fingerprint = domain.request_fingerprint(new.request_body())
        doc = self._new_doc(new, regie, slot, fingerprint)
        if slot is not None and not random_id:
            doc["_id"] = self.payment_id(slot)
        event = self.build(c.PaymentLinkCreated.event_type, {
            **self.facts(doc), "description": doc["description"], "due_date": doc["due_date"],
            "expires_at": doc["expires_at"], "created_by": doc["created_by"], "retry_of": None})
        return doc, event, slot, fingerprint

    def payment_id(self, slot: str) -> str:
        """The id of the payment a key creates: an HMAC of the key's slot with PARVIS_SECRET, as unguessable as a
        random id (the public page's link is /pay/<id>), and the same for a resend, so that the payment holding a
        key is read by its id (nx-27017 answers a set of ids from its primary key, a set of keys by scanning)."""
        return "pay-" + hmac.new(self.settings.secret.encode(), f"payment:{slot}".encode(), hashlib.sha256).hexdigest()[:20]

    def created(self, doc: dict) -> dict:
        metrics.entered(doc["regie_id"], domain.CREATED, doc["amount"])
        return {"payment": self.view(doc), "replayed": False}

    def replay_of(self, existing: dict, slot: str, fingerprint: str) -> dict | None:
        """`_replay` with the payment holding the key already read: its payment, a Conflict, or None when the
        key must be freed first (the single path then does it)."""
        scope, _, key = slot.rpartition("|")
        record = domain.IdempotencyRecord(scope, key, existing["idem_fingerprint"], existing["id"], existing["idem_at"])
        decision, _ = domain.idempotency_decision(record, fingerprint, self.now)  # Conflict: another body
        return {"payment": self.view(existing), "replayed": True} if decision == "replay" else None

    def _replay(self, slot: str, fingerprint: str) -> dict | None:
        """The answer to a key seen before: its payment (same body, within 24 h), a Conflict (another body), or
        None once the key is freed (older than 24 h: it may serve a new payment)."""
        existing = self.store.by_idempotency(slot)
        if existing is None:
            return None
        replay = self.replay_of(existing, slot, fingerprint)
        if replay is None:
            self.store.forget_idempotency(existing["id"], slot)
        return replay

    def _new_doc(self, new: domain.NewPayment, regie: dict, slot: str | None, fingerprint: str | None) -> dict:
        doc = {
            "_id": f"pay-{uuid.uuid4().hex[:20]}", "regie_id": regie["id"], "regie_name": regie["name"],
            "service": new.service, "amount": new.amount, "reference": new.reference,
            "description": new.description, "objet": new.objet, "email": new.email,
            "payer_id": citizen_id(self.settings.secret, new.email), "language": new.language,
            "metadata": new.metadata, "return_url": new.return_url,
            "due_date": new.due_date.isoformat() if new.due_date else None, "expires_at": new.expires_at,
            "open_until_ts": new.expires_at.timestamp(), "state": domain.CREATED, "finished": False, "failure": None,
            "provider": new.provider, "provider_id": None, "provider_status": None, "refunds": [],
            "history": [{"state": domain.CREATED, "at": self.now, "actor": self.caller.subject}],
            "retry_of": None, "created_by": self.caller.subject, "created_at": self.now, "created_ts": self.now.timestamp(),
            "updated_at": self.now,
            "version": 1,
        }
        if doc["provider_id"] is None:
            del doc["provider_id"]  # the unique sparse index holds only payments with a session
        if slot is not None:
            doc.update(idem_slot=slot, idem_fingerprint=fingerprint, idem_at=self.now)
        return doc

    # -- reading ------------------------------------------------------------------------------------------
    def get(self, payment_id: str) -> dict:
        return self.view(self.readable(self.store.get(payment_id)))

    def list(self, req: c.ListPayments) -> dict:
        caller = self.caller.require(STAFF | {"service"})
        f = req.filter
        query: dict = {}
        regies = list(f.regie_ids)
        if caller.role == "service":
            own = set(caller.regies or [])
            regies = [r for r in regies if r in own] if regies else sorted(own)
            if not regies:
                raise Forbidden("Ce jeton de service ne peut lire que les paiements de ses régies.", "regie_ids")
        if regies:
            query["regie_id"] = {"$in": regies}
        if f.states:
            query["state"] = {"$in": list(f.states)}
        if f.reference:
            query["reference"] = f.reference.strip()
        if f.email:
            query["email"] = f.email.strip().lower()
        if f.provider:
            query["provider"] = f.provider
        if f.created_after or f.created_before:
            query["created_ts"] = {**({"$gte": domain.as_utc(f.created_after).timestamp()} if f.created_after else {}),
                                   **({"$lt": domain.as_utc(f.created_before).timestamp()} if f.created_before else {})}
        return self._page(query, req.first, req.after)

    def mine(self, req: c.MyPayments) -> dict:
        caller = self.caller.require({"citizen"})
        return self._page({"payer_id": caller.subject}, req.first, req.after)

    def _page(self, query: dict, first: int, after: str | None) -> dict:
        docs, total = self.store.page(query, first, domain.decode_cursor(after))
        items = docs[:first]
        cursors = [domain.encode_cursor(d["created_at"], d["id"]) for d in items]
        return {"items": [self.view(d) for d in items], "cursors": cursors, "total": total,
                "end_cursor": cursors[-1] if cursors else None, "has_next": len(docs) > first}

    # -- cancelling ---------------------------------------------------------------------------------------
    def cancel(self, req: c.CancelPayment) -> dict:
        for _ in range(WRITE_ATTEMPTS):
            doc = self.store.get(req.id)
            if doc is None or (self.caller.role == "service" and doc["regie_id"] not in (self.caller.regies or [])):
                raise NotFound("Paiement introuvable.", "id")
            self.require_regie(doc["regie_id"])
            provider = self.provider(doc["provider"])
            domain.check_cancel(doc["state"], provider.capabilities.cancel_session)
            if doc["state"] != domain.CREATED and doc.get("provider_id"):
                try:
                    with metrics.provider_call(doc["provider"], "cancel_session"):
                        provider.cancel_session(doc["provider_id"])
                except ProviderError as exc:
                    raise exc.to_parvis_error() from None
            try:
                done = self.transition(doc, domain.CANCELLED, failure_code=domain.CANCELLED_BY_SERVICE,
                                       extra_event={"reason": req.reason, "cancelled_by": self.caller.subject})
                return self.view(done)
            except StaleWrite:
                continue
        raise Conflict("Ce paiement change en ce moment : réessayez.", "id")

    # -- writing a state change ---------------------------------------------------------------------------
    def transition(self, doc: dict, target: str, *, failure_code: str | None = None, provider_status: str | None = None,
                   sets: dict | None = None, unset: tuple[str, ...] = (), extra_event: dict | None = None) -> dict:
        """Move `doc` to `target` (refused outside the machine) with its event, in one conditional write;
        StaleWrite when the payment changed since it was read. Returns the payment as written."""
        domain.check_transition(doc["state"], target)
        now = self.now
        entry = {"state": target, "at": now, "failure_code": failure_code, "provider_status": provider_status,
                 "actor": self.caller.subject}
        changes = {"state": target, "finished": domain.is_finished(target), "updated_at": now,
                   "history": [*doc.get("history", []), entry],
                   "failure": domain.failure(failure_code) if failure_code else None, **(sets or {})}
        if provider_status is not None:
            changes["provider_status"] = provider_status
        unset = set(unset)
        if target != domain.CREATED:
            unset.add("open_until_ts")
        if domain.is_finished(target):
            unset.add("check_due_ts")
            changes.update(finished_at=now, finished_day=domain.paris_day(now).isoformat())
        if target == domain.SUCCESS:
            changes["paid_bill"] = f"{doc['regie_id']}|{doc['reference']}"
        after = {**doc, **changes}
        for name in unset:
            after.pop(name, None)
        event = self.event_for(after, extra_event or {})
        self.store.write(doc["id"], doc["version"], changes, [event], tuple(sorted(unset)))
        after["version"] = doc["version"] + 1
        metrics.entered(doc["regie_id"], target, doc["amount"])
        log.info("payment %s: %s → %s%s", doc["id"], doc["state"], target, f" ({failure_code})" if failure_code else "")
        return after

    def event_for(self, doc: dict, extra: dict) -> dict:
        facts = self.facts(doc)
        state, code = doc["state"], (doc.get("failure") or {}).get("code")
        if state == domain.STARTED:
            data = {**facts, "session_expires_at": doc["session_expires_at"]}
        elif state == domain.SUBMITTED:
            data = facts
        elif state == domain.SUCCESS:
            data = {**facts, "paid_at": doc.get("paid_at") or self.now,
                    "authorisation_code": doc.get("authorisation_code")}
        elif state == domain.CANCELLED:
            data = {**facts, "failure_code": code, "reason": extra.get("reason"), "cancelled_by": extra.get("cancelled_by")}
        else:  # failed, error
            data = {**facts, "failure_code": code, "failure_message": domain.FAILURE_MESSAGES[code]}
        return self.build(domain.STATE_EVENTS[state], data)

    @staticmethod
    def facts(doc: dict) -> dict:
        """What every payment event carries (contracts.payment_link.PaymentFacts)."""
        return {"payment_id": doc.get("id") or doc["_id"], "regie_id": doc["regie_id"], "reference": doc["reference"],
                "amount": doc["amount"], "state": doc["state"], "provider": doc["provider"],
                "provider_id": doc.get("provider_id"), "email": doc["email"], "metadata": doc.get("metadata") or {},
                "regie_name": doc["regie_name"], "description": doc["description"]}

    # -- views --------------------------------------------------------------------------------------------
    def view(self, doc: dict) -> dict:
        """The payment as contracts.payment_link.Payment."""
        pid = doc.get("id") or doc["_id"]
        fields = {name: doc.get(name) for name in (
            "regie_id", "regie_name", "service", "amount", "reference", "description", "objet", "email", "language",
            "metadata", "return_url", "due_date", "expires_at", "state", "finished", "failure", "provider",
            "provider_id", "provider_status", "session_started_at", "session_expires_at", "paid_at",
            "authorisation_code", "refunds", "history", "retry_of", "created_by", "created_at", "updated_at")}
        fields["refunds"] = fields["refunds"] or []
        fields["history"] = fields["history"] or []
        return {**fields, "id": pid, "url": f"/pay/{pid}",
                "refund_summary": domain.refund_summary(doc["state"], doc["amount"], fields["refunds"])}

    def public_view(self, doc: dict) -> dict:
        """What /pay/<id> shows (contracts.payment_link.PublicPayment): no email, no metadata."""
        provider = self.providers.get(doc["provider"])
        payable = doc["state"] == domain.CREATED and self.now < domain.as_utc(doc["expires_at"])
        payable = payable or domain.can_retry(doc["state"], (doc.get("failure") or {}).get("code"), doc["expires_at"],
                                              self.now)  # « Payer » again: a new payment replaces it (retry_of)
        if doc["state"] == domain.STARTED and provider is not None and doc.get("session_started_at") is not None:
            payable = self.now < domain.as_utc(doc["session_started_at"]) + provider.capabilities.reuse_window
        return {"id": doc["id"], "regie_name": doc["regie_name"], "amount": doc["amount"], "reference": doc["reference"],
                "description": doc["description"], "language": doc["language"], "state": doc["state"],
                "finished": doc["finished"], "failure": doc.get("failure"), "payable": payable,
                "due_date": doc.get("due_date"), "expires_at": doc["expires_at"], "paid_at": doc.get("paid_at"),
                "authorisation_code": doc.get("authorisation_code"), "provider": doc["provider"],
                "return_url": doc.get("return_url")}
