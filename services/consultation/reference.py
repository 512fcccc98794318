"""The Sicoval's communes, as the agenda service (which owns them) lists them: asked by RPC only when a consultation
names a commune (its scope, a meeting, a budget's heading), kept for ten minutes by the process."""
from __future__ import annotations

import time

import eventlet
from nameko.extensions import DependencyProvider

from contracts.errors import ServiceUnavailable

KEEP_SECONDS = 600.0
ASK_TIMEOUT = 5.0


class CommuneList:
    """A container of commune slugs that asks the agenda the first time something is looked up in it."""

    def __init__(self, holder: "Communes", agenda):
        self.holder, self.agenda = holder, agenda

    def __contains__(self, slug: str) -> bool:
        return slug in self.holder.slugs(self.agenda)


class Communes(DependencyProvider):
    """Injects a CommuneList over the service's `agenda` RpcProxy (given per worker)."""

    def setup(self):
        self.cached: tuple[float, frozenset[str]] | None = None

    def slugs(self, agenda) -> frozenset[str]:
        if self.cached is not None and self.cached[0] > time.monotonic():
            return self.cached[1]
        try:
            with eventlet.Timeout(ASK_TIMEOUT):
                rows = agenda.list_communes.call_async().result()
        except eventlet.Timeout:
            raise ServiceUnavailable("La liste des communes n'est pas disponible (service agenda) : réessayez.",
                                     "scope") from None
        slugs = frozenset(r["slug"] for r in rows)
        if slugs:  # none yet: the reference data is being imported (make run's seed); ask again next time
            self.cached = (time.monotonic() + KEEP_SECONDS, slugs)
        return slugs

    def get_dependency(self, worker_ctx):
        return self
