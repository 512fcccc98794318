"""Timers, and the lease that makes an exclusive timer run in one replica at a time.

Every timer says what it does when several replicas of its service run (`parvis up --replicas 2`, more
containers in production), with `exclusive`:
- `@timer(5, exclusive=True)`: work on shared data that must be done once (recover half-done batches, announce
  scheduled publications, send the day's digests). The timer's tick runs only in the replica that holds the
  timer's *lease*: a document `<service>.<method>` in the service's `_leases` collection with an `owner` (this
  container) and an `until` (epoch seconds), taken by a conditional update — the holder renews it, anybody may
  take it once it has run out. The holder keeps it from tick to tick (no hand-over at every tick); a replica that
  is stopped releases it (another takes it at its next tick); one killed -9 leaves it to expire after `lease`
  seconds (by default three intervals, at least 15 s), then another replica takes over. While a tick runs
  longer than a third of the lease, the lease is renewed beside it, so a long tick is never run twice at once.
- `@timer(1, exclusive=False)`: per-process work that every replica must do for itself (refresh its own
  in-memory snapshot, its own gauges), or work already shared by claims of its own items (the notification
  dispatcher claims each message by a conditional update: several replicas send more, never twice).

Clocks: `until` is written with the acquirer's clock and compared with the next one's; replicas' clocks a few
seconds apart only shorten or lengthen a take-over by as much (NTP keeps them far closer).
"""
from __future__ import annotations

import logging
import os
import socket
import time
import uuid

import eventlet
from nameko.extensions import SharedExtension
from nameko.timer import Timer
from prometheus_client import Gauge
from pymongo.errors import DuplicateKeyError

from services.common.mongo import database_name, mongo_client
from services.common.settings import service_settings

log = logging.getLogger(__name__)

LEASES = "_leases"
MIN_LEASE = 15.0  # seconds: a lease shorter than this would be lost to a pause of the process (GC, a slow write)

LEASE_HELD = Gauge("parvis_timer_lease_held", "1 where this process holds the lease of an exclusive timer",
                   ["service", "timer"])


class LeaseStore:
    """Leases in one collection: `{_id: name, owner, until, taken_at}`; every change is one conditional write."""

    def __init__(self, collection, owner: str):
        self.coll, self.owner = collection, owner

    def acquire(self, name: str, ttl: float, now: float | None = None) -> bool:
        """Take or renew the lease `name` for `ttl` seconds; True if this owner holds it now."""
        now = time.time() if now is None else now
        renewed = self.coll.update_one({"_id": name, "owner": self.owner}, {"$set": {"until": now + ttl}})
        if renewed.matched_count:
            return True
        taken = self.coll.update_one({"_id": name, "until": {"$lt": now}},
                                     {"$set": {"owner": self.owner, "until": now + ttl, "taken_at": now}})
        if taken.matched_count:
            return True
        try:
            self.coll.insert_one({"_id": name, "owner": self.owner, "until": now + ttl, "taken_at": now})
            return True
        except DuplicateKeyError:  # held by another owner, and not run out
            return False

    def release(self, name: str) -> None:
        """Let another owner take it at once (only if this owner still holds it)."""
        self.coll.update_one({"_id": name, "owner": self.owner}, {"$set": {"until": 0.0}})

    def holder(self, name: str) -> dict | None:
        return self.coll.find_one({"_id": name})


class TimerLeases(SharedExtension):
    """Per container: the lease store over the service's database, under this container's identity."""

    def setup(self):
        settings = service_settings(self.container)
        self.client = mongo_client(settings.effective_mongo_url)
        owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.store = LeaseStore(self.client[database_name(self.container)][LEASES], owner)

    def stop(self):
        self.client.close()

    def kill(self):
        self.client.close()


class ParvisTimer(Timer):
    """nameko's timer, its interval given or read from a setting, and exclusive across replicas when asked."""

    leases = TimerLeases()

    def __init__(self, interval: float | str, eager: bool = False, *, exclusive: bool, lease: float | None = None,
                 **kwargs):
        self.setting = interval if isinstance(interval, str) else None
        super().__init__(0.0 if self.setting else float(interval), eager=eager, **kwargs)
        self.exclusive = exclusive
        self.lease_seconds = lease
        self.held = False
        self._renewer = None

    def setup(self):
        if self.setting:
            self.interval = float(getattr(service_settings(self.container), self.setting))
        self.lease_name = f"{self.container.service_name}.{self.method_name}"
        self.ttl = self.lease_seconds or max(3 * self.interval, MIN_LEASE)
        super().setup()

    def _hold(self, held: bool) -> None:
        if held != self.held:
            log.info("%s lease %s", "took the" if held else "no longer holds the", self.lease_name)
        self.held = held
        LEASE_HELD.labels(self.container.service_name, self.method_name).set(1 if held else 0)

    def handle_timer_tick(self):
        if not self.exclusive:
            return super().handle_timer_tick()
        try:
            held = self.leases.store.acquire(self.lease_name, self.ttl)
        except Exception as exc:  # noqa: BLE001 - the database is away: nobody can tell who holds it; skip
            log.warning("lease %s not checked (%s): tick skipped", self.lease_name, exc)
            held = False
        self._hold(held)
        if not held:
            self.worker_complete.send()  # nameko's loop waits for the tick's worker: there is none
            return None
        self._renewer = self.container.spawn_managed_thread(self._renew, identifier=f"lease:{self.lease_name}")
        return super().handle_timer_tick()

    def _renew(self) -> None:
        """While a tick runs: renew every third of the lease, so that a long tick keeps it."""
        while True:
            eventlet.sleep(self.ttl / 3)
            try:
                if not self.leases.store.acquire(self.lease_name, self.ttl):
                    log.error("lease %s lost while its tick runs", self.lease_name)
                    return
            except Exception as exc:  # noqa: BLE001 - retried at the next third
                log.warning("lease %s not renewed: %s", self.lease_name, exc)

    def handle_result(self, worker_ctx, result, exc_info):
        renewer, self._renewer = self._renewer, None
        if renewer is not None:
            renewer.kill()
        return super().handle_result(worker_ctx, result, exc_info)

    def stop(self):
        super().stop()
        if self.exclusive and self.held:
            try:
                self.leases.store.release(self.lease_name)
            except Exception as exc:  # noqa: BLE001 - it runs out by itself
                log.warning("lease %s not released: %s", self.lease_name, exc)
            self._hold(False)


def timer(interval: float | str, eager: bool = False, *, exclusive: bool, lease: float | None = None):
    """`@timer(30, exclusive=True)`, or `@timer("watch_interval", exclusive=False)` for an interval read from the
    settings. `exclusive` has no default: a timer says whether its work must be done once across replicas (see
    the module's docstring); `lease` overrides the lease's length in seconds."""
    return ParvisTimer.decorator(interval, eager=eager, exclusive=exclusive, lease=lease)
