"""Runs one nameko service in this process, configured from the environment (`parvis service NAME`)."""
from __future__ import annotations

import warnings

# eventlet 0.41 warns at import that it is deprecated: known (nameko 2 needs it), said once here.
warnings.filterwarnings("ignore", message=r"\s*Eventlet is deprecated")

import eventlet  # noqa: E402

eventlet.monkey_patch()  # first: nameko's pytest plugin no longer does it, and neither does import

import importlib  # noqa: E402
import logging  # noqa: E402
import signal  # noqa: E402

from nameko.runners import ServiceRunner  # noqa: E402

from core.settings import ServiceSettings  # noqa: E402
from services.common import logs  # noqa: E402
from services.common.settings import Settings  # noqa: E402

SERVICE_CLASSES = {
    "agenda": "services.agenda.service:AgendaService",
    "consultation": "services.consultation.service:ConsultationService",
    "satisfaction": "services.satisfaction.service:SatisfactionService",
    "payment_link": "services.payment_link.service:PaymentLinkService",
    "notification": "services.notification.service:NotificationService",
}


def load_class(path: str):
    module, _, cls = path.partition(":")
    return getattr(importlib.import_module(module), cls)


def settings_of(service_cls) -> ServiceSettings:
    """The settings the service declares (its `Settings` dependency's class), read from the environment."""
    declared = getattr(service_cls, "settings", None)
    cls = declared.settings_cls if isinstance(declared, Settings) else None
    return cls.from_env() if cls is not None else ServiceSettings.for_service(service_cls.name)


def nameko_config(settings: ServiceSettings) -> dict:
    return {"AMQP_URI": settings.amqp_url, "max_workers": settings.max_workers, "serializer": "json",
            "HEARTBEAT": 30}


def run(name: str) -> None:
    if name not in SERVICE_CLASSES:
        raise SystemExit(f"unknown service {name!r}; one of: {', '.join(SERVICE_CLASSES)}")
    service_cls = load_class(SERVICE_CLASSES[name])
    settings = settings_of(service_cls)
    logs.configure(name, settings.log_level)
    log = logging.getLogger("parvis.runner")
    runner = ServiceRunner(nameko_config(settings))
    runner.add_service(service_cls)

    stopping = []

    def shutdown(signum, frame):
        if stopping:  # once: nameko's timers refuse a second stop (and would print tracebacks)
            return
        stopping.append(signum)
        log.info("stopping on %s", signal.Signals(signum).name)
        eventlet.spawn_n(runner.stop)

    signal.signal(signal.SIGTERM, shutdown)
    signal.signal(signal.SIGINT, shutdown)
    runner.start()
    log.info("service %s started", name, extra={})
    print(f"PARVIS-READY {name}", flush=True)
    try:
        runner.wait()
    except KeyboardInterrupt:
        if not stopping:
            runner.stop()
    log.info("service %s stopped", name)
