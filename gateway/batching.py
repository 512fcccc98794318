"""Group commit on the gateway's side: the calls of one hot write that arrive together go to the service as one RPC.

A budget ballot costs the consultation service an RPC (a nameko worker, its JSON, its reply: about 1 ms of CPU) before
any of its own work, and the broker a message each way. When many citizens vote at once, the calls that arrive while
a batch is in flight wait in the gateway and leave together as the next batch, so those costs are paid once per batch
(`contracts/platform.py`: `batch_of`). When nothing is in flight a call leaves at once, alone: a batch never waits for
company, so a quiet gateway answers as fast as with single calls.

Each item carries its own caller, signed for the single method: the service trusts it exactly as if the method had
been called alone (services/common/rpc.py: `batch_calls`), and answers each item as the single method would (its
reply, or its refusal raised here as the same error). A batch that fails as a whole (broker down, timeout) fails
each of its calls with that error, as each single call would have failed.
"""
from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from prometheus_client import Histogram

from contracts.errors import ServiceUnavailable
from contracts.platform import sign_caller
from core.logjson import SLO_BUCKETS
from gateway.rpc import RemoteError, remote_error

log = logging.getLogger("parvis.gateway")

BATCH_ITEMS = Histogram("parvis_rpc_client_batch_items", "Calls sent together in one batched RPC (gateway/batching.py)",
                        ["service", "method"], buckets=(1, 2, 5, 10, 20, 50, 100, 200))
BATCH_SECONDS = Histogram("parvis_rpc_client_batch_duration_seconds", "Round trip of one batched RPC, from its sending "
                          "to its reply (gateway/batching.py; a call's whole wait is parvis_rpc_client_duration_seconds)",
                          ["service", "method"], buckets=SLO_BUCKETS)

# single method -> its batched form (contracts/platform.py: batch_of), for PARVIS_RPC_BATCHES
BATCHED = {"consultation.cast_budget_ballot": "cast_budget_ballots",
           "payment_link.create_payment_link": "create_payment_links",
           "payment_link.handle_notification": "handle_notifications"}


class RpcBatcher:
    """The calls of `service.method`, sent as `service.batch_method(items=[...])`.

    At most `in_flight` batches at once (PARVIS_RPC_BATCHES_IN_FLIGHT, 2: one being written by the service while the
    next is read and checked); a batch holds what queued meanwhile, up to `max_items`. A second batch leaves only once
    as many calls wait as the smallest batch in flight holds (`_ready`).

    Measured (bench/consultation.py, 2026-12-02, one and two alternately in the same hour): two, with that rule, took
    the open run's p95 at 500 ballots/s from a median of 128 ms (5 of 11 runs under 100 ms) to 76 ms (9 of 11), and
    the closed runs from 836 to 928 ballots/s on average; bench/payments.py: 386 -> 484 links/s, 226 -> 275
    notifications/s. Without the rule (sending as soon as one batch was in flight), the callers split into batches of
    one or two, each a whole round of the service's writes, and two did no better than one."""

    def __init__(self, rpc, service: str, method: str, batch_method: str, secret: str | None,
                 max_items: int = 200, in_flight: int = 2):
        self.rpc, self.service, self.method, self.batch_method = rpc, service, method, batch_method
        self.secret = secret
        self.max_items, self.in_flight = max_items, in_flight
        self.queue: list[tuple[dict, asyncio.Future, float]] = []
        self.flying: list[int] = []  # sizes of the batches in flight
        self.batches = 0  # sent, for the tests and the bench
        self.items = 0

    async def call(self, kwargs: dict, caller: dict | None, correlation_id: str | None = None,
                   timeout: float | None = None) -> Any:
        """The single method's raw reply for this call (as `RpcClient.call` returns it), or its error raised."""
        item: dict = {"args": kwargs}
        if caller:
            item["caller"] = caller
            if self.secret:
                item["caller_sig"] = sign_caller(self.secret, caller, f"{self.service}.{self.method}")
        if correlation_id:
            item["correlation_id"] = correlation_id[:64]
        future = asyncio.get_running_loop().create_future()
        self.queue.append((item, future, timeout or 0.0))
        if self._ready():
            self._send()
        return await future

    @property
    def running(self) -> int:
        """Batches in flight."""
        return len(self.flying)

    def _ready(self) -> bool:
        """Nothing in flight: the queue leaves at once. One batch in flight (and room for another): the next leaves only
        once it holds as many calls as the smallest one in flight, else it would split the callers into ever
        smaller batches (each paying a round of the service's writes for a few calls)."""
        if self.running >= self.in_flight or not self.queue:
            return False
        return not self.running or len(self.queue) >= min(self.flying)

    def _send(self) -> None:
        batch, self.queue = self.queue[: self.max_items], self.queue[self.max_items:]
        self.flying.append(len(batch))
        self.batches += 1
        self.items += len(batch)
        BATCH_ITEMS.labels(self.service, self.method).observe(len(batch))
        asyncio.get_running_loop().create_task(self._run(batch))

    async def _run(self, batch: list[tuple[dict, asyncio.Future, float]]) -> None:
        started = time.perf_counter()
        try:
            timeout = max((t for _, _, t in batch), default=0.0) or None
            reply = await self.rpc.call(self.service, self.batch_method, timeout=timeout,
                                        items=[item for item, _, _ in batch])
            BATCH_SECONDS.labels(self.service, self.method).observe(time.perf_counter() - started)
            results = reply.get("results") if isinstance(reply, dict) else None
            if not isinstance(results, list) or len(results) != len(batch):
                raise RemoteError(f"{self.service}.{self.batch_method}: {len(batch)} items, a reply of another length")
            for (_, future, _), outcome in zip(batch, results):
                if future.done():
                    continue
                if isinstance(outcome, dict) and outcome.get("error"):
                    future.set_exception(remote_error(outcome["error"]))
                elif isinstance(outcome, dict) and "result" in outcome:
                    future.set_result(outcome["result"])
                else:
                    future.set_exception(RemoteError(f"{self.service}.{self.batch_method}: an item without outcome"))
        except Exception as exc:  # the whole batch failed: each call fails as it would have alone
            if not isinstance(exc, (ServiceUnavailable, RemoteError)):
                log.warning("a batch of %s failed: %r", self.method, exc)
            for _, future, _ in batch:
                if not future.done():
                    future.set_exception(exc)
        finally:
            self.flying.remove(len(batch))
            while self._ready():
                self._send()


def batchers(rpc, secret: str | None, names: tuple[str, ...], in_flight: int = 2) -> dict[tuple[str, str], RpcBatcher]:
    """The batchers of the methods PARVIS_RPC_BATCHES names, by (service, method)."""
    out = {}
    for name in names:
        service, _, method = name.partition(".")
        out[(service, method)] = RpcBatcher(rpc, service, method, BATCHED[name], secret, in_flight=in_flight)
    return out
