"""The gateway's shared reads (gateway/sharedreads.py): one call at a time per key, its answer served fresh, then
stale while one refresh runs, never older than `stale`; errors never kept; `forget` makes the next read ask."""
from __future__ import annotations

import asyncio

import pytest

from gateway.sharedreads import SharedReads


class Source:
    def __init__(self, delay: float = 0.02):
        self.delay, self.calls, self.value, self.fail = delay, 0, 0, None

    async def __call__(self):
        self.calls += 1
        asked = self.value
        await asyncio.sleep(self.delay)
        if self.fail is not None:
            raise self.fail
        return asked


def test_callers_arriving_together_share_one_call():
    reads, source = SharedReads("t", fresh=0.2, stale=1.0), Source()

    async def go():
        return await asyncio.gather(*(reads.get("k", source) for _ in range(50)))

    assert asyncio.run(go()) == [0] * 50 and source.calls == 1


def test_fresh_then_stale_while_one_refresh_runs_then_never_older_than_stale():
    reads, source = SharedReads("t", fresh=0.2, stale=0.6), Source(delay=0.05)

    async def go():
        assert await reads.get("k", source) == 0
        source.value = 1
        assert await reads.get("k", source) == 0 and source.calls == 1, "fresh: no call"
        await asyncio.sleep(0.2)
        stale = await asyncio.gather(*(reads.get("k", source) for _ in range(10)))
        assert stale == [0] * 10 and source.calls == 2, "stale: served at once, one refresh"
        await asyncio.sleep(0.08)
        assert await reads.get("k", source) == 1, "the refresh's answer"
        source.value = 2
        await asyncio.sleep(0.65)
        assert await reads.get("k", source) == 2, "too old to serve: the caller waits for the service"

    asyncio.run(go())


def test_errors_are_not_kept_and_reach_whoever_waits():
    reads, source = SharedReads("t", fresh=0.2, stale=1.0), Source()
    source.fail = LookupError("introuvable")

    async def go():
        for _ in range(2):
            with pytest.raises(LookupError):
                await reads.get("k", source)
        source.fail = None
        return await reads.get("k", source)

    assert asyncio.run(go()) == 0 and source.calls == 3


def test_forget_makes_the_next_read_ask_and_keys_are_apart():
    reads, source = SharedReads("t", fresh=10, stale=20), Source()

    async def go():
        await reads.get(("c1", "public"), source)
        await reads.get(("c1", "agent"), source)
        source.value = 5
        assert await reads.get(("c1", "public"), source) == 0
        reads.forget(lambda k: k[1] == "public")
        assert await reads.get(("c1", "public"), source) == 5
        assert await reads.get(("c1", "agent"), source) == 0
        reads.forget()
        assert await reads.get(("c1", "agent"), source) == 5

    asyncio.run(go())
    assert source.calls == 4


def test_a_read_forgotten_while_it_loads_is_not_kept():
    reads, source = SharedReads("t", fresh=10, stale=20), Source(delay=0.05)

    async def go():
        first = asyncio.ensure_future(reads.get("k", source))
        await asyncio.sleep(0.01)
        reads.forget()  # a write while the call runs: its answer may predate the write
        source.value = 7
        assert await first == 0
        assert await reads.get("k", source) == 7

    asyncio.run(go())
