"""JSON-lines logging with the service, the entrypoint and the gateway's correlation id."""
from __future__ import annotations

import logging
import threading
import time

from nameko.extensions import DependencyProvider

from core import logjson

# Under eventlet's monkey patching, threading.local is local to each green thread (worker).
_current = threading.local()


def current_worker():
    return getattr(_current, "worker_ctx", None)


class ServiceJsonFormatter(logjson.JsonFormatter):
    def context(self) -> dict:
        ctx = current_worker()
        if ctx is None:
            return {}
        return {"entrypoint": ctx.entrypoint.method_name, "correlation_id": ctx.data.get("correlation_id"),
                "call_id": ctx.call_id}


def configure(service: str, level: str = "INFO") -> None:
    logjson.configure(ServiceJsonFormatter(service), level, quiet=("amqp", "kombu", "pymongo", "nameko.containers"))


class WorkerLogContext(DependencyProvider):
    """Makes the running worker known to the log formatter, and logs one line per entrypoint run
    (an access log: entrypoint, outcome, duration, correlation id)."""

    def setup(self):
        self.log = logging.getLogger(f"parvis.{self.container.service_name}")
        self._started: dict[int, float] = {}

    def get_dependency(self, worker_ctx):
        return None

    def worker_setup(self, worker_ctx):
        _current.worker_ctx = worker_ctx
        self._started[id(worker_ctx)] = time.perf_counter()

    def worker_result(self, worker_ctx, result=None, exc_info=None):
        ms = (time.perf_counter() - self._started.pop(id(worker_ctx), time.perf_counter())) * 1000
        name = worker_ctx.entrypoint.method_name
        if exc_info is None:
            self.log.info("%s ok in %.1f ms", name, ms)
        else:
            self.log.warning("%s failed in %.1f ms: %s: %s", name, ms, exc_info[0].__name__, exc_info[1])

    def worker_teardown(self, worker_ctx):
        _current.worker_ctx = None
