"""Reads that many callers make of the same thing while it changes every instant, answered from one call.

The participation count of a consultation is read by every open page of it (a results page polls it) while its
ballots stream in. Each read was an RPC to the consultation service, which waited there behind the rounds of ballots
being written (the database takes one command at a time): 100–200 ms at the 95th percentile while a vote ran. Here
the gateway asks the service at most once at a time per key and shares the answer:

- younger than `fresh` seconds: served as it is;
- then, up to `stale` seconds old: served at once while one call refreshes it in the background;
- older, or never read: the caller waits for the service, and every other caller of that key with it (one call).

So a count may be up to `stale` seconds behind the ballots, never more; a write through this gateway that changes
what an answer says (an agent closing or publishing, a paper entry, a check-in, a survey response) drops the answers
of its consultation at once (`forget`), so whoever made it reads his own write. Errors are not kept: each caller
gets the service's answer. Per gateway process; another replica's writes show within `stale` seconds.
"""
from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from typing import Any, Awaitable, Callable, Hashable

from prometheus_client import Counter

log = logging.getLogger("parvis.gateway")

SHARED_READS = Counter("parvis_gateway_shared_reads_total", "Reads answered from a shared answer (gateway/sharedreads.py)",
                       ["kind", "outcome"])


class _Entry:
    __slots__ = ("value", "at", "loading")

    def __init__(self):
        self.value: Any = None
        self.at = float("-inf")  # monotonic time the value was asked for (not when it arrived)
        self.loading: asyncio.Future | None = None


class SharedReads:
    def __init__(self, kind: str, fresh: float = 0.5, stale: float = 2.0, max_entries: int = 2000):
        self.kind, self.fresh, self.stale, self.max_entries = kind, fresh, stale, max_entries
        self.entries: OrderedDict[Hashable, _Entry] = OrderedDict()

    async def get(self, key: Hashable, load: Callable[[], Awaitable[Any]]) -> Any:
        entry = self.entries.get(key)
        now = time.monotonic()
        if entry is not None:
            self.entries.move_to_end(key)
            age = now - entry.at
            if age < self.fresh:
                SHARED_READS.labels(self.kind, "fresh").inc()
                return entry.value
            if age < self.stale:
                if entry.loading is None:
                    self._start(key, entry, load)
                SHARED_READS.labels(self.kind, "stale").inc()
                return entry.value
        else:
            entry = self.entries[key] = _Entry()
            while len(self.entries) > self.max_entries:
                self.entries.popitem(last=False)
        SHARED_READS.labels(self.kind, "waited").inc()
        if entry.loading is None:
            self._start(key, entry, load)
        return await asyncio.shield(entry.loading)

    def _start(self, key: Hashable, entry: _Entry, load) -> None:
        asked = time.monotonic()
        future = entry.loading = asyncio.get_running_loop().create_future()

        async def run():
            try:
                value = await load()
            except BaseException as exc:  # noqa: BLE001 - given to whoever waits; nothing kept
                if not future.done():
                    future.set_exception(exc)
                    future.exception()  # retrieved: nobody may be waiting (a background refresh)
            else:
                if self.entries.get(key) is entry and entry.loading is future:  # not forgotten meanwhile
                    entry.value, entry.at = value, asked
                if not future.done():
                    future.set_result(value)
            finally:
                if entry.loading is future:
                    entry.loading = None

        asyncio.get_running_loop().create_task(run())

    def forget(self, match: Callable[[Hashable], bool] | None = None) -> None:
        """Drop the answers whose key `match`es (all without one): the next read asks the service."""
        for key in [k for k in self.entries if match is None or match(k)]:
            del self.entries[key]
