"""Exactly-once vote ingest: the kiosks' cache, the group commit of submits, and the writes of a round.

The counting scheme itself (batch documents, counters guarded by markers, recovery) is the store's; see
store.py. Here: which submits share a round (`IngestQueue`), what a round writes (`Rounds`), and the state a
process keeps between rounds (`IngestState`, one per service container, injected as `self.ingest`).
"""
from __future__ import annotations

import logging
import time
from datetime import datetime

import eventlet
from eventlet.event import Event as GreenEvent
from nameko.extensions import DependencyProvider

from contracts.errors import ServiceUnavailable
from services.common.mongo import Mongo, utcnow
from services.common.settings import service_settings
from services.satisfaction import domain
from services.satisfaction.alerts import Alerts
from services.satisfaction.metrics import HappyIndexGauges, observe_counted

log = logging.getLogger(__name__)

KIOSK_CACHE_SECONDS = 5.0
RELEASE_AFTER = 0.2  # seconds: the longest a finished round's submits wait for the next round's votes to leave


class KioskCache:
    """The kiosks (with their site) that submitted lately, so the hot path does not read them per batch.

    Invalidated at once in this process by update/rotate/revoke; another instance sees those changes within
    KIOSK_CACHE_SECONDS. The latest press is kept here too, for the repeated-press rule between batches.
    """

    def __init__(self):
        self.entries: dict[str, tuple[float, dict, dict]] = {}

    def get(self, kiosk_id: str):
        entry = self.entries.get(kiosk_id)
        if entry is not None and entry[0] > time.monotonic():
            return entry[1], entry[2]
        return None

    def put(self, kiosk: dict, site: dict) -> None:
        self.entries[kiosk["_id"]] = (time.monotonic() + KIOSK_CACHE_SECONDS, kiosk, site)

    def drop(self, kiosk_id: str) -> None:
        self.entries.pop(kiosk_id, None)


class Submit:
    """The votes of one submit, waiting for their group's writes (IngestQueue)."""

    __slots__ = ("docs", "kiosk", "site", "stored", "duplicates", "error", "done")  # done: see IngestQueue

    def __init__(self, docs: list[dict], kiosk: dict, site: dict):
        self.docs, self.kiosk, self.site = docs, kiosk, site
        self.stored: list[dict] = []
        self.duplicates: list[str] = []
        self.error: BaseException | None = None
        self.done = GreenEvent()


class IngestQueue:
    """Group commit: the submits that arrive while rounds of writes are running are written together.

    A round costs the same few round trips (batch document, insert_many, kiosks, counters bulk_write, alert
    window) whatever the number of submits in it, instead of those per submit; its batch document is closed
    in the same round trip as the next round writes its own, or at once when no round follows. Up to
    `rounds` rounds run at once (one is best on nx-27017, which serialises the writes: bigger rounds). A
    submit that finds fewer rounds running starts one at once (no wait when idle); otherwise it queues, and
    when a round ends, its leader hands the lead to the first queued submit, which takes everything queued.
    A worker replies only after its round has stored its votes and applied their counters; a round that
    fails fails each of its submits (the kiosks resend; what was stored is a duplicate then, counted once by
    the recovery of the round's batch document). When a round hands the lead on, its submits reply only once
    the next round has sent its votes (or after RELEASE_AFTER): green threads run one at a time, and replies
    (and their metrics) run between the next round's first, short write and its answer otherwise, holding
    it up; while the database writes the votes, they cost nothing. Green threads of one process: no lock is
    needed, as no green thread switch happens between reading and changing this state.

    `writer` is what runs a round (`Rounds`, or a fake in the tests): `write(group, close, sent)`,
    `finish(close)` and `observe(stored, counted)`.
    """

    def __init__(self, rounds: int = 1, max_votes: int = 2000):
        self.rounds = rounds
        self.max_votes = max_votes
        self.queued: list[Submit] = []
        self.running = 0
        self.to_close: list[tuple[str, list[str]]] = []  # rounds done whose batch document is still open
        self.waiting: list[list[Submit]] = []  # rounds done whose submits wait to reply (see _release)

    def submit(self, writer, job: Submit) -> Submit:
        """Store the submit's votes (in a round with others); returns it with `stored` and `duplicates` set."""
        if self.running < self.rounds:  # then nothing is queued either
            self.running += 1
            self._lead(writer, job)
        else:
            self.queued.append(job)
            if job.done.wait() == "lead":  # sent once: "lead" (our turn to lead a round) or "done"
                self._lead(writer, job)
        if job.error is not None:
            raise job.error
        return job

    def _lead(self, writer, first: Submit) -> None:
        group, votes = [first], len(first.docs)
        while self.queued and votes + len(self.queued[0].docs) <= self.max_votes:
            job = self.queued.pop(0)
            group.append(job)
            votes += len(job.docs)
        counted = None
        close, self.to_close = self.to_close, []
        try:
            counted = writer.write(group, close, self._release)
            self.to_close.append((counted[2], counted[3]))
        except BaseException as exc:  # every submit of the round fails with it (the leader re-raises it)
            self.to_close.extend(close)  # maybe not closed: the next round closes them (again: harmless)
            other = exc if isinstance(exc, Exception) else ServiceUnavailable("Le service s'arrête.")
            for job in group:
                job.error = other
            first.error = exc
        finally:
            self._release()  # when the round failed before sending its votes
            handed = bool(self.queued)
            if handed:  # the next round, led by the first queued submit, releases this one's submits
                first.done = GreenEvent()
                self.waiting.append(group)
                eventlet.spawn_after(RELEASE_AFTER, self._release, group)  # if its first write is slow
                self.queued.pop(0).done.send("lead")
            else:
                self.running -= 1
                for job in group[1:]:
                    job.done.send("done")
        if self.running == 0 and self.to_close:  # no round follows to close them: now
            close, self.to_close = self.to_close, []
            try:
                writer.finish(close)
            except Exception:  # noqa: BLE001 - still open: the next round (or recovery) closes them
                log.warning("closing %d batches failed; left to the next round", len(close), exc_info=True)
                self.to_close.extend(close)
        if handed:
            first.done.wait()
        if counted is not None:
            writer.observe(counted[0], counted[1])

    def _release(self, group: list[Submit] | None = None) -> None:
        """Let the submits of rounds done reply: all of them (a round is sending its votes), or one round's."""
        if group is None:
            groups, self.waiting = self.waiting, []
        elif any(g is group for g in self.waiting):
            groups, self.waiting = [group], [g for g in self.waiting if g is not group]
        else:
            return  # released already
        for g in groups:
            for job in g:
                job.done.send("done")


class IngestState:
    """What a service process keeps between rounds: its kiosk cache, its queue of submits, its gauges' clock."""

    def __init__(self, store, rounds: int = 1):
        self.kiosks = KioskCache()
        self.queue = IngestQueue(rounds=rounds)
        self.gauges = HappyIndexGauges(store)


class Ingest(DependencyProvider):
    """Injects the container's IngestState, made at the first worker over the service's store (the container's
    Mongo dependency: set up by then, whatever the order nameko sets its extensions up in)."""

    state: IngestState | None = None

    def get_dependency(self, worker_ctx):
        if self.state is None:
            store = next(d.repo for d in self.container.dependencies if isinstance(d, Mongo))
            self.state = IngestState(store, rounds=service_settings(self.container).ingest_rounds)
        return self.state


class Rounds:
    """The writes of a round of submits, and of the recovery of a batch a crash left half-done: votes, the
    kiosks' latest presses, counters, batch documents, then the alerts and gauges of the sites counted."""

    def __init__(self, store, alerts: Alerts, gauges: HappyIndexGauges):
        self.store, self.alerts, self.gauges = store, alerts, gauges

    def write(self, jobs: list[Submit], close: list, sent=lambda: None) -> tuple[list[dict], float, str, list[str]]:
        """One round of writes for the votes of several submits: batch document (closing those of the previous
        rounds), votes, the kiosks' latest presses, counters; each submit learns which of its votes it stored.
        Returns the votes stored and when they were counted (for the metrics), the batch and its counters: the
        batch is closed by the next round, or at once when none follows."""
        docs = [d for job in jobs for d in job.docs]
        batch = self.store.open_batch([d["_id"] for d in docs], close)
        for d in docs:
            d["batch"] = batch
        sent()  # wakes green threads that run once this one waits for the insert, after sending it
        failed = self.store.insert_votes_indexed(docs)
        position = 0
        stored: list[dict] = []
        last_pressed: dict[str, float] = {}
        sites: dict[str, dict] = {}
        kiosks: dict[str, dict] = {}
        for job in jobs:
            job.stored, job.duplicates = [], []
            for d in job.docs:
                if position in failed:
                    job.duplicates.append(d["_id"])
                else:
                    job.stored.append(d)
                    kid = d["kiosk_id"]
                    if d["pressed_ts"] > last_pressed.get(kid, float("-inf")):
                        last_pressed[kid] = d["pressed_ts"]
                position += 1
            stored.extend(job.stored)
            sites.setdefault(job.site["_id"], job.site)
            kiosks.setdefault(job.kiosk["_id"], job.kiosk)
        if last_pressed:
            self.store.note_kiosks(last_pressed)
            for job in jobs:  # every cached copy of the kiosk follows (see KioskCache)
                last = last_pressed.get(job.kiosk["_id"])
                if last is not None and (job.kiosk.get("last_pressed_at") is None
                                         or last > job.kiosk["last_pressed_at"].timestamp()):
                    job.kiosk["last_pressed_at"] = domain.from_ts(last)
        counted, counter_ids = self.count(batch, stored, sites, kiosks, close=False)
        for job in jobs:  # the alert state seen for a site (a kiosk) holds for every copy of it in the group
            if job.site is not sites[job.site["_id"]]:
                job.site["open_alert_id"] = sites[job.site["_id"]].get("open_alert_id")
            if job.kiosk is not kiosks[job.kiosk["_id"]]:
                job.kiosk["open_alert_id"] = kiosks[job.kiosk["_id"]].get("open_alert_id")
        return stored, counted, batch, counter_ids

    def finish(self, close: list[tuple[str, list[str]]]) -> None:
        self.store.finish_batches(close)

    @staticmethod
    def observe(stored: list[dict], counted: float) -> None:
        observe_counted(stored, counted)

    def count(self, batch: str, stored: list[dict], sites: dict[str, dict], kiosks: dict[str, dict],
              close: bool = True) -> tuple[float, list[str]]:
        """Apply the counters of the votes a batch stored (each names its kiosk, site, scale and `pressed_ts`),
        close the batch (unless the caller will) and evaluate the alerts of the sites and kiosks with counted
        votes; returns when (epoch seconds, for `observe`) and the counters touched."""
        increments = domain.votes_increments(stored)
        self.store.apply_counters(batch, increments)
        if close:
            self.store.finish_batch(batch, increments.keys())
        counted_at = utcnow()
        per_site: dict[str, set[str]] = {}
        for d in stored:
            if not d.get("repeated"):
                per_site.setdefault(d["site_id"], set()).add(d["kiosk_id"])
        for site_id in sorted(per_site):
            site = sites[site_id]
            self.alerts.evaluate(site, counted_at, [kiosks[k] for k in sorted(per_site[site_id]) if k in kiosks])
            self.gauges.after_count(site_id, counted_at)
        return counted_at.timestamp(), list(increments)

    def recover(self, horizon: datetime) -> int:
        """Count the batches a crash left half-done before `horizon` (idempotent: the counters' markers skip
        what was applied); returns how many."""
        batches = self.store.stale_batches(horizon)
        for batch in batches:
            stored = self.store.votes_of_batch(batch)
            sites, kiosks = {}, {}
            for site_id in {d["site_id"] for d in stored}:
                sites[site_id] = self.store.get_site(site_id) or {"_id": site_id, "name": "", "commune": "x"}
            for kiosk_id in {d["kiosk_id"] for d in stored}:
                kiosk = self.store.get_kiosk(kiosk_id)
                if kiosk is not None:
                    kiosks[kiosk_id] = kiosk
            log.info("recovering batch %s (%s votes)", batch["_id"], len(stored))
            self.observe(stored, self.count(batch["_id"], stored, sites, kiosks)[0])
        return len(batches)
