"""MongoDB access of the agenda service (database parvis_agenda)."""
from __future__ import annotations

import re
import threading
import time
from datetime import datetime, timedelta, timezone

from pymongo import ASCENDING, DESCENDING, IndexModel, UpdateOne

from contracts.agenda import EventFilter
from contracts.agenda_public import Reference, text_terms, to_utc
from contracts.errors import Conflict
from services.agenda.domain import aware
from services.common.mongo import OUTBOX, OUTBOX_COUNT, Repository, utcnow

REFERENCE_TTL = 30.0
# Fields of an event document the read paths never need (big or internal).
LIST_PROJECTION = {"search": 0, "_outbox": 0, "_outbox_n": 0}


class AgendaStore(Repository):
    indexes = {
        "organizations": [IndexModel([("slug", ASCENDING)], unique=True), IndexModel([("kind", ASCENDING)])],
        "events": [
            IndexModel([("moderation_state", ASCENDING), ("starts_at", ASCENDING)]),
            IndexModel([("commune", ASCENDING)]),
            IndexModel([("organizer", ASCENDING)]),
            IndexModel([("queue", ASCENDING)]),
            IndexModel([("updated_at", ASCENDING)]),
            IndexModel([("announce_pending", ASCENDING)]),
        ],
    }
    outbox_collections = ("organizations", "events")

    def __init__(self, db):
        super().__init__(db)
        # The read model of the public agenda: every once-public event of this process, by id. nx-27017
        # (and a busy MongoDB) cost far more per scanning query than filtering 10,000 documents in memory.
        self.snapshot: dict[str, dict] | None = None
        self._by_commune: dict[str, list[dict]] | None = None
        self._snapshot_generation = -1
        self._snapshot_high_water: datetime | None = None
        self._snapshot_lock = threading.Lock()
        self._reference: tuple[float, Reference | None] = (0.0, None)

    # -- reference data -------------------------------------------------------------------------
    def upsert_reference(self, collection: str, items: list[dict]) -> int:
        if not items:
            return 0
        self.db[collection].bulk_write(
            [UpdateOne({"_id": it["slug"]}, {"$set": it}, upsert=True) for it in items], ordered=False
        )
        self._reference = (0.0, None)  # other instances see it within REFERENCE_TTL
        return len(items)

    def list_reference(self, collection: str) -> list[dict]:
        return [self.public(d) for d in self.db[collection].find({}, {"_id": 0}).sort("name", ASCENDING)]

    def reference(self) -> Reference:
        """Communes, categories and themes (slug -> name), read again at most every REFERENCE_TTL seconds: every
        search and every event written checks against them, and they change once in a while (an import)."""
        cached_at, ref = self._reference
        if ref is None or time.monotonic() - cached_at > REFERENCE_TTL:
            def names(coll):
                return {d["_id"]: d["name"] for d in self.db[coll].find({}, {"name": 1})}

            ref = Reference(communes=names("communes"), categories=names("categories"), themes=names("themes"))
            self._reference = (time.monotonic(), ref)
        return ref

    def get_organization(self, org_id: str) -> dict | None:
        return self.public(self.db.organizations.find_one({"_id": org_id}))

    def save_organization(self, org: dict, event: dict) -> None:
        """Create or update an organisation, with the event announcing it, in one document write."""
        update = self.with_events({"$set": {**org, "updated_at": utcnow()}}, [event])
        self.db.organizations.update_one({"_id": org["id"]}, update, upsert=True)

    def list_organizations(self, kind: str | None) -> list[dict]:
        query = {"kind": kind} if kind else {}
        docs = self.db.organizations.find(query).sort("name", ASCENDING)
        return [{k: d.get(k) for k in ("id", "slug", "name", "kind", "commune", "contact_email")} for d in docs]

    # -- events ---------------------------------------------------------------------------------
    def insert_event(self, doc: dict, events: list[dict]) -> None:
        self.db.events.insert_one(self.doc_with_events(doc, events))
        self._changed(doc)

    def get_event(self, event_id: str) -> dict | None:
        return self.public(self.db.events.find_one({"_id": event_id}, {"search": 0}))

    def update_event(self, event_id: str, version: int, sets: dict, events: list[dict], unset: tuple[str, ...] = ()
                     ) -> None:
        """Optimistic write: applies only if nobody changed the event since it was read (same version); the whole
        document is replaced (Repository.replace_versioned says why)."""
        doc = self.replace_versioned("events", event_id, version, {**sets, "updated_at": sets.get("updated_at")
                                                                   or utcnow()}, events, unset)
        if doc is None:
            raise Conflict("L'événement a changé entre-temps : rechargez-le et recommencez.", "id")
        self._changed(doc)

    # -- the public read model ------------------------------------------------------------------
    def _changed(self, doc: dict) -> None:
        """Keeps this process's snapshot exact, and tells the other instances (generation counter)."""
        if "visible_from" not in doc:
            return  # never public: not in anyone's snapshot
        self.db.meta.update_one({"_id": "public_events"}, {"$inc": {"generation": 1}}, upsert=True)
        if self.snapshot is not None:
            self.snapshot[doc["_id"]] = {k: v for k, v in doc.items() if k not in (OUTBOX, OUTBOX_COUNT)}
            self._by_commune = None

    def snapshot_docs(self, communes: list[str]) -> list[dict]:
        """Documents of the read model (of these communes only, when given), loaded at the first call."""
        snapshot = self.snapshot
        if snapshot is None:
            self.refresh_snapshot()
            snapshot = self.snapshot
        if not communes:
            return list(snapshot.values())
        groups = self._by_commune
        if groups is None:
            groups = {}
            for doc in snapshot.values():
                groups.setdefault(doc.get("commune"), []).append(doc)
            self._by_commune = groups
        return [d for c in dict.fromkeys(communes) for d in groups.get(c, ())]

    def refresh_snapshot(self) -> int:
        """Loads the snapshot, or the events changed since the last load when an instance wrote; returns how many
        documents were read (0: nothing changed)."""
        with self._snapshot_lock:
            meta = self.db.meta.find_one({"_id": "public_events"}) or {}
            generation = meta.get("generation", 0)
            if self.snapshot is not None and generation == self._snapshot_generation:
                return 0
            started = datetime.now(timezone.utc)
            query: dict = {"visible_from": {"$exists": True}}
            if self.snapshot is not None and self._snapshot_high_water is not None:
                query["updated_at"] = {"$gt": self._snapshot_high_water - timedelta(seconds=10)}  # clock skew
            docs = self.db.events.find(query, {OUTBOX: 0, OUTBOX_COUNT: 0})
            snapshot = dict(self.snapshot or {})
            read = 0
            for doc in docs:
                snapshot[doc["_id"]] = doc
                read += 1
            self.snapshot = snapshot
            self._by_commune = None
            self._snapshot_generation = generation
            self._snapshot_high_water = started
            return read

    # -- agents' and organisers' lists (offset pages from the database) ------------------------
    def _page(self, query: dict, sort: list[tuple[str, int]], skip: int, limit: int) -> tuple[list[dict], int]:
        docs = list(self.db.events.find(query, LIST_PROJECTION).sort(sort).skip(skip).limit(limit))
        return docs, self.db.events.count_documents(query)

    def events_in_states(self, f: EventFilter, skip: int, limit: int) -> tuple[list[dict], int]:
        """An agent's search among the events in `f.moderation_states` (any publication time), the filter's
        other criteria applied as the public's are (contracts/agenda_public.py), by start then id."""
        clauses: list[dict] = [{"moderation_state": {"$in": list(f.moderation_states)}}]
        if f.communes:
            clauses.append({"commune": {"$in": list(f.communes)}})
        if f.categories:
            clauses.append({"category": {"$in": list(f.categories)}})
        if f.themes:
            clauses.append({"theme": {"$in": list(f.themes)}})
        if f.organizer:
            clauses.append({"organizer": f.organizer})
        if f.accessibility:
            clauses.append({"accessibility": {"$all": list(f.accessibility)}})
        if f.free is not None:
            clauses.append({"price_kind": "free" if f.free else "paid"})
        if f.starts_after or f.starts_before:
            occ: dict = {}
            if f.starts_after:
                occ["ends_at"] = {"$gt": to_utc(f.starts_after)}
            if f.starts_before:
                occ["starts_at"] = {"$lt": to_utc(f.starts_before)}
            clauses.append({"occurrences": {"$elemMatch": occ}})
        if f.updated_since:
            clauses.append({"updated_at": {"$gt": to_utc(f.updated_since)}})
        for term in text_terms(f.text):
            clauses.append({"search": {"$regex": re.escape(term)}})
        sort = SORT_BY_UPDATE if f.updated_since else SORT_BY_START
        return self._page(clauses[0] if len(clauses) == 1 else {"$and": clauses}, sort, skip, limit)

    def organization_events(self, org: str, states: list[str], skip: int, limit: int) -> tuple[list[dict], int]:
        """An organisation's events (in these moderation states, when given), the latest changed first."""
        query: dict = {"organizer": org}
        if states:
            query["moderation_state"] = {"$in": list(states)}
        return self._page(query, SORT_RECENT, skip, limit)

    def moderation_queue(self, skip: int, limit: int) -> tuple[list[dict], int]:
        """Submitted events and pending revisions, the oldest submission first."""
        return self._page({"queue": {"$in": ["event", "revision"]}}, SORT_OLDEST_SUBMISSION, skip, limit)

    def due_announcements(self, now: datetime, limit: int = 100) -> list[dict]:
        """Published events whose scheduled publication has come and is not announced yet. nx-27017 compares
        datetimes to the second: an event due at 10:00:00.8 matched at 10:00:00.3 and was announced before it
        was public; the instant is checked again here."""
        docs = self.db.events.find({"announce_pending": True, "moderation_state": "published",
                                    "visible_from": {"$lte": now}}, {OUTBOX: 0, OUTBOX_COUNT: 0}).limit(limit)
        return [d for d in docs if aware(d["visible_from"]) <= now]

    def overlapping(self, commune: str, starts_at: datetime, ends_at: datetime, limit: int = 200) -> list[dict]:
        """Submitted or published events of a commune whose span overlaps [starts_at, ends_at)."""
        return list(self.db.events.find(
            {"commune": commune, "moderation_state": {"$in": ["submitted", "published"]},
             "starts_at": {"$lt": ends_at}, "ends_at": {"$gt": starts_at}},
            {"title": 1, "commune": 1, "starts_at": 1, "ends_at": 1}).limit(limit))

    def queue_counts(self) -> dict:
        submitted = self.db.events.count_documents({"queue": "event"})
        revisions = self.db.events.count_documents({"queue": "revision"})
        return {"submitted": submitted, "revisions": revisions, "total": submitted + revisions}


SORT_BY_START = [("starts_at", ASCENDING), ("_id", ASCENDING)]
SORT_BY_UPDATE = [("updated_at", ASCENDING), ("_id", ASCENDING)]
SORT_OLDEST_SUBMISSION = [("queued_at", ASCENDING), ("_id", ASCENDING)]
SORT_RECENT = [("updated_at", DESCENDING), ("_id", ASCENDING)]
