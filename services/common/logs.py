"""JSON-lines logging with the service, the entrypoint and the gateway's correlation id."""
from __future__ import annotations

import logging
import threading
import time

from nameko.extensions import DependencyProvider
from nameko.timer import Timer

from contracts.errors import ParvisError

from core import logjson

BACKGROUND = "background"  # context data a caller sets on its polls (e.g. the gateway's syncs): logged at DEBUG

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


class _NoExpectedErrors(logging.Filter):
    """nameko logs a refusal of ours (an entrypoint's expected exception) as a warning with its traceback; the
    worker's own line (WorkerLogContext) already says it in one line."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("(expected) error handling worker")


def configure(service: str, level: str = "INFO") -> None:
    logjson.configure(ServiceJsonFormatter(service), level, quiet=("amqp", "kombu", "pymongo", "nameko.containers"))
    logging.getLogger("nameko.containers").addFilter(_NoExpectedErrors())


class WorkerLogContext(DependencyProvider):
    """Makes the running worker known to the log formatter, and logs one line per entrypoint run (entrypoint,
    outcome, duration, correlation id), at the level a person needs it: INFO for work done (a request answered,
    an event handled, a timer that returned something), DEBUG for background polls and timers that found nothing
    to do, INFO for a refusal (contracts/errors.py: the caller's mistake, in one line), ERROR with its traceback
    for a fault."""

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
        entrypoint = worker_ctx.entrypoint
        name = entrypoint.method_name
        if exc_info is None:
            # Background polls (the gateway's syncs and health checks) and timers that found nothing: DEBUG.
            work_done = ((isinstance(entrypoint, Timer) and result)
                         or (not isinstance(entrypoint, Timer) and not worker_ctx.data.get(BACKGROUND)))
            self.log.log(logging.INFO if work_done else logging.DEBUG, "%s ok in %.1f ms%s", name, ms,
                         f": {result}" if isinstance(entrypoint, Timer) and result else "")
        elif isinstance(exc_info[1], ParvisError) and exc_info[1].code != "INTERNAL_SERVER_ERROR":
            self.log.info("%s refused in %.1f ms: %s: %s", name, ms, exc_info[1].code, exc_info[1])
        else:
            self.log.error("%s failed in %.1f ms: %s: %s", name, ms, exc_info[0].__name__, exc_info[1],
                           exc_info=exc_info)

    def worker_teardown(self, worker_ctx):
        _current.worker_ctx = None
