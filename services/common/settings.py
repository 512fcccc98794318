"""A service's settings, built from the environment once per container and injected (`self.settings`).

`ServiceBase` declares `settings = Settings()` (the platform's `ServiceSettings`); a service with settings of
its own declares `settings = Settings(TheirSettings)`. The other dependency providers (database, events,
metrics) and timers read the same object through `service_settings(container)`, so that a container reads
the environment once, whatever the order nameko sets its extensions up in.
"""
from __future__ import annotations

from nameko.extensions import DependencyProvider

from core.settings import ServiceSettings


class Settings(DependencyProvider):
    def __init__(self, settings_cls: type[ServiceSettings] | None = None):
        self.settings_cls = settings_cls

    def get_dependency(self, worker_ctx):
        return service_settings(self.container)


def service_settings(container) -> ServiceSettings:
    """The container's settings: its `Settings` dependency's class, else the platform's, read once."""
    cached = getattr(container, "_parvis_settings", None)
    if cached is None:
        cls = next((d.settings_cls for d in container.dependencies if isinstance(d, Settings) and d.settings_cls),
                   None)
        cached = cls.from_env() if cls is not None else ServiceSettings.for_service(container.service_name)
        container._parvis_settings = cached
    return cached


def timer(interval, eager: bool = False, *, exclusive: bool, lease: float | None = None):
    """Moved to services/common/timers.py (with the lease of exclusive timers); kept here for older imports."""
    from services.common.timers import timer as _timer

    return _timer(interval, eager, exclusive=exclusive, lease=lease)
