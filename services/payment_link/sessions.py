"""The payer's side: « Payer » starts a provider session, the provider's notification and the return page make
us read the result back from the provider (never from the notification), and a result is applied once.

A notification is only a hint that names a provider id: a forged one (an unknown idOp, someone else's, a
replay) can at most make us ask the provider about a session, whose true answer then applies to its own
payment. A finished payment never changes; two hands applying one result race on the payment's version and
only one writes (store.py).
"""
from __future__ import annotations

import logging
import time

import eventlet

from contracts import payment_link as c
from contracts.errors import Conflict, NotFound, ParvisError
from services.payment_link import domain, metrics
from services.payment_link.payments import WRITE_ATTEMPTS, Payments
from services.payment_link.providers import ProviderError, ProviderResult, SessionRequest
from services.payment_link.store import DuplicateKeyError, StaleWrite

log = logging.getLogger(__name__)

MAX_RETRIES = 10  # tries of one bill through its link (`<id>-r-r…`, within the id's 80 characters)


class Sessions(Payments):
    # -- the public page ----------------------------------------------------------------------------------
    def page(self, req: c.PaymentPageRequest) -> dict:
        doc = self.store.get(req.id)
        if doc is None:
            raise NotFound("Ce lien de paiement n'existe pas.", "id")
        if req.refresh and domain.needs_provider_check(doc["state"], doc.get("provider_id")):
            doc, _ = self.check(doc, notified=True, quiet=True)
        for _ in range(MAX_RETRIES):  # the bill's latest try, when the payer tried again (retry_of)
            retried = self.store.get(f"{doc['id']}-r") if doc["state"] == domain.FAILED else None
            if retried is None:
                break
            doc = retried
        return self.public_view(doc)

    # -- « Payer » ----------------------------------------------------------------------------------------
    def start(self, req: c.StartSession) -> dict:
        for _ in range(WRITE_ATTEMPTS):
            doc = self.store.get(req.id)
            if doc is None:
                raise NotFound("Ce lien de paiement n'existe pas.", "id")
            doc = self.retry(doc)
            provider = self.provider(doc["provider"])
            action = domain.session_action(doc["state"], doc["expires_at"], doc.get("session_started_at"), self.now,
                                           provider.capabilities.reuse_window)
            if action == "reuse":
                return self._started(doc, reused=True)
            regie = self.store.get_regie(doc["regie_id"]) or {}
            settings = regie.get("provider") or {}
            base = self.settings.public_url
            request = SessionRequest(
                payment_id=doc["id"], amount=doc["amount"], reference=doc["reference"],
                description=doc["description"], objet=doc["objet"], email=doc["email"], language=doc["language"],
                notify_url=f"{base}/pay/notify/{doc['provider']}/{doc['id']}",  # its own: read by id (notifications)
                return_url=f"{base}/pay/{doc['id']}/retour",
                exer=domain.payfip_exer(self.now), numcli=regie.get("numcli", ""),
                payfip_mode=settings.get("payfip_mode", "T"))
            try:
                with metrics.provider_call(doc["provider"], "start_session"):
                    session = provider.start_session(request)
            except ProviderError as exc:
                raise exc.to_parvis_error() from None
            expires = domain.session_expires_at(self.now)
            try:
                done = self.transition(doc, domain.STARTED, sets={
                    "provider_id": session.provider_id, "next_url": session.next_url, "session_started_at": self.now,
                    "session_expires_at": expires, "checks": 0, "check_due_ts": self.next_check(0)})
            except StaleWrite:
                continue  # pressed twice at once: the other press's session is the one (this idOp stays unused)
            return self._started(done, reused=False)
        raise Conflict("Ce paiement change en ce moment : réessayez.", "id")

    def retry(self, doc: dict) -> dict:
        """The payment « Payer » acts on: `doc`, or, when it failed in a way the payer may try again (refused,
        abandoned, its session expired) while its link is valid, the payment that replaces it (`retry_of`). A
        failed payment never changes: its retry has a derived id (`<id>-r`), so that two presses make one retry,
        and a retry that failed is retried in turn. The paid bill's unique index keeps a bill from being paid twice."""
        for _ in range(MAX_RETRIES):
            code = (doc.get("failure") or {}).get("code")
            if not domain.can_retry(doc["state"], code, doc["expires_at"], self.now):
                return doc
            retry_id = f"{doc['id']}-r"
            existing = self.store.get(retry_id)
            if existing is None:
                existing = self._retry_doc(doc, retry_id)
                event = self.build(c.PaymentLinkCreated.event_type, {
                    **self.facts(existing), "description": existing["description"], "due_date": existing["due_date"],
                    "expires_at": existing["expires_at"], "created_by": existing["created_by"], "retry_of": doc["id"]})
                try:
                    self.store.insert(existing, [event])
                    metrics.entered(existing["regie_id"], domain.CREATED, existing["amount"])
                    existing["id"] = existing.pop("_id")
                except DuplicateKeyError:  # pressed twice at once: the other press made it
                    existing = self.store.get(retry_id)
            doc = existing
        raise Conflict("Trop de tentatives de paiement pour cette facture : contactez le service qui vous l'a "
                       "envoyée.", "id")

    def _retry_doc(self, failed: dict, retry_id: str) -> dict:
        keep = ("regie_id", "regie_name", "service", "amount", "reference", "description", "objet", "email",
                "payer_id", "language", "metadata", "return_url", "due_date", "expires_at", "provider", "created_by")
        return {**{k: failed.get(k) for k in keep}, "_id": retry_id, "open_until_ts": failed["expires_at"].timestamp(),
                "state": domain.CREATED, "finished": False, "failure": None, "provider_status": None, "refunds": [],
                "history": [{"state": domain.CREATED, "at": self.now, "actor": None}], "retry_of": failed["id"],
                "created_at": self.now, "created_ts": self.now.timestamp(), "updated_at": self.now, "version": 1}

    def _started(self, doc: dict, reused: bool) -> dict:
        return {"payment_id": doc["id"], "provider": doc["provider"], "provider_id": doc["provider_id"],
                "next_url": doc["next_url"], "session_expires_at": doc["session_expires_at"], "reused": reused}

    def next_check(self, checks_done: int):
        """When to ask the provider again (epoch seconds), with domain.next_check_at's backoff."""
        delay = domain.next_check_at(checks_done, self.now) - self.now
        return self.now.timestamp() + delay.total_seconds() * self.settings.check_delay_scale

    # -- the provider's notification ----------------------------------------------------------------------
    def notification(self, req: c.ProviderNotification) -> dict:
        provider = self.providers.get(req.provider)
        provider_id = provider.notification_id(req.body, req.content_type) if provider is not None else None
        doc = None
        if provider_id and req.payment_id:
            doc = _named(self.store.get(req.payment_id), req.provider, provider_id)
        if doc is None and provider_id:
            doc = self.store.by_provider_id(req.provider, provider_id)
        if doc is None:
            log.warning("notification from %s naming no payment of ours (%r): ignored", req.provider, provider_id)
            return {"payment_id": None, "state": None, "changed": False}
        doc, changed = self.check(doc, notified=True, quiet=True)
        return {"payment_id": doc["id"], "state": doc["state"], "changed": changed}

    @staticmethod
    def notifications(asks: list[tuple["Sessions", c.ProviderNotification | Exception]], concurrency: int = 40
                      ) -> list[dict]:
        """Several notifications at once (the gateway's group commit of the notification route), each answered as
        `notification` answers it, as {"result": …} or {"error": exc}: the payments they name read, then each
        result read back from the provider and applied, `concurrency` at a time (green threads: the provider's
        answers are awaited together). Nothing is trusted without its read-back."""
        answers: list[dict | None] = [None] * len(asks)
        named: dict[str, dict[str, list[int]]] = {}  # provider -> provider id -> items
        for i, (sessions, req) in enumerate(asks):
            if isinstance(req, Exception):
                answers[i] = {"error": req}
                continue
            provider = sessions.providers.get(req.provider)
            provider_id = provider.notification_id(req.body, req.content_type) if provider is not None else None
            if not provider_id:
                log.warning("notification from %s naming no payment of ours (%r): ignored", req.provider, provider_id)
                answers[i] = {"result": {"payment_id": None, "state": None, "changed": False}}
                continue
            named.setdefault(req.provider, {}).setdefault(provider_id, []).append(i)
        # The payments that the notifications' URLs name (/pay/notify/<provider>/<payment id>: sessions started since
        # 2026-12-02) read together by id, each kept only if it has the provider id its body names; the others each
        # by its own equality read on the provider id's index, in the green threads below: nx-27017 answers one `$in`
        # on that field by scanning the whole collection (store.py).
        hinted = {asks[i][1].payment_id for ids in named.values() for items in ids.values() for i in items
                  if asks[i][1].payment_id}
        by_id = asks[0][0].store.get_many(sorted(hinted)) if hinted else {}
        work: list[tuple[int, dict]] = []
        for provider, ids in named.items():
            found: dict[str, dict | None] = {}
            store = asks[next(iter(ids.values()))[0]][0].store
            for provider_id, items in ids.items():
                for i in items:
                    doc = _named(by_id.get(asks[i][1].payment_id or ""), provider, provider_id)
                    if doc is not None:
                        found[provider_id] = doc

            def read(provider_id: str, provider: str = provider, store=store, found=found) -> None:
                found[provider_id] = store.by_provider_id(provider, provider_id)

            reads = eventlet.GreenPool(max(1, concurrency))
            for provider_id in ids:
                if provider_id not in found:
                    reads.spawn_n(read, provider_id)
            reads.waitall()
            for provider_id, items in ids.items():
                doc = found.get(provider_id)
                for i in items:
                    if doc is None:
                        log.warning("notification from %s naming no payment of ours (%r): ignored", provider,
                                    provider_id)
                        answers[i] = {"result": {"payment_id": None, "state": None, "changed": False}}
                    else:
                        work.append((i, doc))

        # Each result read back (green threads: the provider's answers awaited together) and decided as `check`
        # decides it, its write kept aside; then the writes go together (Repository.replace_versioned_many). An item
        # whose write lost to another writer (the timer, the same notification twice) goes through `check` alone:
        # read again, ask again, decide again. Its metrics and log line were counted at the decision, as `check`
        # counts them at a write that then raises.
        decided: list[tuple[int, dict, bool, tuple | None]] = []

        def one(i: int, doc: dict) -> None:
            sessions = asks[i][0]
            try:
                if not domain.needs_provider_check(doc["state"], doc.get("provider_id")):
                    answers[i] = {"result": {"payment_id": doc["id"], "state": doc["state"], "changed": False}}
                    return
                result = sessions.read_back(doc)
                if result is None:  # the provider did not answer: the timer asks again
                    answers[i] = {"result": {"payment_id": doc["id"], "state": doc["state"], "changed": False}}
                    return
                held = HeldWrites(sessions.store)
                after, changed = sessions.held(held).apply(doc, result, notified=True)
                decided.append((i, after, changed, held.writes[0] if held.writes else None))
            except Exception as exc:  # noqa: BLE001 - this item fails alone, as its own RPC would
                if not isinstance(exc, ParvisError):
                    log.exception("notification for payment %s failed", doc["id"])
                answers[i] = {"error": exc}

        def alone(i: int) -> None:
            sessions = asks[i][0]
            doc = sessions.store.get(dict(work)[i]["id"])
            try:
                doc, changed = sessions.check(doc, notified=True, quiet=True)
                answers[i] = {"result": {"payment_id": doc["id"], "state": doc["state"], "changed": changed}}
            except Exception as exc:  # noqa: BLE001 - as above
                if not isinstance(exc, ParvisError):
                    log.exception("notification for payment %s failed", doc["id"])
                answers[i] = {"error": exc}

        pool = eventlet.GreenPool(max(1, concurrency))
        for i, doc in work:
            pool.spawn_n(one, i, doc)
        pool.waitall()
        writes = [(i, w) for i, _, _, w in decided if w is not None]
        written = {writes[k][0] for k in (asks[writes[0][0]][0].store.write_many([w for _, w in writes])
                                          if writes else ())}
        for i, after, changed, write in decided:
            if write is None or i in written:
                answers[i] = {"result": {"payment_id": after["id"], "state": after["state"], "changed": changed}}
            else:
                pool.spawn_n(alone, i)
        pool.waitall()
        return answers

    def read_back(self, doc: dict) -> ProviderResult | None:
        """The provider's result for `doc`'s session; None when the provider did not answer (logged)."""
        try:
            return self._fetch_result(doc)
        except ProviderError:
            return None

    def _fetch_result(self, doc: dict) -> ProviderResult:
        """The provider's result for `doc`'s session, timed; its ProviderError logged and raised."""
        provider = self.provider(doc["provider"])
        try:
            with metrics.provider_call(doc["provider"], "fetch_result"):
                result = provider.fetch_result(doc["provider_id"])
        except ProviderError as exc:
            log.warning("payment %s: the provider did not answer: %s", doc["id"], exc.message)
            raise
        if self.settings.fault_pause_after_result:  # the crash tests' window (PARVIS_PAYMENT_FAULT_PAUSE)
            time.sleep(self.settings.fault_pause_after_result)  # green: nameko's eventlet patched time
        return result

    def held(self, store: "HeldWrites") -> "Sessions":
        """These sessions, writing into `store` (HeldWrites) instead of the database."""
        return Sessions(store, self.build, self.caller, self.providers, self.settings, self.now)

    # -- reading the result back and applying it ----------------------------------------------------------
    def check(self, doc: dict, notified: bool, quiet: bool = False) -> tuple[dict, bool]:
        """Ask the provider about `doc`'s session and apply its answer; (the payment now, whether it changed).
        A provider that fails leaves the payment as it is (the timer asks again), raising unless `quiet`."""
        for _ in range(WRITE_ATTEMPTS):
            if not domain.needs_provider_check(doc["state"], doc.get("provider_id")):
                return doc, False
            try:
                result = self._fetch_result(doc)
            except ProviderError as exc:
                if quiet:
                    return doc, False
                raise exc.to_parvis_error() from None
            try:
                return self.apply(doc, result, notified)
            except StaleWrite:
                doc = self.store.get(doc["id"])
        return doc, False

    def apply(self, doc: dict, result: ProviderResult, notified: bool) -> tuple[dict, bool]:
        started_at = doc.get("session_started_at") or self.now
        outcome = domain.provider_outcome(doc["provider"], result.status, started_at, self.now)
        expected = {"amount": doc["amount"], "reference": doc["reference"]}
        if doc["provider"] == "payfip":
            expected["numcli"] = (self.store.get_regie(doc["regie_id"]) or {}).get("numcli")
        mismatches = domain.detail_mismatches(expected, {"amount": result.amount, "reference": result.reference,
                                                         "numcli": result.numcli})
        if mismatches:
            log.error("payment %s: the provider's detail disagrees on %s", doc["id"], ", ".join(mismatches))
        decision = domain.decide(doc["state"], outcome, notified, mismatches)
        if decision.anomaly:
            metrics.ANOMALIES.labels(decision.anomaly).inc()
            log.error("payment %s: %s (provider says %s)", doc["id"], decision.anomaly, result.status)
        if decision.state is None:  # no result yet: ask again later, with backoff
            checks = int(doc.get("checks") or 0) + 1
            self.store.write(doc["id"], doc["version"], {"checks": checks, "check_due_ts": self.next_check(checks),
                                                         "provider_status": result.status}, [])
            return {**doc, "checks": checks, "provider_status": result.status, "version": doc["version"] + 1}, False
        sets = {}
        if decision.state == domain.SUCCESS:
            sets = {"paid_at": result.paid_at or self.now, "authorisation_code": result.authorisation_code}
        try:
            return self.transition(doc, decision.state, failure_code=decision.failure_code,
                                   provider_status=result.status, sets=sets), True
        except DuplicateKeyError:  # this bill was already paid through another link: money to give back
            metrics.ANOMALIES.labels("bill_paid_twice").inc()
            log.error("payment %s: its bill %s was already paid by another payment", doc["id"], doc["reference"])
            return self.transition(doc, domain.ERROR, failure_code=domain.PROVIDER_ERROR,
                                   provider_status=result.status, sets={"anomaly": "bill_paid_twice", **sets}), True


class HeldWrites:
    """A payment store whose `write` is kept aside, to be made with others (PaymentLinkStore.write_many); reads go
    to the store. Only one write per decision: `apply` makes one."""

    def __init__(self, store):
        self.store, self.writes = store, []

    def __getattr__(self, name):
        return getattr(self.store, name)

    def write(self, payment_id: str, version: int, sets: dict, events: list[dict], unset: tuple[str, ...] = ()
              ) -> None:
        self.writes.append((payment_id, version, sets, events, unset))


def _named(doc: dict | None, provider: str, provider_id: str) -> dict | None:
    """The payment a notification's URL names, if it is the one its body names (the URL is not trusted either)."""
    return doc if doc is not None and doc.get("provider") == provider and doc.get("provider_id") == provider_id \
        else None
