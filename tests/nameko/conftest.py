"""The nameko suite: services in this process with nameko's container_factory and worker_factory.

eventlet must patch the interpreter before anything else is imported, and nameko's pytest plugin
no longer does it: done here, first thing. Runs in its own pytest process (see the Makefile).
"""
import warnings

warnings.filterwarnings("ignore", message=r"\s*Eventlet is deprecated")

import eventlet  # noqa: E402

eventlet.monkey_patch()

import pytest  # noqa: E402

from tests.fixtures import broker, mongo  # noqa: E402,F401
from tests.support import TEST_SECRET  # noqa: E402


@pytest.fixture
def parvis_env(monkeypatch, mongo, broker, tmp_path):
    """What the settings (core/settings.py) read, pointed at the session's database and vhost."""
    monkeypatch.setenv("MONGO_URL", mongo.url)
    monkeypatch.setenv("AMQP_URL", broker.url)
    monkeypatch.setenv("PARVIS_SECRET", TEST_SECRET)
    monkeypatch.setenv("PARVIS_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("PARVIS_RETRY_DELAYS", "0.2,0.4")
    monkeypatch.setenv("PARVIS_OUTBOX_INTERVAL", "0.2")
    monkeypatch.setenv("PARVIS_METRICS_PORT", "0")
    return {"amqp_url": broker.url, "mongo_url": mongo.url}
