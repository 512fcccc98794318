"""Prometheus RED metrics for every entrypoint (RPC, event handler, timer) and a /metrics port."""
from __future__ import annotations

import logging
import time

from nameko.extensions import DependencyProvider
from prometheus_client import Counter, Gauge, Histogram, disable_created_metrics, start_http_server

from core.logjson import SLO_BUCKETS
from services.common.settings import service_settings

log = logging.getLogger(__name__)
disable_created_metrics()  # the *_created series double the output and no dashboard reads them


ENTRYPOINT_CALLS = Counter(
    "parvis_entrypoint_calls_total", "Entrypoint executions by outcome",
    ["service", "kind", "entrypoint", "outcome"],
)
ENTRYPOINT_DURATION = Histogram(
    "parvis_entrypoint_duration_seconds", "Entrypoint execution time",
    ["service", "kind", "entrypoint"], buckets=SLO_BUCKETS,
)
WORKERS_IN_FLIGHT = Gauge("parvis_workers_in_flight", "Workers running now", ["service"])
WORKERS_MAX = Gauge("parvis_workers_max", "Worker pool size (nameko max_workers)", ["service"])
EVENTS_PUBLISHED = Counter("parvis_events_published_total", "Events published from the outbox", ["service", "type"])
OUTBOX_PENDING = Gauge("parvis_outbox_pending", "Outbox events written and not yet confirmed by the broker", ["service"])
OUTBOX_LAG = Histogram("parvis_outbox_lag_seconds", "Time from the write to the broker's confirm",
                       ["service"], buckets=SLO_BUCKETS)
EVENTS_HANDLED = Counter(
    "parvis_events_handled_total", "Events received by handlers, by outcome "
    "(ok, duplicate, retried, dead_lettered, invalid)", ["service", "handler", "outcome"],
)


def _kind(entrypoint) -> str:
    name = type(entrypoint).__name__
    return {"Rpc": "rpc", "ReliableEventHandler": "event", "EventHandler": "event", "Timer": "timer"}.get(name, name.lower())


class Metrics(DependencyProvider):
    """Times every worker of the service and serves /metrics on the service's own port."""

    _servers: dict[int, object] = {}

    def setup(self):
        service = self.container.service_name
        self.service = service
        settings = service_settings(self.container)
        port = settings.metrics_port
        if port and port not in Metrics._servers:
            try:
                Metrics._servers[port] = start_http_server(port, addr=settings.metrics_addr)
            except OSError as exc:  # a service without its metrics is blind: stop, and say why
                raise RuntimeError(f"metrics port {settings.metrics_addr}:{port} unavailable ({exc}): another "
                                   "process uses it (another Parvis?); set PARVIS_METRICS_PORT_BASE or "
                                   "PARVIS_METRICS_PORT") from None
            log.info("metrics on %s:%s/metrics", settings.metrics_addr, port)
        WORKERS_MAX.labels(service).set(self.container.max_workers)
        self._started: dict[int, float] = {}

    def get_dependency(self, worker_ctx):
        return None

    def worker_setup(self, worker_ctx):
        self._started[id(worker_ctx)] = time.perf_counter()
        WORKERS_IN_FLIGHT.labels(self.service).inc()

    def worker_result(self, worker_ctx, result=None, exc_info=None):
        started = self._started.pop(id(worker_ctx), None)
        WORKERS_IN_FLIGHT.labels(self.service).dec()
        ep = worker_ctx.entrypoint
        kind = _kind(ep)
        outcome = "ok"
        if exc_info is not None:
            from contracts.errors import ParvisError

            # A refused request is the caller's error, not the service's: counted apart.
            outcome = "rejected" if isinstance(exc_info[1], ParvisError) else "error"
        ENTRYPOINT_CALLS.labels(self.service, kind, ep.method_name, outcome).inc()
        if started is not None:
            ENTRYPOINT_DURATION.labels(self.service, kind, ep.method_name).observe(time.perf_counter() - started)
