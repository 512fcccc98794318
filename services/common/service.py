"""The base every Parvis service class extends: logs, metrics, caller, and the `ping` RPC."""
from __future__ import annotations

import logging
import time
from datetime import datetime, timezone

from amqp.exceptions import AMQPError
from kombu.exceptions import KombuError
from nameko.amqp.publish import Publisher
from nameko.constants import NON_PERSISTENT
from nameko.rpc import Responder, rpc

import core
from contracts.platform import PingReply
from services.common.logs import WorkerLogContext
from services.common.metrics import Metrics
from services.common.rpc import CallerProvider
from services.common.settings import Settings


log = logging.getLogger(__name__)


class ReplyPublisher(Publisher):
    """RPC replies: transient, without publisher confirms, and never fatal.

    A reply goes to the caller's exclusive, non-durable reply queue: a confirm makes it no safer (if
    the broker loses it, the caller times out either way) but costs a broker round trip per call,
    the largest part of a short RPC's latency here. Events, retries and dead letters keep confirms.

    A reply that cannot be sent because the broker is away is dropped with a warning: its caller's reply
    queue went with the broker and the caller was already answered SERVICE_UNAVAILABLE (gateway/rpc.py).
    nameko lets that error escape the worker, which kills the whole container (the service exits): one lost
    reply must not stop a service that will reconnect by itself. One quick retry covers a stale pooled
    connection to a broker that is up.
    """

    use_confirms = False
    delivery_mode = NON_PERSISTENT
    retry_policy = {"max_retries": 1, "interval_start": 0.1, "interval_step": 0.2, "interval_max": 0.3}

    def publish(self, payload, **kwargs):
        try:
            return super().publish(payload, **kwargs)
        except (KombuError, AMQPError, OSError) as exc:
            log.warning("RPC reply not sent, the broker is away (the caller had its answer): %s", exc)
            return None


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
