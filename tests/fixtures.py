"""Session fixtures shared by both pytest processes (tests/conftest.py and tests/nameko/conftest.py)."""
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
