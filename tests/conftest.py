"""Session-wide real infrastructure for tests/unit, tests/integration and tests/e2e (see support.py).

The nameko suite (tests/nameko) runs in its own pytest process, because eventlet must patch the
interpreter before anything else is imported there; it has its own conftest.
"""
from tests.fixtures import broker, mongo  # noqa: F401
