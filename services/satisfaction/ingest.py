"""Exactly-once vote ingest: the kiosks' cache, the group commit of submits, and the writes of a round.

The counting scheme itself (batch documents, counters guarded by markers, recovery) is the store's; see
store.py. Here: what a round writes (`Rounds`) and the state a process keeps between rounds (`IngestState`, one per
service container, injected as `self.ingest`); which submits share a round is the group commit's
(services/common/groupcommit.py: `IngestQueue`).
"""
from __future__ import annotations

import logging
import time
from datetime import datetime

from eventlet.event import Event as GreenEvent
from nameko.extensions import DependencyProvider

from services.common.groupcommit import RELEASE_AFTER, IngestQueue  # noqa: F401 - the queue's home is common
from services.common.mongo import Mongo, utcnow
from services.common.settings import service_settings
from services.satisfaction import domain
from services.satisfaction.alerts import Alerts
from services.satisfaction.metrics import HappyIndexGauges, observe_counted

log = logging.getLogger(__name__)

KIOSK_CACHE_SECONDS = 5.0


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
