"""The gateway's asyncio nameko RPC client against real services over the real broker."""
import asyncio
import time

import pytest

from contracts.errors import BadInput, Forbidden
from gateway.rpc import RpcClient, RpcTimeout
from tests.support import TEST_SECRET, Platform


@pytest.fixture(scope="module")
def platform(mongo, broker):
    p = Platform(mongo, broker)
    p.service("consultation")
    p.service("agenda")
    yield p
    p.stop()


def run(coro):
    return asyncio.run(coro)


def test_many_calls_in_flight_each_get_their_own_reply(platform):
    async def go():
        client = RpcClient(platform.broker.url, secret=TEST_SECRET)
        try:
            replies = await asyncio.gather(*(client.call("consultation", "ping") for _ in range(200)))
            communes = await client.call("agenda", "list_communes")
            return replies, communes, len(client.pending)
        finally:
            await client.close()

    replies, communes, pending = run(go())
    assert len(replies) == 200 and all(r["service"] == "consultation" and r["status"] == "ok" for r in replies)
    assert pending == 0
    assert isinstance(communes, list)


def test_a_call_nobody_answers_times_out_as_service_unavailable(platform):
    async def go():
        client = RpcClient(platform.broker.url, secret=TEST_SECRET)
        try:
            started = time.perf_counter()
            with pytest.raises(RpcTimeout) as exc:
                await client.call("nobody", "ping", timeout=0.3)
            elapsed = time.perf_counter() - started
            # The client stays usable after a timeout.
            ok = await client.call("consultation", "ping", timeout=5)
            return exc.value, elapsed, ok, len(client.pending)
        finally:
            await client.close()

    error, elapsed, ok, pending = run(go())
    assert error.code == "SERVICE_UNAVAILABLE" and 0.3 <= elapsed < 2
    assert ok["service"] == "consultation" and pending == 0


def test_remote_errors_are_typed_and_the_caller_travels_in_context(platform):
    async def go():
        client = RpcClient(platform.broker.url, secret=TEST_SECRET)
        try:
            with pytest.raises(BadInput) as bad:
                await client.call("agenda", "list_organizations", kind="club")
            with pytest.raises(Forbidden):
                await client.call("agenda", "import_reference_data", context={"caller": {"role": "organizer", "org": "x"}},
                                  communes=[], organizations=[], categories=[], themes=[])
            return bad.value
        finally:
            await client.close()

    bad = run(go())
    assert bad.field == "kind" and bad.code == "BAD_USER_INPUT"
