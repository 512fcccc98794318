"""Session-wide real infrastructure for tests/unit, tests/integration and tests/e2e (see support.py).

The nameko suite (tests/nameko) runs in its own pytest process, because eventlet must patch the
interpreter before anything else is imported there; it has its own conftest.
"""
import pytest

from tests.support import Broker, Mongo


@pytest.fixture(scope="session")
def mongo():
    m = Mongo().start()
    yield m
    m.stop()


@pytest.fixture(scope="session")
def broker():
    b = Broker().start()
    yield b
    b.stop()
