"""MongoDB access of the payment_link service (database parvis_payment_link): régies and payments.

Every change of a payment is one conditional write on its `version` (compare and set), carrying the events
that announce it in the same document (the outbox, services/common/mongo.py): two writers racing on one payment
(two notifications, the timer and a notification, two refunds) cannot both pass; the loser reads again and
decides again. Three unique sparse indexes make the worst cases impossible whatever the code does:
- `idem_slot` (scope|key of an Idempotency-Key): one payment per key while the key is kept (24 h);
- `provider_id`: one payment per provider session (PayFiP idOp);
- `paid_bill` (régie|reference, set with `success`): one successful payment per bill.

nx-27017 quirks met here: it stores `$push`ed sub-documents as JSON strings and reads back a top-level datetime
written by `$set` as a string, and compares datetimes to the second: a payment is written whole (replace_one under
its version, its outbox carried over, as the agenda's events), and what the timers and the lists range over is in
epoch seconds (`check_due_ts`, `open_until_ts`, `created_ts`). A compound index may not include `_id`. A `$in` on a
field other than `_id` scans the whole collection (51 ms at 20,000 payments): several payments are read by their
ids (a keyed payment's id derives from its key: payments.py), else one equality read each (1.3 ms).
"""
from __future__ import annotations

import time
from datetime import datetime

from pymongo import ASCENDING, DESCENDING, IndexModel
from pymongo.errors import BulkWriteError, DuplicateKeyError

from services.common.mongo import Repository

LIST_PROJECTION = {"_outbox": 0, "_outbox_n": 0, "_outbox_claim": 0, "_write": 0}


class StaleWrite(Exception):
    """The payment changed since it was read: read it again and decide again."""


class PaymentLinkStore(Repository):
    indexes = {
        "regies": [IndexModel([("name", ASCENDING)])],
        "payments": [
            IndexModel([("idem_slot", ASCENDING)], unique=True, sparse=True),
            IndexModel([("provider_id", ASCENDING)], unique=True, sparse=True),
            IndexModel([("paid_bill", ASCENDING)], unique=True, sparse=True),
            IndexModel([("check_due_ts", ASCENDING)], sparse=True),  # started/submitted: the provider is asked
            IndexModel([("open_until_ts", ASCENDING)], sparse=True),  # created: the link's expiry
            IndexModel([("created_ts", DESCENDING)]),
            IndexModel([("regie_id", ASCENDING), ("created_ts", DESCENDING)]),
            IndexModel([("payer_id", ASCENDING), ("created_ts", DESCENDING)]),
            IndexModel([("finished_day", ASCENDING)], sparse=True),
        ],
    }
    outbox_collections = ("payments",)

    # -- régies -------------------------------------------------------------------------------------
    REGIE_TTL = 5.0  # seconds a régie read is kept by this process: every link created reads its régie

    def get_regie(self, regie_id: str) -> dict | None:
        cache = self.__dict__.setdefault("_regies", {})
        hit = cache.get(regie_id)
        if hit is not None and time.monotonic() - hit[0] < self.REGIE_TTL:
            return dict(hit[1]) if hit[1] is not None else None
        doc = _with_id(self.db.regies.find_one({"_id": regie_id}))
        cache[regie_id] = (time.monotonic(), doc)
        return dict(doc) if doc is not None else None

    def save_regie(self, regie_id: str, fields: dict, now: datetime) -> dict:
        # Written whole (nx-27017 keeps a datetime written by $set as text); agents save a régie now and then.
        current = self.db.regies.find_one({"_id": regie_id}) or {"created_at": now}
        self.db.regies.replace_one({"_id": regie_id}, {**current, **fields, "_id": regie_id, "updated_at": now},
                                   upsert=True)
        self.__dict__.get("_regies", {}).pop(regie_id, None)  # other replicas see it within REGIE_TTL
        return self.get_regie(regie_id)

    def list_regies(self, include_inactive: bool, only: list[str] | None = None) -> list[dict]:
        query: dict = {} if include_inactive else {"active": True}
        if only is not None:
            query["_id"] = {"$in": list(only)}
        return [_with_id(d) for d in self.db.regies.find(query).sort("name", ASCENDING)]

    # -- payments -----------------------------------------------------------------------------------
    def get(self, payment_id: str) -> dict | None:
        return _with_id(self.db.payments.find_one({"_id": payment_id}, LIST_PROJECTION))

    def get_many(self, payment_ids: list[str]) -> dict[str, dict]:
        """Payments by id, in one read (`$in` on `_id`: an index read on nx-27017 as on MongoDB)."""
        ids = list(dict.fromkeys(payment_ids))
        return {d["id"]: d for d in map(_with_id, self.db.payments.find({"_id": {"$in": ids}}, LIST_PROJECTION))} \
            if ids else {}

    def by_provider_id(self, provider: str, provider_id: str) -> dict | None:
        return _with_id(self.db.payments.find_one({"provider_id": provider_id, "provider": provider},
                                                  LIST_PROJECTION))

    def by_idempotency(self, slot: str) -> dict | None:
        return _with_id(self.db.payments.find_one({"idem_slot": slot}, LIST_PROJECTION))

    def forget_idempotency(self, payment_id: str, slot: str) -> None:
        """A key older than its window is freed for a new request (Stripe: keys may be reused after 24 h)."""
        self.db.payments.update_one({"_id": payment_id, "idem_slot": slot}, {"$unset": {"idem_slot": ""}})

    def insert(self, doc: dict, events: list[dict]) -> None:
        """Raises DuplicateKeyError when the idempotency slot is taken (a racing request with the same key)."""
        self.db.payments.insert_one(self.doc_with_events(doc, events))

    def insert_many(self, docs: list[dict]) -> set[int]:
        """One unordered insert of new payments (each with its outbox events already in it): the indexes of those
        refused by a unique index (an idempotency slot taken); the others are stored. Any other error raises."""
        if not docs:
            return set()
        try:
            self.db.payments.insert_many(docs, ordered=False)
        except BulkWriteError as exc:
            errors = exc.details.get("writeErrors") or []
            other = [e for e in errors if e.get("code") not in (11000, 11001)]
            if other or not errors:
                raise
            return {e["index"] for e in errors}
        return set()

    def get_many(self, payment_ids: list[str]) -> dict[str, dict]:
        """Payments by id (one read on the primary key)."""
        if not payment_ids:
            return {}
        return {d["id"]: d for d in map(_with_id, self.db.payments.find({"_id": {"$in": list(payment_ids)}},
                                                                        LIST_PROJECTION))}

    def write(self, payment_id: str, version: int, sets: dict, events: list[dict], unset: tuple[str, ...] = ()
              ) -> None:
        """Compare and set on `version` (the whole document, see Repository.replace_versioned): StaleWrite when
        another writer passed first. DuplicateKeyError propagates (a bill paid twice, a provider id taken)."""
        if self.replace_versioned("payments", payment_id, version, sets, events, unset) is None:
            raise StaleWrite(payment_id)

    def write_many(self, writes: list[tuple]) -> set[int]:
        """Several `write`s (payment_id, version, sets, events, unset) at once: the indexes written; the others
        lost to another writer or broke a unique index (Repository.replace_versioned_many)."""
        return self.replace_versioned_many("payments", writes)

    def page(self, query: dict, first: int, after: tuple[datetime, str] | None) -> tuple[list[dict], int]:
        """Newest first, keyset paged on (created_ts, _id); with the total of the query (a count: nx-27017 scans)."""
        total = self.db.payments.count_documents(query)
        if after is not None:
            moment, last_id = after[0].timestamp(), after[1]
            query = {"$and": [query, {"$or": [{"created_ts": {"$lt": moment}},
                                              {"created_ts": moment, "_id": {"$lt": last_id}}]}]}
        docs = self.db.payments.find(query, LIST_PROJECTION).sort([("created_ts", DESCENDING), ("_id", DESCENDING)]
                                                                  ).limit(first + 1)
        return [_with_id(d) for d in docs], total

    def due_checks(self, now: datetime, limit: int) -> list[dict]:
        docs = self.db.payments.find({"check_due_ts": {"$lte": now.timestamp()}}, LIST_PROJECTION
                                     ).sort("check_due_ts", ASCENDING)
        return [_with_id(d) for d in docs.limit(limit)]

    def due_expiries(self, now: datetime, limit: int) -> list[dict]:
        docs = self.db.payments.find({"open_until_ts": {"$lte": now.timestamp()}}, LIST_PROJECTION).limit(limit)
        return [_with_id(d) for d in docs]

    def unconfirmed(self) -> list[dict]:
        """Payments waiting for a provider's result (few: the sparse index on check_due holds only them)."""
        return list(self.db.payments.find({"check_due_ts": {"$gt": 0}},
                                          {"session_started_at": 1, "regie_id": 1, "state": 1}))

    def finished_on(self, day: str, regie_id: str | None) -> list[dict]:
        query: dict = {"finished_day": day}
        if regie_id:
            query["regie_id"] = regie_id
        return [_with_id(d) for d in self.db.payments.find(query, LIST_PROJECTION)]


def _with_id(doc: dict | None) -> dict | None:
    if doc is None:
        return None
    doc["id"] = doc.pop("_id")
    return doc


__all__ = ["PaymentLinkStore", "StaleWrite", "DuplicateKeyError"]
