"""JSON-lines logging with the service, the entrypoint and the gateway's correlation id."""
from __future__ import annotations

import threading

from nameko.extensions import DependencyProvider

from parvis import logjson

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
    """Makes the running worker known to the log formatter, for every entrypoint of the service."""

    def get_dependency(self, worker_ctx):
        return None

    def worker_setup(self, worker_ctx):
        _current.worker_ctx = worker_ctx

    def worker_teardown(self, worker_ctx):
        _current.worker_ctx = None
