"""The payment_link service's batched RPCs (services/payment_link: `Payments.create_many`, `Sessions.notifications`):
each item answered as its single RPC would answer it, under its own caller; new links written by one unordered
insert, the idempotency key's unique index deciding; notifications read back from the provider, never trusted.

No I/O: an in-memory store that keeps the unique idempotency slot and provider id as the database's indexes do."""
from __future__ import annotations

import copy
from datetime import datetime, timezone

import eventlet
import pytest

from contracts import build_envelope
from contracts import payment_link as c
from contracts.errors import BadInput, Conflict, Forbidden, Unauthenticated
from contracts.platform import BatchItem, Caller, sign_caller
from services.common.rpc import CallerView, batch_calls
from services.payment_link import domain
from services.payment_link.payments import Payments
from services.payment_link.providers import ProviderResult, ProviderUnavailable
from services.payment_link.sessions import Sessions
from services.payment_link.store import StaleWrite

NOW = datetime(2026, 3, 14, 9, 30, tzinfo=timezone.utc)
SECRET = "s" * 40
REGIE = {"id": "regie-eau", "numcli": "123456", "name": "Régie de l'eau", "services": ["eau"],
         "provider": {"provider": "payfip", "payfip_mode": "T"}, "active": True}
BILLING = Caller(role="service", subject="service:billing", regies=["regie-eau"])
OTHER_BILLING = Caller(role="service", subject="service:other", regies=["regie-autre"])


class Settings:
    secret = SECRET
    check_delay_scale = 1.0
    fault_pause_after_result = 0.0
    public_url = "http://127.0.0.1"


class Store:
    """payments by id, with the unique sparse indexes on idem_slot and provider_id."""

    def __init__(self):
        self.payments: dict[str, dict] = {}
        self.inserts: list[int] = []  # documents per insert_many
        self.reads = 0

    def get_regie(self, regie_id):
        return dict(REGIE) if regie_id == REGIE["id"] else None

    def _taken(self, doc) -> bool:
        return any((doc.get("idem_slot") and d.get("idem_slot") == doc["idem_slot"]) or d["_id"] == doc["_id"]
                   for d in self.payments.values())

    @staticmethod
    def doc_with_events(doc, events):
        return {**doc, "_outbox": {e["event_id"]: e for e in events}, "_outbox_n": len(events)}

    def insert_many(self, docs):
        self.inserts.append(len(docs))
        refused = set()
        for i, doc in enumerate(docs):
            if self._taken(doc):
                refused.add(i)
            else:
                self.payments[doc["_id"]] = copy.deepcopy(doc)
        return refused

    def insert(self, doc, events):
        from pymongo.errors import DuplicateKeyError
        if self._taken(doc):
            raise DuplicateKeyError("idem_slot")
        self.payments[doc["_id"]] = self.doc_with_events(copy.deepcopy(doc), events)

    def _out(self, doc):
        if doc is None:
            return None
        out = {k: copy.deepcopy(v) for k, v in doc.items() if not k.startswith("_outbox")}
        out["id"] = out.pop("_id")
        return out

    def get_many(self, ids):
        self.reads += 1
        return {pid: self._out(self.payments[pid]) for pid in ids if pid in self.payments}

    def by_idempotency(self, slot):
        return next((self._out(d) for d in self.payments.values() if d.get("idem_slot") == slot), None)

    def by_provider_id(self, provider, provider_id):
        self.reads += 1
        return next((self._out(d) for d in self.payments.values()
                     if d.get("provider_id") == provider_id and d["provider"] == provider), None)

    def get(self, pid):
        return self._out(self.payments.get(pid))

    def write(self, pid, version, sets, events, unset=()):
        eventlet.sleep(0)  # another green thread may run here, as during a database round trip
        doc = self.payments[pid]
        if doc["version"] != version:  # compare and set, at once as the database does
            raise StaleWrite(pid)
        for name in unset:
            doc.pop(name, None)
        doc.update(copy.deepcopy(sets))
        doc["version"] = version + 1
        doc.setdefault("_events", []).extend(e["type"] for e in events)


    def write_many(self, writes):
        self.bulks = getattr(self, "bulks", []) + [len(writes)]
        done = set()
        for i, w in enumerate(writes):
            try:
                self.write(*w)
                done.add(i)
            except StaleWrite:
                pass
        return done


class Provider:
    """PayFiP as the service sees it: results by idOp, read back; `down` ids fail."""

    name = "payfip"

    def __init__(self, results: dict[str, str], down=()):
        self.results, self.down, self.asked = results, set(down), []

    def notification_id(self, body, content_type):
        return body.partition("idOp=")[2] or None

    def fetch_result(self, provider_id):
        self.asked.append(provider_id)
        eventlet.sleep(0.01)
        if provider_id in self.down:
            raise ProviderUnavailable("PayFiP est injoignable pour le moment.")
        status = self.results.get(provider_id, "P1")
        return ProviderResult("payfip", provider_id, status, amount=1000, reference=f"FACT{int(provider_id[2:]):04d}",
                              numcli="123456",
                              paid_at=NOW, authorisation_code="A1")


def build(event_type, data):
    return build_envelope(event_type, data, "payment_link")


def payments(store, caller, cls=Payments, providers=None):
    return cls(store, build, CallerView(caller), providers or {}, Settings(), NOW)


def link(key, reference="FACT0001", amount=1000, regie="regie-eau"):
    return c.CreatePaymentLink.model_validate({"idempotency_key": key, "payment": {
        "regie_id": regie, "amount": amount, "reference": reference, "description": "Facture d'eau",
        "email": "abonne@example.fr"}})


def test_new_links_go_in_one_insert_and_resends_are_answered_with_the_first_payment():
    store = Store()
    first = Payments.create_many([(payments(store, BILLING), link(f"k{n}", f"FACT{n:04d}")) for n in range(5)])
    assert store.inserts == [5]
    ids = [a["result"]["payment"]["id"] for a in first]
    assert len(set(ids)) == 5 and not any(a["result"]["replayed"] for a in first)
    # the same keys again, with a new one among them: one insert, one read of the keys refused
    again = Payments.create_many([(payments(store, BILLING), link(f"k{n}", f"FACT{n:04d}")) for n in range(6)])
    assert store.inserts == [5, 6] and store.reads == 1
    assert [a["result"]["replayed"] for a in again] == [True] * 5 + [False]
    assert [a["result"]["payment"]["id"] for a in again[:5]] == ids
    assert len(store.payments) == 6


def test_each_item_fails_alone_with_the_error_of_its_single_call():
    store = Store()
    Payments.create_many([(payments(store, BILLING), link("k1"))])
    answers = Payments.create_many([
        (payments(store, BILLING), link("k1", amount=2000)),  # same key, another body
        (payments(store, BILLING), link("k2", amount=5)),  # below 1 €
        (payments(store, OTHER_BILLING), link("k3")),  # not its régie
        (payments(store, Caller()), link("k4")),  # the public (an unsigned item)
        (payments(store, BILLING), BadInput("payment.amount : valeur obligatoire", "payment.amount")),
        (payments(store, BILLING), link("k5")),
    ])
    kinds = [type(a.get("error")).__name__ if "error" in a else "ok" for a in answers]
    assert kinds == ["Conflict", "BadInput", "Forbidden", "Forbidden", "BadInput", "ok"]
    assert len(store.payments) == 2  # k1 and k5: a refusal stores nothing


def test_the_same_key_twice_in_one_batch_makes_one_payment():
    store = Store()
    answers = Payments.create_many([(payments(store, BILLING), link("k1")), (payments(store, BILLING), link("k1"))])
    assert [a["result"]["replayed"] for a in answers] == [False, True]
    assert answers[0]["result"]["payment"]["id"] == answers[1]["result"]["payment"]["id"]
    assert len(store.payments) == 1


def test_a_keyed_payment_id_derives_from_its_key_and_a_freed_key_gets_a_new_one():
    store = Store()
    (first,) = Payments.create_many([(payments(store, BILLING), link("k1"))])
    pid = first["result"]["payment"]["id"]
    slot = f"{domain.idempotency_scope('service', 'service:billing', None)}|k1"
    assert pid == payments(store, BILLING).payment_id(slot) and len(pid) == len("pay-") + 20
    assert payments(store, BILLING).payment_id(slot) != Payments(store, build, CallerView(BILLING), {}, type(
        "Other", (Settings,), {"secret": "t" * 40})(), NOW).payment_id(slot), "derived with the secret"
    # 25 hours later the key is free: the same key makes a new payment, under a new id (the old one keeps its id)
    later = Payments(store, build, CallerView(BILLING), {}, Settings(), NOW.replace(day=15, hour=11))
    store.forget_idempotency = lambda payment_id, slot: store.payments[payment_id].pop("idem_slot")
    (again,) = Payments.create_many([(later, link("k1"))])
    assert again["result"]["replayed"] is False and again["result"]["payment"]["id"] != pid
    assert len(store.payments) == 2


def test_the_same_key_from_two_callers_is_two_payments():
    store = Store()
    agent = Caller(role="agent", subject="agent:x")
    answers = Payments.create_many([(payments(store, BILLING), link("k1")), (payments(store, agent), link("k1"))])
    assert not any(a["result"]["replayed"] for a in answers) and len(store.payments) == 2


def test_an_item_caller_is_trusted_only_with_its_signature_for_the_single_method():
    good = {"role": "service", "subject": "service:billing", "regies": ["regie-eau"]}
    items = [BatchItem(caller=good, caller_sig=sign_caller(SECRET, good, c.CREATE_PAYMENT_LINK.name),
                       args={"idempotency_key": "a", "payment": link("a").payment.model_dump()}),
             BatchItem(caller=good, caller_sig=sign_caller(SECRET, good, "payment_link.cancel_payment"),
                       args={"idempotency_key": "b", "payment": link("b").payment.model_dump()}),
             BatchItem(caller=good, args={"idempotency_key": "c", "payment": {"amount": 1}})]
    calls = batch_calls(SECRET, c.CREATE_PAYMENT_LINK, items)
    store = Store()
    answers = Payments.create_many([(payments(store, call.caller.caller), call.error or call.request)
                                    for call in calls])
    assert "result" in answers[0]
    assert isinstance(answers[1]["error"], Forbidden)  # signed for another method: the public
    assert isinstance(answers[2]["error"], BadInput)
    assert len(store.payments) == 1


def started(store, n, idop):
    doc = payments(store, BILLING).prepare(link(f"k{n}", f"FACT{n:04d}"))[0]
    doc.update(state="started", provider_id=idop, session_started_at=NOW, checks=0)
    store.payments[doc["_id"]] = doc
    return doc["_id"]


def notification(idop):
    return c.ProviderNotification(provider="payfip", body=f"idOp={idop}")


def test_notifications_are_read_back_together_and_applied_once():
    store = Store()
    ids = {f"op{n}": started(store, n, f"op{n}") for n in range(4)}
    provider = Provider({"op0": "P", "op1": "R", "op2": "P5", "op3": "P"}, down=["op3"])
    public = Caller()
    asks = [(payments(store, public, Sessions, {"payfip": provider}), notification(i))
            for i in ("op0", "op1", "op2", "op3", "op0", "unknown")]
    asks.insert(2, (payments(store, public, Sessions, {"payfip": provider}), Unauthenticated("x")))
    answers = Sessions.notifications(asks, concurrency=8)
    results = [a.get("result") for a in answers]
    assert results[0] == {"payment_id": ids["op0"], "state": "success", "changed": True}
    assert results[1] == {"payment_id": ids["op1"], "state": "failed", "changed": True}
    assert isinstance(answers[2]["error"], Unauthenticated)
    assert results[3] == {"payment_id": ids["op2"], "state": "submitted", "changed": True}  # P5: asked again later
    assert results[4] == {"payment_id": ids["op3"], "state": "started", "changed": False}  # provider down: the timer
    assert results[5]["payment_id"] == ids["op0"] and results[5]["state"] == "success" and not results[5]["changed"]
    assert results[6] == {"payment_id": None, "state": None, "changed": False}
    assert store.reads == 5  # the payments named: one read each (unknown included), op0 once
    assert store.bulks == [4]  # op0 twice, op1, op2: written together; the second op0 lost and went alone
    assert store.payments[ids["op0"]]["_events"] == ["payment_link.succeeded"]  # once, though notified twice
    assert "unknown" not in provider.asked


@pytest.mark.parametrize("status", ["P", "V", "R", "A", "Z", "P5"])
def test_a_notification_in_a_batch_ends_as_a_single_one_does(status):
    single, batched = Store(), Store()
    for store in (single, batched):
        started(store, 1, "op1")
    provider = Provider({"op1": status})
    alone = payments(single, Caller(), Sessions, {"payfip": provider}).notification(notification("op1"))
    (together,) = Sessions.notifications([(payments(batched, Caller(), Sessions, {"payfip": provider}),
                                           notification("op1"))])
    assert {**alone, "payment_id": None} == {**together["result"], "payment_id": None}
    strip = lambda d: {k: v for k, v in d.items() if k not in ("_id", "idem_slot", "idem_fingerprint")}  # noqa: E731
    assert strip(next(iter(single.payments.values()))) == strip(next(iter(batched.payments.values())))
