"""What the resilience tests share: a RabbitMQ node of their own per module (the machine's broker is left alone)."""
import pytest

from tests.support import RabbitNode


@pytest.fixture(scope="module")
def node():
    n = RabbitNode().start()
    yield n
    n.destroy()
