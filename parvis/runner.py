"""Runs one nameko service in this process, configured from the environment (`parvis service NAME`)."""
from __future__ import annotations

import warnings

# eventlet 0.41 warns at import that it is deprecated: known (nameko 2 needs it), said once here.
warnings.filterwarnings("ignore", message=r"\s*Eventlet is deprecated")

import eventlet  # noqa: E402

eventlet.monkey_patch()  # first: nameko's pytest plugin no longer does it, and neither does import

import importlib  # noqa: E402
import logging  # noqa: E402
import os  # noqa: E402
import signal  # noqa: E402

from nameko.runners import ServiceRunner  # noqa: E402

from parvis import config  # noqa: E402
from services.common import logs  # noqa: E402

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


def nameko_config(settings: config.Settings, name: str | None = None) -> dict:
    return {
        "AMQP_URI": settings.amqp_url,
        "max_workers": config.max_workers(name),
        "serializer": "json",
        "HEARTBEAT": 30,
        "PARVIS_OUTBOX_HOLD": os.environ.get("PARVIS_OUTBOX_HOLD", "0"),
    }


def run(name: str) -> None:
    if name not in SERVICE_CLASSES:
        raise SystemExit(f"unknown service {name!r}; one of: {', '.join(SERVICE_CLASSES)}")
    settings = config.load()
    logs.configure(name, os.environ.get("PARVIS_LOG_LEVEL", "INFO"))
    log = logging.getLogger("parvis.runner")
    runner = ServiceRunner(nameko_config(settings, name))
    runner.add_service(load_class(SERVICE_CLASSES[name]))

    def shutdown(signum, frame):
        log.info("stopping on signal %s", signum)
        eventlet.spawn_n(runner.stop)

    signal.signal(signal.SIGTERM, shutdown)
    signal.signal(signal.SIGINT, shutdown)
    runner.start()
    log.info("service %s started", name, extra={})
    print(f"PARVIS-READY {name}", flush=True)
    try:
        runner.wait()
    except KeyboardInterrupt:
        runner.stop()
