"""Secret ballots (budget ballots, responses to secret consultations): one per citizen, stored apart from the record
that he took part, with nothing that joins them, written in rounds shared by the ballots that arrive together.

What a round writes, in this order (each one round trip, whatever the number of ballots in it):
1. the drafts of the secret responses of the rounds it closes (those finished before it: their ballots and counts are
   written), only when there are some;
2. the round document: its voters' keys (consultation:voter) and, apart from them, its ballots, shuffled, each with
   the slot it goes into, and the counts they add. One command applies the counts of the rounds it closes (`$inc`
   on the counters, each guarded by its round's marker) and takes the place of the document of one of them
   (round documents live in the counters' collection for that); the documents of rounds finished meanwhile go in
   the same step;
3. the participations of its voters, each naming its round (`_id` = consultation:voter: a second ballot of the same
   citizen, from any device or process, meets the key and is refused: "one ballot per citizen" is the key's);
   only when some were refused (they had voted), the round document again, without them;
4. the ballots, into their slots;
5. then the next round closes it (steps 1 and 2: its counts are applied there), or, when none follows, its drafts
   are deleted and its counts applied at once, before its voters are answered, and its document right after. Under
   load, a voter may thus be answered a round (milliseconds) before his vote shows in the participation count; once
   the votes stop, every one does.
Only the round document ties ballots to voters, a whole round's voters to a whole round's shuffled ballots, for
milliseconds (until the recovery after a crash): a participation's `round` names a round that is gone once the round
is closed, and no ballot names its round. A round is written fully once every voter it names has a participation
naming it: a crash after that is finished from the round document (ballots whose receipt is not stored yet go into
their slots, counts are applied unless their marker is there). Before that, the recovery undoes it once it is old
enough: the document, then its participations (those voters were never answered, and may vote again; a voter asking
meanwhile is told to retry); a round that rewrites its document after that is refused and its voters retry. No
acknowledged ballot is lost, none is counted twice. (Until 2026-12-01 the participations were `pending` their round
and lost that mark in a second write each: a quarter of the database's work for a ballot. Until 2026-12-02 the round
document held first the keys, then, in a second write, the ballots, and the document of a finished round was
deleted in a command of its own: two more round trips a round; and the drafts of a round closed by the next one were
left behind, beside their citizen. Until 2026-12-03 a round applied its own counts, in a command of its own, before
its voters were answered: a fourth round trip.)

Slots: MongoDB (and nx-27017) keep a collection in insertion order, and ObjectIds follow time; a ballot inserted when
it arrives would sit beside the ballots cast just before and after it, in the same order as the participations.
So ballots are written into slots: a process inserts empty slots in chunks (random ids, one insert), then fills
them in a random order. A ballot's place in the collection and its id say nothing of when it arrived (beyond its
chunk, a thousand slots), nor of who cast it. Empty slots left when the consultation closes are deleted.
"""
from __future__ import annotations

import logging
import os
import random
import secrets
import time
import uuid
from collections import Counter

import eventlet
from eventlet.event import Event as GreenEvent
from nameko.extensions import DependencyProvider
from pymongo.errors import PyMongoError

from contracts.errors import Conflict, ServiceUnavailable
from services.common.groupcommit import IngestQueue
from services.common.mongo import utcnow
from services.common.settings import service_settings
from services.consultation import domain, records
from services.consultation.metrics import CAST_ROUND, CAST_ROUND_SECONDS, PARTICIPATIONS, REFUSED, TIME_TO_VOTE

log = logging.getLogger(__name__)

CHUNK = 1000  # empty slots a process adds at once
PIECE = 30  # written this many at a time: the database takes one command at a time, and a round's commands wait
# behind a piece (a 1,000-slot insert held every round of ballots behind it for about half a second; a piece of 100,
# about 7 ms: the open run's p95 at 500 ballots/s was 47-51 ms with 100, 29-32 ms with 30, the same throughput)
LOW = 600  # below this many empty slots left, the next chunk is added in the background
VOTERS_REMEMBERED = 50_000  # voters a process remembers having written a ballot for (UrnState.remember): ~7 MB
STARTED_AT = time.time()  # rounds written before this process started are no round of this process
GRACE = 5.0  # seconds: how old such a round must be for the recovery (another live process closes its own at once)
STILL_WRITING = "Votre bulletin précédent est en cours d'enregistrement : réessayez dans quelques secondes."
_rng = random.SystemRandom()


class Cast:
    """One secret ballot waiting for its round: `docs` (the ballot, for the queue's sizing), who casts it (his key
    goes to his participation only), the counts it adds, and, once written, its receipt or its error."""

    __slots__ = ("docs", "consultation_id", "voter", "inc", "kind", "draft", "received", "error", "done")

    def __init__(self, ballot: dict, voter: str, inc: dict[str, int], kind: str, draft: bool = False):
        self.docs = [ballot]
        self.consultation_id = ballot["consultation_id"]
        self.voter, self.inc, self.kind, self.draft = voter, inc, kind, draft
        self.received = time.monotonic()
        self.error: BaseException | None = None
        self.done = GreenEvent()

    @property
    def key(self) -> str:
        return f"{self.consultation_id}:{self.voter}"

    @property
    def receipt(self) -> str:
        return self.docs[0]["receipt"]


class UrnState:
    """What a process keeps between rounds: its empty slots (per consultation; each round draws its own at random),
    its queue of ballots, and the voters it wrote a ballot for lately (`voted`)."""

    def __init__(self, rounds: int = 1, remembered: int = VOTERS_REMEMBERED):
        self.slots: dict[str, list[str]] = {}
        self.refilling: set[str] = set()
        self.queue = IngestQueue(rounds=rounds, max_votes=500)
        self.voted: dict[str, None] = {}  # consultation:voter, oldest first
        self.remembered = remembered

    def remember(self, keys) -> None:
        """Voters whose secret ballot is written (final: a round written fully is never undone), so that a second
        ballot of theirs through this process is refused at once, without the database's refusal (its participation
        read back, the round document written again: three more round trips on the round's path). The oldest are
        forgotten beyond `remembered`; a voter forgotten, or voting again through another process, meets his
        participation's key as before."""
        for key in keys:
            self.voted[key] = None
        while len(self.voted) > self.remembered:
            del self.voted[next(iter(self.voted))]

    def take_slots(self, store, consultation_id: str, n: int) -> list[str]:
        """`n` empty slots of this process, drawn at random among those it holds. A chunk is added when they run
        low: in the background (`refill`) before they run out, so that a round seldom waits for one."""
        if n <= 0:
            return []
        free = self.slots.setdefault(consultation_id, [])
        if len(free) < n:
            self._add(store, consultation_id, max(CHUNK, n - len(free)))
            free = self.slots[consultation_id]
        taken = []
        for _ in range(n):  # each drawn at random among those left (shuffling the whole list cost 5 % of the CPU)
            i = _rng.randrange(len(free))
            free[i], free[-1] = free[-1], free[i]
            taken.append(free.pop())
        if len(free) < LOW and consultation_id not in self.refilling:
            self.refilling.add(consultation_id)
            eventlet.spawn_n(self._refill, store, consultation_id)
        return taken

    def reserve(self, store, consultation_id: str, n: int) -> None:
        """At least `n` empty slots held for the consultation (a chunk added now if not)."""
        free = self.slots.setdefault(consultation_id, [])
        if len(free) < n:
            self._add(store, consultation_id, max(CHUNK, n - len(free)))

    def _add(self, store, consultation_id: str, n: int) -> None:
        raw = os.urandom(16 * n).hex()  # ids random (one read of the system's source): their order says nothing
        chunk = [raw[i:i + 32] for i in range(0, 32 * n, 32)]
        for start in range(0, n, PIECE):
            piece = chunk[start:start + PIECE]
            store.add_slots(consultation_id, piece)  # other writes pass between pieces; only slots go into ballots
            self.slots.setdefault(consultation_id, []).extend(piece)  # drawn at random from (take_slots)

    def _refill(self, store, consultation_id: str) -> None:
        try:
            self._add(store, consultation_id, CHUNK)
        except Exception:  # noqa: BLE001 - the next round adds a chunk itself
            log.warning("empty slots not added ahead of time", exc_info=True)
        finally:
            self.refilling.discard(consultation_id)


class Urn(DependencyProvider):
    """Injects the container's UrnState (made at the first worker)."""

    state: UrnState | None = None

    def get_dependency(self, worker_ctx):
        if self.state is None:
            self.state = UrnState(rounds=service_settings(self.container).cast_rounds)
        return self.state


class Casts:
    """The ballots one request brings (one, or a batch from the gateway: gateway/batching.py), written in the same
    round: `docs` are their ballots (for the queue's sizing), each Cast keeps its own refusal; `error` is the round's
    failure, which is every one's."""

    __slots__ = ("casts", "docs", "error", "done")

    def __init__(self, casts: list[Cast]):
        self.casts = casts
        self.docs = [c.docs[0] for c in casts]
        self.error: BaseException | None = None
        self.done = GreenEvent()


def cast(store, state: UrnState, job: Cast) -> Cast:
    """Write a secret ballot in the next round; raises its refusal (already voted, closed), or ServiceUnavailable
    when the round failed (the voter retries: see STILL_WRITING)."""
    cast_many(store, state, [job])
    if job.error is not None:
        raise job.error
    return job


def cast_many(store, state: UrnState, jobs: list[Cast]) -> list[Cast]:
    """Write secret ballots in the same round; each refused one keeps its refusal in `error` (already voted,
    closed), and all of them ServiceUnavailable when the round failed."""
    if not jobs:
        return jobs
    try:
        state.queue.submit(Rounds(store, state), Casts(jobs))
    except PyMongoError:
        log.exception("a round of ballots failed")
        failed = ServiceUnavailable("Le vote n'a pas pu être enregistré : réessayez dans quelques secondes.")
        for job in jobs:
            job.error = failed
    except Exception as exc:  # the round's failure (ServiceUnavailable, a stop) is every ballot's
        for job in jobs:
            job.error = exc
    return jobs


class Rounds:
    """The writes of a round of secret ballots (see the module's docstring), and the recovery after a crash."""

    def __init__(self, store, state: UrnState | None):
        self.store, self.state = store, state

    def write(self, groups: list[Casts], close: list, sent=lambda: None):
        jobs = [job for group in groups for job in group.casts]
        round_id = uuid.uuid4().hex
        now = utcnow()
        started = time.perf_counter()
        # The previous round's voters get their answers while this round's first read is in the database (green
        # threads run while this one waits for it), not between this round's writes (see IngestQueue).
        sent()
        firsts, copies = self._unique(jobs)
        winners = self._still_open(self._not_known(firsts), now)
        # Empty slots first (a chunk takes a while): between the round's document and its ballots, nothing slow,
        # since the recovery undoes a round whose voters are not all claimed after a while.
        for cid, n in Counter(j.consultation_id for j in winners).items():
            self.state.reserve(self.store, cid, n)
        _rng.shuffle(winners)
        fills = self._slots(winners)
        # The finished rounds this one closes: their counts applied and one's document taken over, in one command;
        # the drafts of their voters go first (a crash in between leaves them to the recovery, which finishes them).
        self.store.delete_responses([d for _, info in close for d in info["drafts"]])
        contents = self._contents(winners, fills)
        doc_id = self.store.open_round({"_id": uuid.uuid4().hex, "round": round_id, "created_ts": now.timestamp(),
                                        **contents},
                                       [(r, info.get("doc", r), info.get("counts") or {}) for r, info in close])
        docs = [{"_id": j.key, "consultation_id": j.consultation_id, "voter": j.voter, "origin": "WEB", "at": now,
                 "at_ts": now.timestamp(), "round": round_id} for j in winners]
        failed = self.store.claim_participations(docs)
        if failed:
            existing = self.store.participations_by_key([winners[i].key for i in failed])
            writing = self.store.open_rounds(p.get("round") for p in existing.values())
            for i in sorted(failed):
                self._refuse(winners[i], existing.get(winners[i].key), writing)
                self.state.slots.setdefault(winners[i].consultation_id, []).append(fills[i][0])  # still empty
            winners = [j for i, j in enumerate(winners) if i not in failed]
            fills = [f for i, f in enumerate(fills) if i not in failed]
            contents = self._contents(winners, fills)
            try:
                self.store.write_round(doc_id, round_id, contents)
            except ServiceUnavailable:  # undone by the recovery: our participations too, those written since
                self.store.drop_participations([j.key for j in winners], round_id)
                raise
        self._fill(fills)
        self.state.remember(j.key for j in winners)
        self._pruned(close)  # the rounds this one closed: their markers may go, now that this one stands
        self._answer_copies(copies)
        CAST_ROUND_SECONDS.observe(time.perf_counter() - started)
        return winners, time.monotonic(), round_id, {"counts": contents["counts"], "cids": list(contents["counts"]),
                                                     "drafts": contents["drafts"], "doc": doc_id}

    def _slots(self, winners: list[Cast]) -> list[tuple[str, dict]]:
        """An empty slot for each ballot (in the order of `winners`, shuffled already)."""
        taken: dict[str, list[str]] = {}
        for cid, n in Counter(j.consultation_id for j in winners).items():
            taken[cid] = self.state.take_slots(self.store, cid, n)
        return [(taken[j.consultation_id].pop(), j.docs[0]) for j in winners]

    @staticmethod
    def _contents(winners: list[Cast], fills: list[tuple[str, dict]]) -> dict:
        """What a round's document holds: its voters' keys, and apart from them its ballots (shuffled: in no order
        of the keys), each with its slot, the counts they add per consultation, and the drafts to delete."""
        counts: dict[str, Counter] = {}
        for j in winners:
            counts.setdefault(j.consultation_id, Counter({"p:web": 0}))["p:web"] += 1
            counts[j.consultation_id].update(j.inc)
        keys = sorted(j.key for j in winners)
        return {"keys": keys, "n": len(keys), "ballots": [{"slot": s, "ballot": b} for s, b in fills],
                "counts": {cid: dict(c) for cid, c in counts.items()}, "drafts": [j.key for j in winners if j.draft]}

    def settle(self, close: list) -> None:
        """What closing finished rounds applies (their drafts deleted, their counts), before their voters are answered
        when no round follows them (IngestQueue); their documents go right after (`finish`), off the voters' path."""
        self.store.finish_rounds([(r, info.get("doc", r), info.get("counts") or {}) for r, info in close],
                                 [d for _, info in close for d in info["drafts"]], documents=False)
        for _, info in close:  # their markers stay until their documents go (the recovery would count them again)
            info["counts"], info["drafts"] = {}, []

    def finish(self, close: list) -> None:
        """Close finished rounds that no round follows (IngestQueue: once settled and their voters answered)."""
        self.store.finish_rounds([(r, info.get("doc", r), info.get("counts") or {}) for r, info in close],
                                 [d for _, info in close for d in info["drafts"]])
        self._pruned(close)

    def _pruned(self, close: list) -> None:
        """The markers of closed rounds (their counts applied, their documents gone) may go."""
        for r, info in close:
            for cid in info.get("cids") or info.get("counts") or {}:
                self.store._finished(cid, [r])

    @staticmethod
    def observe(stored: list[Cast], counted: float) -> None:
        if stored:
            CAST_ROUND.observe(len(stored))
        for job in stored:
            PARTICIPATIONS.labels(job.kind, "online").inc()
            TIME_TO_VOTE.labels(job.kind).observe(max(0.0, counted - job.received))

    # -- steps --------------------------------------------------------------------------------------
    @staticmethod
    def _unique(jobs: list[Cast]) -> tuple[list[Cast], list[tuple[Cast, Cast]]]:
        """Two ballots of one voter in one round (a resend meeting its original): the first goes on; each copy
        shares its fate once the round knows it (`_answer_copies`): refused as a second ballot when the first is
        written, the first's error when it is not (a copy told "already voted" while the first fails would never
        be sent again, and its voter would not be counted)."""
        first: dict[str, Cast] = {}
        copies: list[tuple[Cast, Cast]] = []
        for job in jobs:
            if job.key in first:
                copies.append((job, first[job.key]))
            else:
                first[job.key] = job
        return list(first.values()), copies

    @staticmethod
    def _answer_copies(copies: list[tuple[Cast, Cast]]) -> None:
        for copy, first in copies:
            if first.error is not None:
                copy.error = first.error
            else:
                copy.error = Conflict("Vous avez déjà voté : un vote secret est définitif.", "participation")
                REFUSED.labels("already_voted").inc()

    def _not_known(self, jobs: list[Cast]) -> list[Cast]:
        """Ballots of voters this process wrote a ballot for (UrnState.remember): refused at once, as the database
        would refuse them (a secret ballot cast online is final)."""
        out = []
        for job in jobs:
            if job.key in self.state.voted:
                self._refuse(job, {"origin": "WEB"})
            else:
                out.append(job)
        return out

    def _still_open(self, jobs: list[Cast], now) -> list[Cast]:
        """The round checks its consultations again, at the round's instant: one whose window or vote has ended
        since the ballot was checked takes no ballot. From the store's recent copy (store.recent): a closing by
        this process's clock or agent shows at once, one by another replica within RECENT_SECONDS."""
        docs = {cid: self.store.recent_consultation(cid) for cid in {j.consultation_id for j in jobs}}
        out = []
        for job in jobs:
            doc = docs.get(job.consultation_id)
            reason = records.cast_refusal(doc, now, job.kind) if doc else "La consultation n'existe plus."
            if reason:
                job.error = Conflict(reason, "state")
                REFUSED.labels("closed").inc()
            else:
                out.append(job)
        return out

    @staticmethod
    def _refuse(job: Cast, existing: dict | None, writing: set[str] = frozenset()) -> None:
        """The ballot of a voter whose key was taken. Still being written (its round's document is there: `writing`),
        or undone between our insert and our read (the recovery deleted a crashed round's participation meanwhile):
        he tries again. Otherwise he voted."""
        if existing is None or existing.get("round") in writing:
            job.error = ServiceUnavailable(STILL_WRITING)
            return
        try:
            domain.check_participation(existing.get("origin", "WEB"), "WEB", final=True)
        except Conflict as exc:
            job.error = exc
        REFUSED.labels("already_voted").inc()

    def _fill(self, fills: list[tuple[str, dict]]) -> None:
        """Ballots into their slots; a slot found taken (never, short of a bug or a slot shared by two processes)
        is replaced by a new one, so that no ballot of the round is left out."""
        for _ in range(5):
            if not fills or self.store.fill_slots(fills) == len(fills):
                return
            stored = self.store.receipts_stored([b["receipt"] for _, b in fills])
            fills = [(secrets.token_hex(16), b) for _, b in fills if b["receipt"] not in stored]
            for slot, ballot in fills:
                self.store.add_slots(ballot["consultation_id"], [slot])
        if fills:
            raise ServiceUnavailable("Les bulletins n'ont pas pu être rangés : réessayez.")

    # -- recovery -----------------------------------------------------------------------------------
    def recover(self, now_ts: float, after: float) -> int:
        """Finish the rounds a crash left half-written, undo those that never wrote their ballots.

        A round is written fully once each of its voters has his participation, naming the round: then it is
        finished from its document (idempotent: receipts already stored are skipped, counts are guarded by the round's
        marker), once GRACE seconds old when it was written before this process started, even if another process
        still writes it (the markers of its counts stay: that process, if alive, closes it again as a no-op). Otherwise it is undone, but only once `after` seconds old, when no live process can be about to write its
        ballots. (Documents of rounds written before 2026-12-02: `claiming` its voters, or holding its ballots.)"""
        self.store.adopt_legacy_rounds()
        done = 0
        # A round of a process that started before this one is taken once GRACE seconds old (its process may live
        # on, and close it within milliseconds); one of this process, or of any process, once `after` seconds old.
        for doc in self.store.stale_rounds(max(min(STARTED_AT, now_ts - GRACE), now_ts - after)):
            round_id = doc.get("round", doc["_id"])
            written = not doc.get("claiming") and (
                "keys" not in doc or self.store.round_claimed(round_id, doc.get("keys") or []))
            if not written:
                if doc.get("created_ts", 0) < now_ts - after:
                    undone = self.store.undo_round(doc)
                    log.info("round %s never wrote its ballots: %s participation(s) undone", round_id, undone)
                    done += 1
                continue
            fills = [(b["slot"], b["ballot"]) for b in doc.get("ballots") or []]
            stored = self.store.receipts_stored([b["receipt"] for _, b in fills]) if fills else set()
            self._fill([(s, b) for s, b in fills if b["receipt"] not in stored])
            # Its markers stay: a process that still holds the round (stalled) may close it again, as a no-op.
            self.store.finish_rounds([(round_id, doc["_id"], doc.get("counts") or {})], doc.get("drafts") or [])
            log.info("round %s finished after a crash: %s ballot(s)", round_id, len(fills))
            done += 1
        return done


def recover(store, now_ts: float, after: float) -> int:
    """For the timer: rounds left by a crash, then counts left pending by one (participations checked in, survey
    responses, supports, paper entries), `after` seconds old."""
    done = Rounds(store, None).recover(now_ts, after)
    for collection in ("participations", "responses", "supports", "paper_entries"):
        for doc in store.pending_counts(collection, now_ts - after):
            store.finish_count(collection, doc)
            done += 1
    return done
