"""The base every Parvis service class extends: logs, metrics, caller, and the `ping` RPC."""
from __future__ import annotations

from datetime import datetime, timezone

from nameko.rpc import rpc

import parvis
from contracts.platform import PingReply
from services.common.logs import WorkerLogContext
from services.common.metrics import Metrics
from services.common.rpc import CallerProvider


class ServiceBase:
    """Subclasses set `name` and a `store = Mongo(TheirRepository)`; `ping` checks the database."""

    name: str
    log_context = WorkerLogContext()
    metrics = Metrics()
    caller = CallerProvider()

    @rpc
    def ping(self) -> dict:
        database = True
        try:
            self.store.ping()
        except Exception:
            database = False
        return PingReply(service=self.name, version=parvis.__version__, time=datetime.now(timezone.utc),
                         database=database).model_dump(mode="json")
