"""MongoDB access for a service: one database per service, a repository injected, and the outbox.

The transactional outbox keeps a write and the events that announce it in the *same document*:
`_outbox.<event_id>` holds each envelope and `_outbox_n` counts them, set in the same update as the
business fields. Single-document atomicity holds on MongoDB and on nx-27017 alike (no replica set or
multi-document transaction needed). A relay green thread publishes pending envelopes with publisher
confirms, then removes each one; a crash anywhere in between leaves the envelope in place and it is
published again, so delivery is at-least-once and consumers deduplicate by `event_id`.

Several replicas of a service run a relay each over the same collections: before publishing, a relay claims the
documents it found (`_outbox_claim: {owner, until}`, set by a conditional update that only matches documents
unclaimed, claimed by itself, or whose claim ran out), so that each envelope is published by one relay; the claim
goes with the last envelope it publishes. A relay that dies holding claims leaves them to run out (CLAIM_SECONDS),
then another publishes them: still at least once, and once in the normal run.

Why a map and not an array: nx-27017 stores `$push`ed sub-documents as JSON strings and its `$pull`
with a condition empties the whole array; `$set`/`$unset` of `_outbox.<id>` behave the same on both.
"""
from __future__ import annotations

import logging
import socket
import time
import uuid
from datetime import datetime, timezone
from typing import Any, Iterable

import eventlet
from eventlet.event import Event as GreenEvent
from kombu import Connection, Producer
from nameko.extensions import DependencyProvider
from nameko.standalone.events import get_event_exchange
from pymongo import ASCENDING, IndexModel, MongoClient, ReplaceOne, UpdateOne
from pymongo.errors import BulkWriteError
from pymongo.collection import Collection
from pymongo.database import Database

from services.common import metrics
from services.common.settings import service_settings

log = logging.getLogger(__name__)

OUTBOX = "_outbox"
OUTBOX_COUNT = "_outbox_n"
OUTBOX_CLAIM = "_outbox_claim"
WRITE_TOKEN = "_write"  # which writer of a batch of versioned replacements passed (replace_versioned_many)
CLAIM_SECONDS = 30.0  # as long as a page may wait for its confirms: a claim never runs out under a live relay
# The relay's longest wait between two attempts while the broker (or the database) is away: events written
# meanwhile leave within this many seconds of its return (the relay is also woken by every write).
RELAY_BACKOFF_MAX = 5.0


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def database_name(container) -> str:
    """The service's own database; a test may name another in the container's config."""
    return container.config.get("PARVIS_DB_NAME", f"parvis_{container.service_name}")


def mongo_client(url: str, **kwargs) -> MongoClient:
    # tz_aware: datetimes come back as UTC-aware, as they are stored.
    return MongoClient(url, tz_aware=True, serverSelectionTimeoutMS=5000, connectTimeoutMS=3000, **kwargs)


class Repository:
    """Base of a service's store: holds the database; subclasses add domain-named methods.

    `indexes` maps a collection name to IndexModels ensured at start. `outbox_collections` names the
    collections whose documents may carry outbox events (the relay scans only those, by index).
    """

    indexes: dict[str, list[IndexModel]] = {}
    outbox_collections: tuple[str, ...] = ()

    def __init__(self, db: Database):
        self.db = db

    def ensure_indexes(self) -> None:
        for name, models in self.indexes.items():
            if models:
                self.db[name].create_indexes(models)
        for name in self.outbox_collections:
            self.db[name].create_index([(OUTBOX_COUNT, ASCENDING)], sparse=True)

    def ping(self) -> bool:
        self.db.command("ping")
        return True

    # -- writes that carry events -----------------------------------------------------------
    @staticmethod
    def with_events(update: dict, events: Iterable[dict]) -> dict:
        """Return `update` extended so that the same single-document write stores `events`."""
        events = list(events)
        if not events:
            return update
        update = {op: dict(fields) for op, fields in update.items()}
        sets = update.setdefault("$set", {})
        for env in events:
            sets[f"{OUTBOX}.{env['event_id']}"] = env
        incs = update.setdefault("$inc", {})
        incs[OUTBOX_COUNT] = incs.get(OUTBOX_COUNT, 0) + len(events)
        return update

    @staticmethod
    def doc_with_events(doc: dict, events: Iterable[dict]) -> dict:
        """A new document that carries `events` (for insert_one)."""
        events = list(events)
        if events:
            doc = dict(doc)
            doc[OUTBOX] = {env["event_id"]: env for env in events}
            doc[OUTBOX_COUNT] = len(events)
        return doc

    def replace_versioned(self, collection: str, doc_id, version: int, sets: dict, events: Iterable[dict],
                          unset: Iterable[str] = ()) -> dict | None:
        """Optimistic write of a whole document: applies `sets` (and removes `unset`) only if nobody changed it since
        it was read (same `version`), the version bumped and `events` added to the envelopes still in its outbox;
        None when another writer passed first. Whole, not `$set`: nx-27017 keeps a top-level datetime written by
        `$set` as a string, which range queries then miss. An envelope the relay publishes between the read and the
        write may go again: consumers deduplicate."""
        current = self.db[collection].find_one({"_id": doc_id, "version": version})
        if current is None:
            return None
        doc = _next_version(current, version, sets, events, unset)
        if self.db[collection].replace_one({"_id": doc_id, "version": version}, doc).matched_count == 0:
            return None
        return doc

    def replace_versioned_many(self, collection: str, writes: list[tuple]) -> set[int]:
        """Several `replace_versioned` writes (doc_id, version, sets, events, unset) in three round trips whatever
        their number: one read of the documents, one unordered bulk of replacements (each under its version), and,
        only when some did not match, one read telling which did (each replacement carries a token of its own,
        `_write`). Returns the indexes of `writes` that were written; the others lost to another writer (or broke
        a unique index): read again and decide again, one by one."""
        if not writes:
            return set()
        coll = self.db[collection]
        current = {d["_id"]: d for d in coll.find({"_id": {"$in": [w[0] for w in writes]}})}
        ops, tokens = [], {}
        for i, (doc_id, version, sets, events, unset) in enumerate(writes):
            doc = current.get(doc_id)
            if doc is None or doc.get("version") != version or doc_id in tokens:
                continue  # changed already (or written twice in one batch: the second one decides again)
            new = _next_version(doc, version, sets, events, unset)
            new[WRITE_TOKEN] = tokens[doc_id] = uuid.uuid4().hex
            ops.append((i, ReplaceOne({"_id": doc_id, "version": version}, new)))
        if not ops:
            return set()
        refused: set[int] = set()
        try:
            result = coll.bulk_write([op for _, op in ops], ordered=False)
            matched = result.matched_count
        except BulkWriteError as exc:  # a unique index (a bill paid twice): those alone fail
            errors = exc.details.get("writeErrors") or []
            if not errors or any(e.get("code") not in (11000, 11001) for e in errors):
                raise
            refused = {ops[e["index"]][0] for e in errors}
            matched = exc.details.get("nMatched", 0)
        done = {i for i, _ in ops if i not in refused}
        if matched < len(done):  # another writer passed first on some: which ones were ours
            ours = {d["_id"]: d.get(WRITE_TOKEN) for d in coll.find(
                {"_id": {"$in": [writes[i][0] for i in done]}}, {WRITE_TOKEN: 1})}
            done = {i for i in done if ours.get(writes[i][0]) == tokens[writes[i][0]]}
        return done

    @staticmethod
    def public(doc: dict | None) -> dict | None:
        """The document without its outbox bookkeeping."""
        if doc is None:
            return None
        return {k: v for k, v in doc.items() if k not in (OUTBOX, OUTBOX_COUNT, OUTBOX_CLAIM, WRITE_TOKEN)}


class ConfirmedBatchPublisher:
    """Publishes a page of envelopes, then waits once for the broker to confirm them all.

    nameko's Publisher (kombu's `confirm_publish`) waits for each message's confirm before sending the
    next: a broker round trip per event, which bounded the relay to a few hundred events/s in a fan-out.
    Here the channel is put in confirm mode, the page is sent, and the acks (single or `multiple`) are
    drained until none is outstanding. A nack, a timeout or a lost connection fails the whole page: its
    envelopes stay in the outbox and go again (consumers deduplicate by event_id).
    """

    def __init__(self, amqp_url: str, exchange, confirm_timeout: float = 30.0):
        self.amqp_url, self.exchange, self.confirm_timeout = amqp_url, exchange, confirm_timeout
        self.conn = None

    def _open(self) -> None:
        conn = Connection(self.amqp_url)
        conn.connect()
        channel = conn.channel()
        channel.events["basic_ack"].add(self._on_ack)
        channel.events["basic_nack"].add(self._on_nack)
        channel.confirm_select()
        self.producer = Producer(channel, exchange=self.exchange, serializer="json", auto_declare=True)
        self.conn, self.next_tag, self.outstanding, self.nacked = conn, 1, set(), 0

    def _settle(self, tag: int, multiple: bool) -> None:
        if multiple:
            self.outstanding = {t for t in self.outstanding if t > tag}
        else:
            self.outstanding.discard(tag)

    def _on_ack(self, tag: int, multiple: bool) -> None:
        self._settle(tag, multiple)

    def _on_nack(self, tag: int, multiple: bool) -> None:
        self.nacked += 1
        self._settle(tag, multiple)

    def publish_all(self, envelopes: list[dict]) -> None:
        if self.conn is None:
            self._open()
        try:
            for env in envelopes:
                headers = {"nameko.correlation_id": env.get("correlation_id") or env["event_id"]}
                self.producer.publish(env, routing_key=env["type"], headers=headers, message_id=env["event_id"],
                                      delivery_mode=2, retry=False)
                self.outstanding.add(self.next_tag)
                self.next_tag += 1
            deadline = time.monotonic() + self.confirm_timeout
            while self.outstanding:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(f"{len(self.outstanding)} publish confirm(s) not received")
                try:
                    self.conn.drain_events(timeout=min(remaining, 1.0))
                except socket.timeout:
                    continue
            if self.nacked:
                raise RuntimeError(f"the broker refused {self.nacked} message(s)")
        except Exception:
            self.close()
            raise

    def close(self) -> None:
        conn, self.conn = self.conn, None
        if conn is not None:
            try:
                conn.release()
            except Exception:  # noqa: BLE001 - already broken
                pass


class OutboxRelay:
    """Publishes a service's pending outbox envelopes with confirms, then marks them sent."""

    PAGE = 200  # envelopes sent before waiting for their confirms

    def __init__(self, service: str, repo: Repository, amqp_url: str, nameko_config: dict):
        self.service = service
        self.repo = repo
        self.exchange = get_event_exchange(service, nameko_config)
        self.publisher = ConfirmedBatchPublisher(amqp_url, self.exchange)
        self.wake = GreenEvent()
        self.running = False
        self.more = False
        self.owner = uuid.uuid4().hex  # this relay's name on its claims

    def poke(self) -> None:
        if not self.wake.ready():
            self.wake.send(True)

    def pending(self, limit: int = 10_000) -> int:
        """Events written and not yet published, by the index on `_outbox_n` (no count_documents:
        nx-27017 answers it by scanning the collection)."""
        total = 0
        for c in self.repo.outbox_collections:
            total += sum(d.get(OUTBOX_COUNT, 0) for d in self.repo.db[c].find({OUTBOX_COUNT: {"$gt": 0}},
                                                                              {OUTBOX_COUNT: 1}).limit(limit))
        return total

    def run_once(self, limit: int = 500) -> int:
        """Publish what is pending, `limit` documents per collection; returns the events sent. A
        full page means more may wait: `self.more` tells the loop to go again at once."""
        sent = 0
        self.more = False
        for name in self.repo.outbox_collections:
            coll: Collection = self.repo.db[name]
            found = list(coll.find({OUTBOX_COUNT: {"$gt": 0}}, {OUTBOX_CLAIM: 1}).limit(limit))
            self.more = self.more or len(found) == limit
            docs = self._claim(coll, found)
            page: list[tuple[Any, dict]] = []
            counts: dict[Any, int] = {}  # each document of the page: its count of envelopes, all in the page
            for doc in docs:
                envelopes = (doc.get(OUTBOX) or {}).values()
                for env in sorted(envelopes, key=lambda e: e["occurred_at"]):
                    page.append((doc["_id"], env))
                if len(envelopes) == doc.get(OUTBOX_COUNT):
                    counts[doc["_id"]] = len(envelopes)
                if len(page) >= self.PAGE:
                    sent += self._flush(coll, page, counts)
                    page, counts = [], {}
            if page:
                sent += self._flush(coll, page, counts)
        return sent

    def _claim(self, coll: Collection, found: list[dict]) -> list[dict]:
        """The documents of `found` this relay may publish now: claimed in one conditional update (another
        replica's live claim is left alone), then read with their envelopes."""
        now = time.time()
        unclaimed, expired, ours = [], [], []
        for d in found:
            claim = d.get(OUTBOX_CLAIM)
            if not claim:
                unclaimed.append(d["_id"])
            elif claim.get("owner") == self.owner:
                ours.append(d["_id"])
            elif float(claim.get("until") or 0) < now:
                expired.append(d["_id"])
        free = unclaimed + expired + ours
        if not free:
            return []
        # One update per case rather than one with `$or`: nx-27017 evaluates an `$or` beside `$in` in Python over
        # the collection (26 ms against 4.7 for 20 of 3,000 documents); documents without a claim are the usual case.
        claim = {"$set": {OUTBOX_CLAIM: {"owner": self.owner, "until": now + CLAIM_SECONDS}}}
        for ids, still in ((unclaimed, {OUTBOX_CLAIM: {"$exists": False}}),
                           (expired, {f"{OUTBOX_CLAIM}.until": {"$lt": now}}),
                           (ours, {f"{OUTBOX_CLAIM}.owner": self.owner})):
            if ids:
                coll.update_many({"_id": {"$in": ids}, **still}, claim)
        return list(coll.find({"_id": {"$in": free}, f"{OUTBOX_CLAIM}.owner": self.owner, OUTBOX_COUNT: {"$gt": 0}},
                              {OUTBOX: 1, OUTBOX_COUNT: 1}))

    def _flush(self, coll: Collection, page: list[tuple[Any, dict]], counts: dict | None = None) -> int:
        """Publish a page, wait for its confirms, then mark it sent (the claim goes with it).

        The documents whose every envelope is in the page (`counts`: their number, as read with the claim) are
        emptied by one update per count, where the count and our claim are unchanged: nobody added an envelope
        since (a write that adds one raises the count; one that adds none carries the same envelopes over), so the
        whole outbox is what was published. On nx-27017 this costs about half of one update per envelope. Any
        other document, and all of a group where one did not match, loses its envelopes one by one, each only if
        still there (so none is counted off twice)."""
        self.publisher.publish_all([env for _, env in page])
        cleared: set = set()
        groups: dict[int, list] = {}
        for doc_id, n in (counts or {}).items():
            groups.setdefault(n, []).append(doc_id)
        for n, ids in groups.items():
            done = coll.update_many({"_id": {"$in": ids}, OUTBOX_COUNT: n, f"{OUTBOX_CLAIM}.owner": self.owner},
                                    {"$unset": {OUTBOX: "", OUTBOX_CLAIM: ""}, "$set": {OUTBOX_COUNT: 0}})
            if done.modified_count == len(ids):
                cleared.update(ids)
        rest = [(doc_id, env) for doc_id, env in page if doc_id not in cleared]
        if rest:
            coll.bulk_write([UpdateOne({"_id": doc_id, f"{OUTBOX}.{env['event_id']}": {"$exists": True}},
                                       {"$unset": {f"{OUTBOX}.{env['event_id']}": "", OUTBOX_CLAIM: ""},
                                        "$inc": {OUTBOX_COUNT: -1}})
                             for doc_id, env in rest], ordered=True)
        now = utcnow()
        for _, env in page:
            metrics.EVENTS_PUBLISHED.labels(self.service, env["type"]).inc()
            try:
                occurred = datetime.fromisoformat(env["occurred_at"].replace("Z", "+00:00"))
                metrics.OUTBOX_LAG.labels(self.service).observe(max(0.0, (now - occurred).total_seconds()))
            except (KeyError, ValueError):
                pass
        return len(page)

    def loop(self, interval: float) -> None:
        self.running = True
        backoff = interval
        while self.running:
            try:
                self.run_once()
                metrics.OUTBOX_PENDING.labels(self.service).set(self.pending() if self.more else 0)
                backoff = interval
                if self.more:
                    continue
            except Exception as exc:  # broker or database away: keep the envelopes, try again later
                log.warning("outbox relay: %s; retrying in %.1fs", exc, backoff)
                backoff = min(backoff * 2, RELAY_BACKOFF_MAX)
                try:  # the backlog grows while the broker is away: that is when operators need it
                    metrics.OUTBOX_PENDING.labels(self.service).set(self.pending())
                except Exception:  # noqa: BLE001 - the database is away too
                    pass
            with eventlet.Timeout(backoff, False):
                self.wake.wait()
            self.wake = GreenEvent()


class Mongo(DependencyProvider):
    """Injects the service's repository (`repository_cls(db)`) over the database `parvis_<service>`.

    The client is created in setup() and closed in stop(); indexes are ensured at start; the outbox
    relay runs as a managed green thread while the service runs, woken after each worker that
    wrote events.
    """

    def __init__(self, repository_cls: type[Repository]):
        self.repository_cls = repository_cls

    def setup(self):
        self.settings = service_settings(self.container)
        self.service = self.container.service_name
        self.client = mongo_client(self.settings.effective_mongo_url)
        self.repo = self.repository_cls(self.client[database_name(self.container)])
        self.relay = None
        if self.repository_cls.outbox_collections:
            self.relay = OutboxRelay(self.service, self.repo, self.settings.amqp_url, self.container.config)

    def start(self):
        for attempt in range(30):
            try:
                self.repo.ensure_indexes()
                break
            except Exception as exc:  # the database may still be starting
                if attempt == 29:
                    raise
                log.warning("database not ready (%s); retrying", exc)
                eventlet.sleep(1)
        # PARVIS_OUTBOX_HOLD=1 keeps written events unpublished: the crash tests use it to kill a
        # service in the window between a write and its publish, which is otherwise milliseconds.
        if self.relay is not None and not self.settings.outbox_hold:
            self.container.spawn_managed_thread(lambda: self.relay.loop(self.settings.outbox_interval),
                                                identifier="outbox_relay")

    def stop(self):
        if self.relay is not None:
            self.relay.running = False
            self.relay.poke()
            self.relay.publisher.close()
        self.client.close()

    def kill(self):
        self.client.close()

    def get_dependency(self, worker_ctx):
        return self.repo


def _next_version(current: dict, version: int, sets: dict, events, unset) -> dict:
    """`current` as a versioned write leaves it: `unset` fields gone, `sets` applied, the next version, `events`
    added to its outbox (the envelopes still there kept)."""
    unset = set(unset)
    doc = {k: v for k, v in current.items() if k not in unset}
    doc.update(sets)
    doc["version"] = version + 1
    outbox = dict(doc.get(OUTBOX) or {})
    outbox.update({env["event_id"]: env for env in events})
    if outbox:
        doc[OUTBOX], doc[OUTBOX_COUNT] = outbox, len(outbox)
    return doc
