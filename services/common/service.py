"""The base every Parvis service class extends: logs, metrics, caller, and the `ping` RPC."""
from __future__ import annotations

import time
from datetime import datetime, timezone

from nameko.amqp.publish import Publisher
from nameko.rpc import Responder, rpc

import core
from contracts.platform import PingReply
from services.common.logs import WorkerLogContext
from services.common.metrics import Metrics
from services.common.rpc import CallerProvider
from services.common.settings import Settings


class ReplyPublisher(Publisher):
    """RPC replies without publisher confirms.

    A reply goes to the caller's exclusive, non-durable reply queue: a confirm makes it no safer (if
    the broker loses it, the caller times out either way) but costs a broker round trip per call,
    the largest part of a short RPC's latency here. Events, retries and dead letters keep confirms.
    """

    use_confirms = False


Responder.publisher_cls = ReplyPublisher  # nameko's hook for the class that publishes replies


# How long a database check stays valid for `ping`: readiness probes and load balancers may ping
# many times a second; one database round trip a second tells as much.
DATABASE_CHECK_TTL = 1.0


class ServiceBase:
    """Subclasses set `name` and a `store = Mongo(TheirRepository)`; `ping` checks the database."""

    name: str
    log_context = WorkerLogContext()
    metrics = Metrics()
    caller = CallerProvider()
    settings = Settings()  # the platform's; a service with settings of its own declares Settings(TheirSettings)

    @rpc
    def ping(self) -> dict:
        return PingReply(service=self.name, version=core.__version__, time=datetime.now(timezone.utc),
                         database=self._database_ok()).model_dump(mode="json")

    def _database_ok(self) -> bool:
        # The cache lives on the repository, which the Mongo provider shares across workers.
        checked_at, ok = getattr(self.store, "_ping_cache", (0.0, False))
        now = time.monotonic()
        if now - checked_at < DATABASE_CHECK_TTL:
            return ok
        try:
            self.store.ping()
            ok = True
        except Exception:  # noqa: BLE001 - reported as database: false, not raised
            ok = False
        self.store._ping_cache = (now, ok)
        return ok
