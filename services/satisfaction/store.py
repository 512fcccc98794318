"""MongoDB access of the satisfaction service (database parvis_satisfaction).

Exactly-once counting without scanning votes:
1. a `batches` document is written first (the recovery's to-do list); one batch may hold the votes of
   several submits (of several kiosks) that the service groups into one round of writes;
2. the votes are inserted with `_id` = their UUID (`insert_many(ordered=False)`): a resent vote is a
   duplicate key (11000) and is reported as a duplicate, never stored twice; each new vote carries `batch`
   (and its kiosk, site and scale, so that a batch can be counted again from its votes alone);
3. the counters (kiosk/site x hour/day, site x minute) get `$inc` for the newly stored votes only, each
   update guarded by a marker `b.<batch>` in the counter document: applying a batch twice is a no-op;
4. the batch document is deleted (under load, in the same round trip as the next batch document is
   written); the markers are pruned on the next write of each counter.
A crash anywhere leaves the batch document: the recovery timer re-applies the batch from its stored votes
(found by the ids the batch document lists), which only adds what the markers say is missing.

Times are epoch seconds (`pressed_ts`, `received_ts`, counters' `t`, kiosks' `last_seen_ts`…): nx-27017 reads a
datetime set by an update back as a string (only inserted datetimes round-trip) and compares datetimes to the
second, and it encodes a datetime field by a Python call per value; numbers behave the same on both databases.

A recount (the repeated-press rule replayed over a kiosk's votes) works the same way, one at a time per
kiosk: a `recounts` document (_id = the kiosk) is first inserted as a claim, then replaced by the plan (the
votes whose flag flips and the counters' deltas); the deltas are applied as `$inc` guarded by the marker
`b.<recount token>`, then the flags, then the document is deleted. A crash leaves the plan, which the
recovery timer applies again (a no-op for what was done), or a bare claim, which it drops.
"""
from __future__ import annotations

import threading
import uuid
from datetime import datetime, timedelta

from pymongo import ASCENDING, DESCENDING, DeleteOne, IndexModel, InsertOne, ReturnDocument, UpdateOne
from pymongo.errors import BulkWriteError, DuplicateKeyError

from services.common.mongo import Repository, utcnow
from services.satisfaction import domain

DUPLICATE = 11000


class SatisfactionStore(Repository):
    indexes = {
        "kiosks": [IndexModel([("site_id", ASCENDING)]), IndexModel([("last_seen_ts", ASCENDING)])],
        # No secondary index on votes: the hot path only inserts them, and recovery finds a batch's votes by
        # their ids (kept in the batch document). Each index would slow every insert down.
        "votes": [],
        "batches": [IndexModel([("created_ts", ASCENDING)])],
        "counters": [IndexModel([("scope", ASCENDING), ("ref", ASCENDING), ("gran", ASCENDING), ("t", ASCENDING)])],
        "alerts": [IndexModel([("site_id", ASCENDING), ("raised_at", DESCENDING)])],
        "recounts": [IndexModel([("created_ts", ASCENDING)])],
    }
    outbox_collections = ("sites", "kiosks")

    def __init__(self, db):
        super().__init__(db)
        self._prune: dict[str, set[str]] = {}
        self._prune_lock = threading.Lock()

    # -- sites ----------------------------------------------------------------------------------
    def upsert_site(self, site: dict) -> dict:
        sid = site.pop("id")
        return self.db.sites.find_one_and_update({"_id": sid}, {"$set": {**site, "updated_ts": utcnow().timestamp()}},
                                                 upsert=True, return_document=ReturnDocument.AFTER)

    def get_site(self, site_id: str) -> dict | None:
        return self.db.sites.find_one({"_id": site_id})

    def list_sites(self) -> list[dict]:
        return list(self.db.sites.find({}, {"_outbox": 0}).sort("name", ASCENDING))

    # -- kiosks ---------------------------------------------------------------------------------
    def insert_kiosk(self, kiosk: dict) -> dict:
        kid = kiosk.pop("id")
        doc = {"_id": kid, **kiosk, "revoked_ts": None, "offline_ts": None, "created_at": utcnow()}
        try:
            self.db.kiosks.insert_one(doc)
        except DuplicateKeyError:
            return None
        return doc

    def get_kiosk(self, kiosk_id: str) -> dict | None:
        return self.db.kiosks.find_one({"_id": kiosk_id}, {"_outbox": 0})

    @staticmethod
    def kiosk_times(doc: dict | None) -> dict | None:
        """The kiosk with its epoch fields as datetimes (last_seen_at, last_pressed_at, offline_since)."""
        if doc is not None:
            doc["last_seen_at"] = domain.from_ts(doc.get("last_seen_ts"))
            doc["last_pressed_at"] = domain.from_ts(doc.get("last_pressed_ts"))
            doc["offline_since"] = domain.from_ts(doc.get("offline_ts"))
        return doc

    def update_kiosk(self, kiosk_id: str, sets: dict, unsets: list[str] = ()) -> dict | None:
        update = {"$set": {**sets, "updated_ts": utcnow().timestamp()}}
        if unsets:
            update["$unset"] = {k: "" for k in unsets}
        return self.db.kiosks.find_one_and_update({"_id": kiosk_id}, update, projection={"_outbox": 0},
                                                  return_document=ReturnDocument.AFTER)

    def list_kiosks(self, site_id: str | None) -> list[dict]:
        query = {"site_id": site_id} if site_id else {}
        return list(self.db.kiosks.find(query, {"_outbox": 0}).sort("name", ASCENDING))

    def kiosk_seen(self, kiosk_id: str, sets: dict, back_online_event: dict | None) -> None:
        """Record a sign of life; when the kiosk was offline, flip it back with its event in the same write."""
        self.db.kiosks.update_one({"_id": kiosk_id}, {"$set": {"last_seen_ts": utcnow().timestamp(), **sets}})
        if back_online_event is not None:
            self.db.kiosks.update_one({"_id": kiosk_id, "offline_ts": {"$ne": None}},
                                      self.with_events({"$set": {"offline_ts": None}}, [back_online_event]))

    def silent_kiosks(self, before: datetime) -> list[dict]:
        return list(self.db.kiosks.find({"last_seen_ts": {"$lt": before.timestamp()}, "offline_ts": None, "revoked_ts": None},
                                        {"_outbox": 0}))

    def mark_offline(self, kiosk_id: str, event: dict) -> bool:
        res = self.db.kiosks.update_one({"_id": kiosk_id, "offline_ts": None},
                                        self.with_events({"$set": {"offline_ts": utcnow().timestamp()}}, [event]))
        return res.modified_count == 1

    # -- votes ----------------------------------------------------------------------------------
    def open_batch(self, vote_ids: list[str], close: list[tuple[str, list[str]]] = ()) -> str:
        """The batch document of a group of submits: each vote document names its own kiosk and site.

        The ids are kept as one space-separated string (vote ids are UUIDs): the same information as a list,
        but nx-27017 copies and encodes a list of a thousand strings item by item, ~10x slower than one string.
        `close` (batch, counter ids) are batches whose counters are all applied: closed in the same round trip
        (see finish_batch), after the new one is written.
        """
        batch = uuid.uuid4().hex
        now = utcnow()
        doc = {"_id": batch, "vote_ids_text": " ".join(vote_ids), "created_ts": now.timestamp()}
        if close:
            self.db.batches.bulk_write([InsertOne(doc), *(DeleteOne({"_id": b}) for b, _ in close)], ordered=True)
            for b, counter_ids in close:
                self._closed(b, counter_ids)
        else:
            self.db.batches.insert_one(doc)
        return batch

    def insert_votes_indexed(self, docs: list[dict]) -> set[int]:
        """Insert; returns the positions (in `docs`) of the votes that were already stored. By position, not
        by id: when two submits in one group carry the same vote, the first is stored, the second is not."""
        if not docs:
            return set()
        try:
            self.db.votes.insert_many(docs, ordered=False)
            return set()
        except BulkWriteError as exc:
            errors = exc.details.get("writeErrors", [])
            if any(e.get("code") != DUPLICATE for e in errors):
                raise
            return {e["index"] for e in errors}

    def note_kiosks(self, last_pressed: dict[str, float]) -> None:
        """One write for a group of submits: each kiosk's latest press (epoch seconds) and its last sign of life."""
        if not last_pressed:
            return
        now = utcnow().timestamp()
        self.db.kiosks.bulk_write([UpdateOne({"_id": kid}, {"$max": {"last_pressed_ts": last},
                                                            "$set": {"last_seen_ts": now}})
                                   for kid, last in last_pressed.items()], ordered=False)

    def apply_counters(self, batch: str, increments: dict[str, dict]) -> None:
        """Idempotent per (counter, batch): the marker `b.<batch>` makes a second application a no-op.
        Each entry has its `meta` and either a `tally` or a ready `inc` (a recount's deltas)."""
        if increments:
            now = utcnow().timestamp()
            ops, stales = [], []
            for cid, entry in increments.items():
                with self._prune_lock:
                    stale = self._prune.pop(cid, set())
                inc = entry["inc"] if "inc" in entry else domain.entry_inc(entry)
                update = {"$set": {**entry["meta"], "updated_ts": now, f"b.{batch}": 1}, "$inc": inc}
                if stale:
                    update["$unset"] = {f"b.{old}": "" for old in stale}
                ops.append(UpdateOne({"_id": cid, f"b.{batch}": {"$exists": False}}, update, upsert=True))
                stales.append((cid, stale))
            try:
                self.db.counters.bulk_write(ops, ordered=False)
            except BulkWriteError as exc:  # a duplicate key here means "already applied"
                errors = exc.details.get("writeErrors", [])
                with self._prune_lock:  # those updates did not run: their pruning is still to do
                    for e in errors:
                        cid, stale = stales[e["index"]]
                        self._prune.setdefault(cid, set()).update(stale)
                if any(e.get("code") != DUPLICATE for e in errors):
                    raise

    def finish_batch(self, batch: str, counter_ids) -> None:
        """Close a batch whose counters are all applied; its markers are pruned afterwards, never before."""
        self.db.batches.delete_one({"_id": batch})
        self._closed(batch, counter_ids)

    def finish_batches(self, closes: list[tuple[str, list[str]]]) -> None:
        if closes:
            self.db.batches.delete_many({"_id": {"$in": [b for b, _ in closes]}})
            for b, counter_ids in closes:
                self._closed(b, counter_ids)

    def _closed(self, batch: str, counter_ids) -> None:
        with self._prune_lock:
            for cid in counter_ids:
                self._prune.setdefault(cid, set()).add(batch)

    def flush_prunes(self) -> int:
        """Remove the markers of finished batches from counters no batch touched since (e.g. past minutes)."""
        with self._prune_lock:
            pending, self._prune = self._prune, {}
        ops = [UpdateOne({"_id": cid}, {"$unset": {f"b.{b}": "" for b in batches}})
               for cid, batches in pending.items() if batches]
        if ops:
            self.db.counters.bulk_write(ops, ordered=False)
        return len(ops)

    def stale_batches(self, older_than: datetime) -> list[dict]:
        """Batches opened before `older_than`, by `created_ts` (epoch seconds): nx-27017 compares datetimes to
        the second only, so a batch opened in the second a restarted service started was never found."""
        return list(self.db.batches.find({"created_ts": {"$lt": older_than.timestamp()}}).limit(200))

    def votes_of_batch(self, batch: dict) -> list[dict]:
        """The votes this batch stored (not those another batch stored first), by primary key, each with the
        flag it was stored with (a recount may have changed `repeated` since: see apply_recount)."""
        ids = (batch.get("vote_ids_text") or "").split()
        docs = list(self.db.votes.find({"_id": {"$in": ids}, "batch": batch["_id"]},
                                       {"pressed_ts": 1, "rating": 1, "repeated": 1, "ingest_repeated": 1,
                                        "received_ts": 1, "kiosk_id": 1, "site_id": 1, "scale": 1}))
        for d in docs:
            if "ingest_repeated" in d:
                d["repeated"] = d.pop("ingest_repeated")
        return docs

    # -- recounts -------------------------------------------------------------------------------
    def claim_recount(self, kiosk_id: str) -> str | None:
        """Take the kiosk's recount slot (one at a time per kiosk): a token, or None when one is pending."""
        token = uuid.uuid4().hex
        now = utcnow().timestamp()
        try:
            self.db.recounts.insert_one({"_id": kiosk_id, "token": token, "state": "claimed", "created_ts": now})
        except DuplicateKeyError:
            return None
        return token

    def get_recount(self, kiosk_id: str) -> dict | None:
        return self.db.recounts.find_one({"_id": kiosk_id})

    def plan_recount(self, kiosk_id: str, token: str, flag: list[str], unflag: list[str], deltas: dict[str, dict],
                     created_ts: float) -> bool:
        """Write the plan over our claim (not over a claim the recovery dropped and another recount took)."""
        doc = {"token": token, "state": "apply", "created_ts": created_ts, "flag_ids_text": " ".join(flag),
               "unflag_ids_text": " ".join(unflag),
               "deltas": [{"cid": cid, "meta": e["meta"], "inc": e["inc"]} for cid, e in deltas.items()]}
        return self.db.recounts.replace_one({"_id": kiosk_id, "token": token, "state": "claimed"}, doc).modified_count == 1

    def apply_recount(self, job: dict) -> list[str]:
        """Counters (guarded by the job's marker), then flags, then the job is closed; any step may run again."""
        deltas = {d["cid"]: {"meta": d["meta"], "inc": d["inc"]} for d in job.get("deltas") or []}
        self.apply_counters(job["token"], deltas)
        flag = (job.get("flag_ids_text") or "").split()
        unflag = (job.get("unflag_ids_text") or "").split()
        # The flag the ingest gave is kept first (`ingest_repeated`, once): a batch still open counts its votes
        # by the flag they were stored with (its round's counters do, so must its recovery), never by a
        # recount's, whose own deltas already moved them.
        for ids, before in ((flag, False), (unflag, True)):
            if ids:
                self.db.votes.update_many({"_id": {"$in": ids}, "ingest_repeated": {"$exists": False}},
                                          {"$set": {"ingest_repeated": before}})
        if flag:
            self.db.votes.update_many({"_id": {"$in": flag}}, {"$set": {"repeated": True}})
        if unflag:
            self.db.votes.update_many({"_id": {"$in": unflag}}, {"$unset": {"repeated": ""}})
        self.db.recounts.delete_one({"_id": job["_id"], "token": job["token"]})
        self._closed(job["token"], deltas.keys())
        return list(deltas)

    def drop_recount_claim(self, kiosk_id: str, token: str) -> None:
        self.db.recounts.delete_one({"_id": kiosk_id, "token": token, "state": "claimed"})

    def stale_recounts(self, older_than: datetime) -> list[dict]:
        return list(self.db.recounts.find({"created_ts": {"$lt": older_than.timestamp()}}).limit(50))

    def kiosk_votes(self, kiosk_id: str, start: float, end: float) -> list[dict]:
        """The kiosk's votes pressed in [start, end) (epoch seconds). No index on votes (see `indexes`): a
        scan, acceptable for an agent's occasional recount, not for the hot path."""
        return list(self.db.votes.find({"kiosk_id": kiosk_id, "pressed_ts": {"$gte": start, "$lt": end}},
                                       {"pressed_ts": 1, "rating": 1, "repeated": 1, "kiosk_id": 1, "site_id": 1,
                                        "scale": 1}))

    # -- results --------------------------------------------------------------------------------
    def counters(self, scope: str, ref: str, gran: str, start: datetime, end: datetime) -> list[dict]:
        """Counter documents of [start, end), each with `start` as a datetime."""
        docs = list(self.db.counters.find({"scope": scope, "ref": ref, "gran": gran,
                                           "t": {"$gte": int(domain.ts(start)), "$lt": domain.ts(end)}},
                                          {"b": 0}).sort("t", ASCENDING))
        for doc in docs:
            doc["start"] = domain.from_ts(doc["t"])
            doc["updated_at"] = domain.from_ts(doc.get("updated_ts"))
        return docs

    def window_tallies(self, site_id: str, kiosk_ids, minutes: int, now: datetime) -> tuple[domain.Tally, dict]:
        """The alert window of a site and of some of its kiosks, from the same read of the site's minute
        counters (each holds its kiosks' parts): (site tally, kiosk id -> tally)."""
        start = domain.minute_start(now - timedelta(minutes=minutes - 1))
        site = domain.Tally.empty()
        kiosks = {k: domain.Tally.empty() for k in kiosk_ids}
        for doc in self.counters("site", site_id, "minute", start, now + timedelta(minutes=1)):
            site.add_doc(doc)
            if kiosks:
                for kiosk_id, part in domain.kiosk_parts(doc).items():
                    if kiosk_id in kiosks:
                        kiosks[kiosk_id].add_doc(part)
        return site, kiosks

    # -- alerts ---------------------------------------------------------------------------------
    def raise_alert(self, alert: dict, event: dict) -> bool:
        """Once per episode: only a site (a kiosk, when the alert names one) without an open alert takes one,
        with its event in the same write; the alert's state is kept on the site (the kiosk)."""
        collection, owner_id = ("kiosks", alert["kiosk_id"]) if alert.get("kiosk_id") else ("sites", alert["site_id"])
        res = self.db[collection].update_one({"_id": owner_id, "open_alert_id": None},
                                             self.with_events({"$set": {"open_alert_id": alert["_id"]}}, [event]))
        if res.modified_count != 1:
            return False
        self.db.alerts.insert_one(alert)
        return True

    def resolve_alert(self, site_id: str, kiosk_id: str | None, alert_id: str, resolved_at: datetime, counts: dict,
                      event: dict) -> bool:
        """Once per episode, like raise_alert: the site's alert, or the kiosk's when `kiosk_id` is given."""
        collection, owner_id = ("kiosks", kiosk_id) if kiosk_id else ("sites", site_id)
        res = self.db[collection].update_one({"_id": owner_id, "open_alert_id": alert_id},
                                             self.with_events({"$set": {"open_alert_id": None}}, [event]))
        if res.modified_count != 1:
            return False
        self.db.alerts.update_one({"_id": alert_id}, {"$set": {"resolved_ts": resolved_at.timestamp(),
                                                              "resolved_counts": counts}})
        return True

    def kiosks_with_open_alerts(self) -> list[dict]:
        return list(self.db.kiosks.find({"open_alert_id": {"$ne": None}}, {"_outbox": 0}))

    def get_alert(self, alert_id: str) -> dict | None:
        return self.db.alerts.find_one({"_id": alert_id})

    def sites_with_open_alerts(self) -> list[dict]:
        return list(self.db.sites.find({"open_alert_id": {"$ne": None}}, {"_outbox": 0}))

    def list_alerts(self, site_id: str | None, open_only: bool) -> list[dict]:
        query: dict = {}
        if site_id:
            query["site_id"] = site_id
        if open_only:
            query["resolved_ts"] = None
        return list(self.db.alerts.find(query).sort("raised_at", DESCENDING).limit(200))
