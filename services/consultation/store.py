"""MongoDB access of the consultation service (database parvis_consultation).

Collections, and what each may say:
- `consultations`: one document per consultation (its form, its budget's settings, its state); written whole
  (replace_one under a version, the outbox carried over, as the agenda's events), so that its datetimes stay
  datetimes on nx-27017 (which reads back a top-level datetime written by `$set` as a string). `due_ts` (epoch
  seconds) exists only while the clock owes it something: the timer reads a small sparse index.
- `counters`: one document per consultation, the results and the participation as flat counters (`p:web`, `n:<q>`,
  `o:<q>:<option>`, `v:<project>` online votes, `pv:<project>` paper votes, `s:<project>` supports…; see
  results.py), only ever changed with `$inc`. Results and participation counts read one document, never scan.
  Each `$inc` is guarded by a marker `r.<token>` (set in the same update): applying it again is a no-op, so that a
  write interrupted between its own document and the counters is finished later without counting twice. Markers
  are pruned once the write they guard is finished (never before).
- `participations`: that a voter took part (`_id` = consultation:voter, a unique key: 20 ballots of one citizen sent
  at once from two devices meet it, whatever the process), how (web, booth, letter) and when; never what.
- `responses`: the citizens' answers to a survey that is not secret (drafts and submitted, the last one counting),
  and drafts of secret ones (deleted once the ballot is cast).
- `ballots`: secret ballots (budget ballots, responses to secret consultations), in slots: see casting.py. A ballot
  holds its consultation, its receipt code and its content; no voter, no hash of one, no time, and it is stored
  neither in arrival order nor under an id that follows it (random slot ids, filled in a random order).
- round documents, in `counters` too (beside the counters, with `round` and `created_ts`, which counters never have):
  while a round of secret ballots is written and until the next round closes it (milliseconds; until the recovery
  after a crash), what it writes, so that a crash is finished or undone (casting.py). In the counters' collection so
  that one command applies a finished round's counts and closes its document (until 2026-12-03 they had a
  collection of their own, `rounds`, whose leftovers the recovery moves over: `adopt_legacy_rounds`).
- `projects`, `supports` (one per citizen and project, unique key), `panels` (members as citizen ids: keyed hashes
  of their addresses, see services/common/identity.py), `paper_entries` (double entry of ballot sheets and booth
  totals).

nx-27017 quirks met here: `count_documents` scans (so counts are counters); `{field: None}` matches nothing (fields
queried on are absent rather than null: `due_ts`, `claiming`, `count_token`, `free`, `mismatch`); a compound index may
not include `_id`; datetimes written by `$set` at the top level read back as strings (hence whole-document writes,
and epoch seconds where an update writes a time); `$setOnInsert` beside `$inc` in an upsert is ignored (the counters
document is inserted with its consultation, never upserted); an `$in` on another field than `_id` reads the whole
collection (round documents, beside every consultation's counters, are deleted by `_id` and looked up by `round` one
at a time).
"""
from __future__ import annotations

import threading
import time
import uuid
from typing import Iterable

from pymongo import ASCENDING, DESCENDING, DeleteOne, IndexModel, ReplaceOne, ReturnDocument, UpdateOne
from pymongo.errors import BulkWriteError, DuplicateKeyError

from contracts.errors import Conflict, ServiceUnavailable
from services.common.mongo import OUTBOX, OUTBOX_COUNT, Repository, utcnow

DUPLICATE = 11000
RECENT_SECONDS = 2.0
PENDING_FIELDS = ("count_token", "count_cid", "count_inc", "count_ts")


class ConsultationStore(Repository):
    indexes = {
        "consultations": [IndexModel([("due_ts", ASCENDING)], sparse=True),
                          IndexModel([("state", ASCENDING)]),
                          IndexModel([("created_ts", DESCENDING)])],
        "counters": [IndexModel([("created_ts", ASCENDING)], sparse=True),  # round documents (casting.py)
                     IndexModel([("round", ASCENDING)], sparse=True)],
        "participations": [IndexModel([("voter", ASCENDING), ("at_ts", DESCENDING)]),
                           IndexModel([("count_token", ASCENDING)], sparse=True)],
        "responses": [IndexModel([("count_token", ASCENDING)], sparse=True)],
        "ballots": [IndexModel([("receipt", ASCENDING)], unique=True, sparse=True),
                    IndexModel([("consultation_id", ASCENDING), ("receipt", ASCENDING)], sparse=True),
                    IndexModel([("free", ASCENDING)], sparse=True)],
        "projects": [IndexModel([("budget_id", ASCENDING), ("heading_id", ASCENDING)])],
        "supports": [IndexModel([("budget_id", ASCENDING), ("citizen", ASCENDING)]),
                     IndexModel([("count_token", ASCENDING)], sparse=True)],
        "panels": [IndexModel([("consultation_id", ASCENDING)])],
        "paper_entries": [IndexModel([("consultation_id", ASCENDING), ("status", ASCENDING)]),
                          IndexModel([("mismatch", ASCENDING)], sparse=True),
                          IndexModel([("count_token", ASCENDING)], sparse=True)],
    }
    outbox_collections = ("consultations", "projects")

    def __init__(self, db):
        super().__init__(db)
        self._prune: dict[str, set[str]] = {}  # consultation -> counter markers whose write is finished
        self._prune_lock = threading.Lock()
        self._recent: dict[tuple[str, str], tuple[float, object]] = {}

    # -- what a ballot or a count read needs, read at most every RECENT_SECONDS ----------------------------
    def recent(self, kind: str, key: str, load):
        """A copy at most RECENT_SECONDS old, dropped at once when this process writes the consultation (another
        process's write shows within RECENT_SECONDS). For the hot paths only: a ballot (whose round reads its
        consultation again before writing) and the participation count."""
        entry = self._recent.get((kind, key))
        if entry is not None and entry[0] > time.monotonic():
            return entry[1]
        value = load()
        self._recent[(kind, key)] = (time.monotonic() + RECENT_SECONDS, value)
        return value

    def recent_consultation(self, consultation_id: str) -> dict | None:
        return self.recent("consultation", consultation_id, lambda: self.get_consultation(consultation_id))

    def _forget(self, key: str) -> None:
        for k in [k for k in self._recent if k[1] == key]:
            self._recent.pop(k, None)

    # -- consultations ----------------------------------------------------------------------------
    def insert_consultation(self, doc: dict, events: list[dict]) -> None:
        """The consultation and its counters document (inserted now, so that no `$inc` ever upserts it)."""
        self.db.counters.insert_one({"_id": doc["_id"]})
        self.db.consultations.insert_one(self.doc_with_events(doc, events))

    def get_consultation(self, consultation_id: str) -> dict | None:
        return self.public(self.db.consultations.find_one({"_id": consultation_id}))

    def replace_consultation(self, doc: dict, events: list[dict]) -> dict:
        """Optimistic write of the whole document: applies only if nobody changed it since it was read (same
        `version`); the envelopes still in its outbox are carried over. Conflict otherwise."""
        return self._replace("consultations", doc, events,
                             "La consultation a changé entre-temps : rechargez-la et recommencez.")

    def _replace(self, collection: str, doc: dict, events: list[dict], message: str) -> dict:
        self._forget(doc.get("budget_id") or doc["_id"])
        version = doc["version"]
        current = self.db[collection].find_one({"_id": doc["_id"], "version": version}, {OUTBOX: 1})
        if current is None:
            raise Conflict(message, "version")
        new = {k: v for k, v in doc.items() if k not in (OUTBOX, OUTBOX_COUNT) and v is not None}
        new["version"] = version + 1
        outbox = dict(current.get(OUTBOX) or {})
        outbox.update({env["event_id"]: env for env in events})
        if outbox:
            new[OUTBOX], new[OUTBOX_COUNT] = outbox, len(outbox)
        if self.db[collection].replace_one({"_id": doc["_id"], "version": version}, new).matched_count == 0:
            raise Conflict(message, "version")
        self._forget(doc.get("budget_id") or doc["_id"])
        return self.public(new)

    def list_consultations(self, query: dict, limit: int) -> list[dict]:
        """Newest first (created_ts, then id), keyset-paged by the caller's query."""
        return list(self.db.consultations.find(query, {OUTBOX: 0, OUTBOX_COUNT: 0})
                    .sort([("created_ts", DESCENDING), ("_id", DESCENDING)]).limit(limit))

    def count_consultations(self, query: dict) -> int:
        # A few hundred consultations in a lifetime: counting them is cheap even where it scans (nx-27017).
        return self.db.consultations.count_documents(query)

    def consultations_by_id(self, ids: Iterable[str]) -> dict[str, dict]:
        return {d["_id"]: d for d in self.db.consultations.find({"_id": {"$in": list(ids)}},
                                                               {OUTBOX: 0, OUTBOX_COUNT: 0})}

    def due_consultations(self, now_ts: float, limit: int = 200) -> list[dict]:
        return [self.public(d) for d in self.db.consultations.find({"due_ts": {"$lte": now_ts}}).limit(limit)]

    def open_kinds(self) -> list[str]:
        return [d["kind"] for d in self.db.consultations.find({"state": "OPEN"}, {"kind": 1})]

    # -- counters ---------------------------------------------------------------------------------
    def counters(self, consultation_id: str) -> dict:
        doc = self.db.counters.find_one({"_id": consultation_id}) or {}
        return {k: v for k, v in doc.items() if k not in ("_id", "r")}

    def counters_of(self, ids: Iterable[str]) -> dict[str, dict]:
        return {d["_id"]: {k: v for k, v in d.items() if k not in ("_id", "r")}
                for d in self.db.counters.find({"_id": {"$in": list(ids)}})}

    def apply_counts(self, consultation_id: str, token: str, inc: dict[str, int]) -> bool:
        """`$inc` once per token (the marker `r.<token>` is set in the same update); False when it was applied
        already. Markers of finished writes are pruned in the same update, after the fact."""
        query, update, stale = self._count_update(consultation_id, token, inc)
        done = self.db.counters.update_one(query, update)
        if not done.modified_count and stale:
            self._finished(consultation_id, stale)  # that update did not run: its pruning is still to do
        return bool(done.modified_count)

    def _count_update(self, consultation_id: str, token: str, inc: dict[str, int]) -> tuple[dict, dict, set[str]]:
        """The guarded `$inc` of `apply_counts` (query, update), and the finished markers it prunes."""
        update: dict = {"$set": {f"r.{token}": 1}}
        if inc:
            update["$inc"] = dict(inc)
        with self._prune_lock:
            stale = self._prune.pop(consultation_id, set())
        stale.discard(token)
        if stale:
            update["$unset"] = {f"r.{t}": "" for t in stale}
        return {"_id": consultation_id, f"r.{token}": {"$exists": False}}, update, stale

    def _count_ops(self, closing: Iterable[tuple[str, dict]]) -> tuple[list[UpdateOne], dict[str, set[str]]]:
        """The guarded `$inc`s of finished rounds ((round, counts per consultation)), and the markers they prune (to
        queue again, `_unpruned`, when they did not all run)."""
        ops, pruned = [], {}
        for token, counts in closing:
            for cid, inc in (counts or {}).items():
                query, update, stale = self._count_update(cid, token, inc)
                ops.append(UpdateOne(query, update))
                pruned.setdefault(cid, set()).update(stale)
        return ops, pruned

    def _unpruned(self, pruned: dict[str, set[str]]) -> None:
        for cid, tokens in pruned.items():
            if tokens:
                self._finished(cid, tokens)

    def _finished(self, consultation_id: str, tokens: Iterable[str]) -> None:
        with self._prune_lock:
            self._prune.setdefault(consultation_id, set()).update(tokens)

    def flush_prunes(self) -> int:
        """Remove the markers of finished writes from counters no write touched since."""
        with self._prune_lock:
            pending, self._prune = self._prune, {}
        ops = [UpdateOne({"_id": cid}, {"$unset": {f"r.{t}": "" for t in tokens}})
               for cid, tokens in pending.items() if tokens]
        if ops:
            self.db.counters.bulk_write(ops, ordered=False)
        return len(ops)

    # -- writes whose counts follow them (participations, responses, supports, paper entries) ------------
    @staticmethod
    def pending_count(consultation_id: str, inc: dict[str, int]) -> dict:
        """Fields a document carries while the counts it adds are not applied yet: written with the document,
        applied by `finish_count`, or by the recovery (`pending_counts`) after a crash in between."""
        return {"count_token": uuid.uuid4().hex, "count_cid": consultation_id, "count_inc": dict(inc),
                "count_ts": time.time()}

    def finish_count(self, collection: str, doc: dict) -> None:
        """Apply a document's pending counts (once, by their marker), then clear them; the marker goes later."""
        token = doc.get("count_token")
        if not token:
            return
        self.apply_counts(doc["count_cid"], token, doc.get("count_inc") or {})
        self.db[collection].update_one({"_id": doc["_id"], "count_token": token},
                                       {"$unset": {f: "" for f in PENDING_FIELDS}})
        self._finished(doc["count_cid"], [token])

    def pending_counts(self, collection: str, older_than_ts: float, limit: int = 200) -> list[dict]:
        return list(self.db[collection].find({"count_token": {"$exists": True}, "count_ts": {"$lt": older_than_ts}},
                                             {"count_token": 1, "count_cid": 1, "count_inc": 1}).limit(limit))

    # -- participations ---------------------------------------------------------------------------------
    def insert_participation(self, doc: dict) -> dict | None:
        """Insert; None when it is new, else the participation already recorded under this key."""
        try:
            self.db.participations.insert_one(doc)
            return None
        except DuplicateKeyError:
            return self.db.participations.find_one({"_id": doc["_id"]}) or {"_id": doc["_id"], "origin": "WEB"}

    def get_participation(self, key: str) -> dict | None:
        return self.db.participations.find_one({"_id": key})

    def delete_participation(self, key: str) -> None:
        self.db.participations.delete_one({"_id": key})

    def participations_of(self, voter: str, after: tuple | None, limit: int) -> list[dict]:
        """A voter's participations, newest first, keyset-paged by (at_ts, key)."""
        query: dict = {"voter": voter}
        if after is not None:
            query["$or"] = [{"at_ts": {"$lt": after[0]}}, {"at_ts": after[0], "_id": {"$lt": after[1]}}]
        return list(self.db.participations.find(query).sort([("at_ts", DESCENDING), ("_id", DESCENDING)])
                    .limit(limit))

    # -- responses ----------------------------------------------------------------------------------------
    def get_response(self, key: str) -> dict | None:
        return self.db.responses.find_one({"_id": key})

    def save_draft(self, doc: dict) -> dict:
        """A draft replaces the previous draft; a submitted response keeps its counted answers meanwhile. (Not a
        find_one_and_update upsert with $setOnInsert: nx-27017 ignores $setOnInsert there.)"""
        sets = {"draft": doc["draft"], "saved_ts": doc["saved_ts"]}
        for _ in range(2):
            found = self.db.responses.find_one_and_update({"_id": doc["_id"]}, {"$set": sets},
                                                          return_document=ReturnDocument.AFTER)
            if found is not None:
                return found
            try:
                new = {"_id": doc["_id"], "consultation_id": doc["consultation_id"], "voter": doc["voter"], "v": 0,
                       **sets}
                self.db.responses.insert_one(new)
                return new
            except DuplicateKeyError:
                continue
        raise Conflict("Votre brouillon change en ce moment depuis un autre appareil : réessayez.", "answers")

    def submit_response(self, key: str, version: int | None, fields: dict) -> dict | None:
        """Write a submitted response with its pending counts, if nobody changed it since it was read (version `v`,
        None: no document yet) and no earlier count is still pending; None otherwise (read again, finish, retry)."""
        if version is None:
            try:
                doc = {"_id": key, "v": 1, **fields}
                self.db.responses.insert_one(doc)
                return doc
            except DuplicateKeyError:
                return None
        return self.db.responses.find_one_and_update(
            {"_id": key, "v": version, "count_token": {"$exists": False}},
            {"$set": fields, "$unset": {"draft": ""}, "$inc": {"v": 1}}, return_document=ReturnDocument.AFTER)

    def delete_responses(self, keys: list[str]) -> None:
        if keys:
            self.db.responses.delete_many({"_id": {"$in": keys}})

    def has_answers(self, consultation_id: str) -> bool:
        """Whether anyone took part or a paper sheet was entered: the form is then locked (typo fixes only).
        Participations are found by their key's prefix (`<consultation>:`), on the primary index."""
        prefix = {"$gte": f"{consultation_id}:", "$lt": f"{consultation_id};"}
        return (self.db.participations.find_one({"_id": prefix}, {"_id": 1}) is not None
                or self.db.paper_entries.find_one({"_id": prefix}, {"_id": 1}) is not None)

    # -- secret ballots: slots and rounds (casting.py) -------------------------------------------------------
    def add_slots(self, consultation_id: str, slot_ids: list[str]) -> None:
        self.db.ballots.insert_many([{"_id": s, "free": consultation_id} for s in slot_ids], ordered=False)

    def fill_slots(self, fills: list[tuple[str, dict]]) -> int:
        """Write ballots into their free slots; returns how many were written (a slot no longer free is skipped).
        Each slot is replaced by its ballot (the slot's `_id` kept, its `free` mark gone with the rest): on nx-27017 a
        replacement costs two thirds of a `$set`/`$unset` update, which evaluates its operators on the stored
        document (0.26 against 0.38 ms a ballot, measured in batches of 20)."""
        if not fills:
            return 0
        ops = [ReplaceOne({"_id": slot, "free": ballot["consultation_id"]}, ballot) for slot, ballot in fills]
        return self.db.ballots.bulk_write(ops, ordered=False).modified_count

    def receipts_stored(self, receipts: list[str]) -> set[str]:
        return {d["receipt"] for d in self.db.ballots.find({"receipt": {"$in": receipts}}, {"receipt": 1})}

    def drop_free_slots(self, consultation_id: str) -> int:
        return self.db.ballots.delete_many({"free": consultation_id}).deleted_count

    def ballots(self, consultation_id: str, after: str | None = None, limit: int = 0) -> list[dict]:
        """Ballots by receipt code, never in the order they are stored in."""
        query: dict = {"consultation_id": consultation_id}
        if after:
            query["receipt"] = {"$gt": after}
        cursor = self.db.ballots.find(query, {"_id": 0, "consultation_id": 0}).sort("receipt", ASCENDING)
        return list(cursor.limit(limit) if limit else cursor)

    def ballot_by_receipt(self, consultation_id: str, receipt: str) -> dict | None:
        return self.db.ballots.find_one({"receipt": receipt, "consultation_id": consultation_id})

    def open_round(self, doc: dict, finished: list[tuple[str, str, dict]]) -> str:
        """A round's document, written before its participations: the voters it claims (`keys`) beside its ballots,
        shuffled, each with its slot, and the counts they add; `round` is the round's id (its participations name it).

        `finished`: (round, document, counts per consultation) of finished rounds this one closes (their ballots are
        written). One command applies their counts (each once: guarded by its round's marker) and then takes over the
        first one's document, closing that round and opening this one, unless it holds another round by now (a round
        that failed after writing it: left to the recovery); the others' documents go after it. Returns the `_id`
        used. The markers of the rounds closed are the caller's to prune once its round is written (`_finished`): a
        round that fails hands its closed rounds on, and the next one applies their counts again, as no-ops."""
        ops, pruned = self._count_ops((r, counts) for r, _, counts in finished)
        taken = None
        if finished:
            closed, doc["_id"] = finished[0][0], finished[0][1]
            ops.append(ReplaceOne({"_id": doc["_id"], "round": closed}, doc, upsert=True))
        try:
            if ops:
                result = self.db.counters.bulk_write(ops, ordered=True)
                taken = closed
                replaced = 0 if result.upserted_count else 1
                if result.modified_count - replaced < len(ops) - 1:
                    self._unpruned(pruned)  # some counts were applied already: their updates pruned nothing
            else:
                self.db.counters.insert_one(doc)
        except BulkWriteError as exc:
            errors = exc.details.get("writeErrors", [])
            self._unpruned(pruned)
            if [(e.get("index"), e.get("code")) for e in errors] != [(len(ops) - 1, DUPLICATE)]:
                raise
            doc["_id"] = uuid.uuid4().hex  # the counts are applied; the closed round's place holds another round
            self.db.counters.insert_one(doc)
        except Exception:
            self._unpruned(pruned)
            raise
        self._delete_rounds([(r, d) for r, d, _ in finished if r != taken])
        return doc["_id"]

    def claim_participations(self, docs: list[dict]) -> set[int]:
        """Insert a round's participations (each naming its round); positions that met an existing key."""
        if not docs:
            return set()
        try:
            self.db.participations.insert_many(docs, ordered=False)
            return set()
        except BulkWriteError as exc:
            errors = exc.details.get("writeErrors", [])
            if any(e.get("code") != DUPLICATE for e in errors):
                raise
            return {e["index"] for e in errors}

    def participations_by_key(self, keys: list[str]) -> dict[str, dict]:
        return {d["_id"]: d for d in self.db.participations.find({"_id": {"$in": keys}})}

    def write_round(self, doc_id: str, round_id: str, fields: dict) -> None:
        """The round without the voters refused on their participation (they had voted): its keys, ballots, counts and
        drafts written again."""
        done = self.db.counters.update_one({"_id": doc_id, "round": round_id}, {"$set": fields})
        if not done.matched_count:  # undone by the recovery meanwhile (a process stalled for that long): not counted
            raise ServiceUnavailable("Le vote n'a pas pu être enregistré : réessayez dans quelques secondes.")

    def open_rounds(self, round_ids: Iterable[str]) -> set[str]:
        """Those of these rounds still being written (their document is there; before 2026-12-02 a round's document
        had the round's id as `_id`). By `_id`, and by `round` one at a time: on nx-27017 an `$in` on another field
        than `_id` reads the whole collection, here every consultation's counters."""
        ids = [r for r in set(round_ids) if r]
        if not ids:
            return set()
        found = {d["_id"] for d in self.db.counters.find({"_id": {"$in": ids}, "created_ts": {"$exists": True}},
                                                          {"_id": 1})}
        return found | {r for r in ids if r not in found and self.db.counters.find_one({"round": r}, {"_id": 1})}

    def drop_participations(self, keys: list[str], round_id: str) -> int:
        return self.db.participations.delete_many({"_id": {"$in": keys}, "round": round_id}).deleted_count

    def round_claimed(self, round_id: str, keys: list[str]) -> bool:
        """Whether every voter of the round has his participation, naming the round (the recovery: written fully)."""
        return sum(1 for d in self.db.participations.find({"_id": {"$in": keys}}, {"round": 1})
                   if d.get("round") == round_id) == len(set(keys))

    def finish_rounds(self, closing: list[tuple[str, str, dict]], drafts: list[str], documents: bool = True) -> None:
        """Close rounds whose ballots are written ((round, its document, counts per consultation)): the drafts of their
        voters, their counts (each once), then the round documents, unless `documents` is False (a crash in between
        leaves a round that the recovery finishes again)."""
        if not closing:
            return
        self.delete_responses(drafts)
        ops, pruned = self._count_ops((r, counts) for r, _, counts in closing)
        if ops:
            try:
                if self.db.counters.bulk_write(ops, ordered=False).modified_count < len(ops):
                    self._unpruned(pruned)
            except Exception:
                self._unpruned(pruned)
                raise
        if documents:
            self._delete_rounds([(r, d) for r, d, _ in closing])

    def _delete_rounds(self, rounds: list[tuple[str, str]]) -> None:
        """The documents of these rounds ((round, its document)), each by its `_id` and only while it holds that round
        (a round that took its place, then failed, keeps it for the recovery); one command. A document written before
        2026-12-02 has the round's id as `_id`, and no `round`."""
        ops = [DeleteOne({"_id": d, "round": r}) if d != r else DeleteOne({"_id": r, "round": {"$exists": False}})
               for r, d in rounds]
        if ops:
            self.db.counters.bulk_write(ops, ordered=False)

    def stale_rounds(self, older_than_ts: float) -> list[dict]:
        return list(self.db.counters.find({"created_ts": {"$lt": older_than_ts}}).limit(50))

    def adopt_legacy_rounds(self) -> int:
        """Round documents left in `rounds` (their collection until 2026-12-03) by a process stopped mid-round, moved
        into `counters`, where the recovery looks for them."""
        moved = 0
        for doc in self.db.rounds.find({}).limit(200):
            self.db.counters.replace_one({"_id": doc["_id"]}, doc, upsert=True)
            self.db.rounds.delete_one({"_id": doc["_id"]})
            moved += 1
        return moved

    def undo_round(self, doc: dict) -> int:
        """A round that never wrote its ballots: its participations go (those voters were never answered), then its
        document."""
        round_id = doc.get("round", doc["_id"])
        # `n`: as many voters as read (a round that refused some of them rewrote its document, then wrote its ballots)
        query = ({"_id": doc["_id"], "round": round_id, "n": doc.get("n")} if "round" in doc
                 else {"_id": doc["_id"], "claiming": True})
        if not self.db.counters.delete_one(query).deleted_count:
            return 0  # finished meanwhile (a slow process), or its document taken by its process's next round
        return self.drop_participations(doc.get("keys") or [], round_id)

    # -- budget projects and supports ----------------------------------------------------------------------
    def insert_project(self, doc: dict, events: list[dict]) -> None:
        self.db.projects.insert_one(self.doc_with_events(doc, events))

    def get_project(self, project_id: str) -> dict | None:
        return self.public(self.db.projects.find_one({"_id": project_id}))

    def replace_project(self, doc: dict, events: list[dict]) -> dict:
        return self._replace("projects", doc, events, "Le projet a changé entre-temps : rechargez-le et recommencez.")

    def projects_of(self, budget_id: str, heading_id: str | None = None) -> list[dict]:
        query = {"budget_id": budget_id}
        if heading_id:
            query["heading_id"] = heading_id
        return list(self.db.projects.find(query, {OUTBOX: 0, OUTBOX_COUNT: 0}))

    def insert_support(self, doc: dict) -> bool:
        try:
            self.db.supports.insert_one(doc)
            return True
        except DuplicateKeyError:
            return False

    def supported_headings(self, budget_id: str, citizen: str) -> set[str]:
        return {d["heading_id"] for d in self.db.supports.find({"budget_id": budget_id, "citizen": citizen},
                                                               {"heading_id": 1})}

    def supported_by(self, budget_id: str, citizen: str) -> set[str]:
        return {d["project_id"] for d in self.db.supports.find({"budget_id": budget_id, "citizen": citizen},
                                                               {"project_id": 1})}

    # -- panels ------------------------------------------------------------------------------------------
    def panel_members(self, consultation_id: str) -> set[str]:
        return {d["citizen"] for d in self.db.panels.find({"consultation_id": consultation_id}, {"citizen": 1})}

    def set_panel(self, consultation_id: str, add: list[str], remove: list[str]) -> None:
        if remove:
            self.db.panels.delete_many({"_id": {"$in": [f"{consultation_id}:{c}" for c in remove]}})
        if add:
            try:
                self.db.panels.insert_many([{"_id": f"{consultation_id}:{c}", "consultation_id": consultation_id,
                                             "citizen": c} for c in add], ordered=False)
            except BulkWriteError as exc:  # added meanwhile by another import: a member once
                if any(e.get("code") != DUPLICATE for e in exc.details.get("writeErrors", [])):
                    raise

    def is_panel_member(self, consultation_id: str, citizen: str) -> bool:
        return self.db.panels.find_one({"_id": f"{consultation_id}:{citizen}"}, {"_id": 1}) is not None

    # -- paper entries ---------------------------------------------------------------------------------
    def get_paper_entry(self, entry_id: str) -> dict | None:
        return self.db.paper_entries.find_one({"_id": entry_id})

    def write_paper_entry(self, doc: dict, version: int | None) -> bool:
        """Insert (version None) or replace the entry read at `version` whose earlier counts are applied."""
        if version is None:
            try:
                self.db.paper_entries.insert_one(doc)
                return True
            except DuplicateKeyError:
                return False
        return self.db.paper_entries.replace_one({"_id": doc["_id"], "version": version,
                                                  "count_token": {"$exists": False}}, doc).matched_count == 1

    def paper_entries(self, consultation_id: str, statuses: list[str]) -> list[dict]:
        query: dict = {"consultation_id": consultation_id}
        if statuses:
            query["status"] = {"$in": statuses}
        return list(self.db.paper_entries.find(query))

    def matched_paper_ballots(self, consultation_id: str) -> list[dict]:
        """The agreed ballots of matched sheets (for the Pabulib export)."""
        return list(self.db.paper_entries.find({"consultation_id": consultation_id, "status": "MATCHED",
                                                "kind": "BALLOTS"}, {"agreed": 1}))

    def open_mismatches(self) -> int:
        return len(list(self.db.paper_entries.find({"mismatch": {"$exists": True}}, {"_id": 1})))

    def excluded_paper_entries(self, consultation_id: str) -> int:
        return len(list(self.db.paper_entries.find({"consultation_id": consultation_id,
                                                    "status": {"$in": ["MISMATCH", "AWAITING_SECOND_ENTRY"]}},
                                                   {"_id": 1})))
