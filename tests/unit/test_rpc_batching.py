"""Batched RPCs (gateway/batching.py, services/common/rpc.py, contracts/platform.py: batch_of): calls that arrive
together leave as one; each is answered, or refused, as it would have been alone; each item's caller is trusted only
with its own signature for the single method.

No network: the gateway's side against a fake RPC client; the service's side on its functions."""
from __future__ import annotations

import asyncio

import pytest

from contracts import consultation as c
from contracts.errors import BadInput, Conflict, ServiceUnavailable
from contracts.platform import BatchItem, sign_caller
from gateway.batching import RpcBatcher
from gateway.rpc import RemoteError
from services.common.rpc import batch_calls, batch_reply, error_form

SECRET = "s" * 40
CITIZEN = {"role": "citizen", "subject": "cit-1"}
HEADINGS = [{"heading_id": "h", "project_ids": ["p1"]}]


class FakeRpc:
    """Answers `cast_budget_ballots` after `delay`, item by item: a Conflict for budget "refused", else a receipt."""

    def __init__(self, delay: float = 0.01, fail: Exception | None = None, short: bool = False):
        self.delay, self.fail, self.short = delay, fail, short
        self.batches: list[list[dict]] = []

    async def call(self, service, method, *, timeout=None, context=None, **kwargs):
        assert (service, method) == ("consultation", "cast_budget_ballots")
        items = kwargs["items"]
        self.batches.append(items)
        await asyncio.sleep(self.delay)
        return self.answer(items)

    def answer(self, items: list[dict]) -> dict:
        if self.fail is not None:
            raise self.fail
        results = []
        for item in items:
            if item["args"]["budget_id"] == "refused":
                results.append({"error": error_form(Conflict("Vous avez déjà voté.", "participation"))})
            else:
                results.append({"result": {"consultation_id": item["args"]["budget_id"],
                                           "receipt_code": item["caller"]["subject"]}})
        return {"results": results[:-1] if self.short else results}


def batcher(rpc, **kw) -> RpcBatcher:
    return RpcBatcher(rpc, "consultation", "cast_budget_ballot", "cast_budget_ballots", SECRET, **kw)


def cast(b: RpcBatcher, n: int, budget: str = "b1"):
    return b.call({"budget_id": budget, "headings": HEADINGS}, {"role": "citizen", "subject": f"cit-{n}"}, f"req-{n}")


def test_calls_arriving_together_leave_together_and_each_gets_its_own_answer():
    rpc = FakeRpc()
    b = batcher(rpc, in_flight=1)

    async def go():
        return await asyncio.gather(*(cast(b, n) for n in range(30)))

    answers = asyncio.run(go())
    assert [a["receipt_code"] for a in answers] == [f"cit-{n}" for n in range(30)], "each call its own answer"
    assert [len(x) for x in rpc.batches] == [1, 29], "the first leaves at once, alone; the rest together"
    first = rpc.batches[1][0]
    assert first["caller"] == {"role": "citizen", "subject": "cit-1"} and first["correlation_id"] == "req-1"
    assert first["caller_sig"] == sign_caller(SECRET, first["caller"], "consultation.cast_budget_ballot")


def test_at_most_in_flight_batches_and_at_most_max_items_each():
    rpc = FakeRpc()
    b = batcher(rpc, in_flight=2, max_items=10)

    async def go():
        return await asyncio.gather(*(cast(b, n) for n in range(45)))

    asyncio.run(go())
    assert [len(x) for x in rpc.batches] == [1, 1, 10, 10, 10, 10, 3]
    assert b.running == 0 and not b.queue


class GatedRpc(FakeRpc):
    """Each batch waits until the test opens its gate (`release(i)`, i in sending order)."""

    def __init__(self):
        super().__init__(delay=0)
        self.gates: list[asyncio.Event] = []

    async def call(self, service, method, *, timeout=None, context=None, **kwargs):
        self.batches.append(kwargs["items"])
        gate = asyncio.Event()
        self.gates.append(gate)
        await gate.wait()
        return self.answer(kwargs["items"])

    async def release(self, i: int) -> None:
        self.gates[i].set()
        for _ in range(5):
            await asyncio.sleep(0)


def test_a_second_batch_leaves_only_once_it_is_as_big_as_the_smallest_in_flight():
    """Room for two batches: a few calls arriving while a big batch is written wait for it, rather than leaving as a
    small batch that would pay a whole round of the service's writes for a few calls."""
    rpc = GatedRpc()
    b = batcher(rpc, in_flight=2)

    async def settle():
        for _ in range(5):
            await asyncio.sleep(0)

    async def go():
        calls = [asyncio.ensure_future(cast(b, n)) for n in range(12)]
        await settle()
        assert [len(x) for x in rpc.batches] == [1, 1], "alone at once, then the next as big (1): the rest waits"
        await rpc.release(0)
        assert [len(x) for x in rpc.batches] == [1, 1, 10], "a batch of 1 in flight: the 10 waiting leave"
        await rpc.release(1)
        calls += [asyncio.ensure_future(cast(b, 100 + n)) for n in range(3)]
        await settle()
        assert [len(x) for x in rpc.batches] == [1, 1, 10], "3 calls wait while a batch of 10 is in flight"
        calls += [asyncio.ensure_future(cast(b, 200 + n)) for n in range(10)]
        await settle()
        assert [len(x) for x in rpc.batches] == [1, 1, 10, 10], "10 queued: they leave beside the 10 in flight"
        await rpc.release(2)
        assert len(rpc.batches) == 4, "3 left, fewer than the 10 still in flight: they wait"
        await rpc.release(3)
        assert [len(x) for x in rpc.batches] == [1, 1, 10, 10, 3], "nothing in flight: they leave"
        await rpc.release(4)
        answers = await asyncio.gather(*calls)
        assert sorted(a["receipt_code"] for a in answers) == sorted(
            [f"cit-{n}" for n in range(12)] + [f"cit-{100 + n}" for n in range(3)] + [f"cit-{200 + n}" for n in range(10)])

    asyncio.run(go())
    assert b.running == 0 and not b.queue and not b.flying


def test_a_refused_item_is_refused_alone_with_the_error_of_the_single_call():
    rpc = FakeRpc()
    b = batcher(rpc, in_flight=1)

    async def go():
        return await asyncio.gather(cast(b, 0), cast(b, 1, "refused"), cast(b, 2), return_exceptions=True)

    ok0, refused, ok2 = asyncio.run(go())
    assert ok0["receipt_code"] == "cit-0" and ok2["receipt_code"] == "cit-2"
    assert isinstance(refused, Conflict) and refused.message == "Vous avez déjà voté." and refused.field == "participation"


@pytest.mark.parametrize("failure", [ServiceUnavailable("Messagerie indisponible."), RuntimeError("boom")])
def test_a_batch_that_fails_fails_each_of_its_calls_and_the_next_ones_still_leave(failure):
    rpc = FakeRpc(fail=failure)
    b = batcher(rpc, in_flight=1)

    async def go():
        first = await asyncio.gather(*(cast(b, n) for n in range(5)), return_exceptions=True)
        rpc.fail = None
        return first, await cast(b, 9)

    first, after = asyncio.run(go())
    assert all(x is failure for x in first)
    assert after["receipt_code"] == "cit-9"


def test_a_reply_of_another_length_is_the_service_s_fault_for_every_call():
    b = batcher(FakeRpc(short=True), in_flight=1)

    async def go():
        return await asyncio.gather(*(cast(b, n) for n in range(3)), return_exceptions=True)

    assert all(isinstance(x, RemoteError) for x in asyncio.run(go()))


# -- the service's side ----------------------------------------------------------------------------------------
def item(caller=CITIZEN, sig: str | None = "good", args=None, target="consultation.cast_budget_ballot") -> BatchItem:
    signature = sign_caller(SECRET, caller, target) if sig == "good" else sig
    return BatchItem(caller=caller, caller_sig=signature, args=args or {"budget_id": "b1", "headings": HEADINGS})


def test_each_item_s_caller_is_trusted_only_with_its_signature_for_the_single_method():
    calls = batch_calls(SECRET, c.CAST_BUDGET_BALLOT, [
        item(),
        item(sig=None),  # unsigned: the public
        item(sig=sign_caller("t" * 40, CITIZEN, "consultation.cast_budget_ballot")),  # another secret
        item(target="consultation.cast_budget_ballots"),  # signed for another method
        item(caller={"role": "agent", "subject": "ag-1"}, sig=sign_caller(SECRET, CITIZEN,
                                                                          "consultation.cast_budget_ballot")),
    ])
    assert [(x.caller.role, x.caller.subject) for x in calls] == [
        ("citizen", "cit-1"), ("public", None), ("public", None), ("public", None), ("public", None)]
    assert all(x.error is None for x in calls)


def test_an_item_whose_arguments_break_the_contract_is_refused_alone():
    calls = batch_calls(SECRET, c.CAST_BUDGET_BALLOT, [item(), item(args={"budget_id": "b1", "headings": []})])
    assert calls[0].error is None and calls[0].request.budget_id == "b1"
    assert isinstance(calls[1].error, BadInput) and calls[1].request is None


def test_the_reply_gives_each_item_its_result_or_its_error_in_order():
    calls = batch_calls(SECRET, c.CAST_BUDGET_BALLOT, [item(), item(), item()])
    calls[0].result = {"consultation_id": "b1", "receipt_code": "R1", "headings": HEADINGS}
    calls[1].error = Conflict("Vous avez déjà voté.", "participation")
    calls[2].result = {"receipt_code": "no consultation id"}  # breaks the reply's contract: that item alone fails
    reply = c.CAST_BUDGET_BALLOTS.reply.model_validate(batch_reply(c.CAST_BUDGET_BALLOT, calls)).model_dump()
    assert reply["results"][0]["result"]["receipt_code"] == "R1" and reply["results"][0]["error"] is None
    assert reply["results"][1]["error"] == {"exc_type": "Conflict", "exc_args": ["Vous avez déjà voté.", "participation"],
                                            "value": "Vous avez déjà voté."}
    assert reply["results"][2]["error"]["exc_type"] == "RuntimeError"
