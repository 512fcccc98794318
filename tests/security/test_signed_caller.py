"""The bus trusts no one who writes to it: a service believes a caller only when the gateway (or the command line)
signed it, for the method it runs, less than a minute ago. Anyone who can publish on RabbitMQ (a leaked password,
the compose file's old guest account, a compromised container) used to be able to act as an operator."""
import asyncio
import time

import pytest

from contracts.errors import Forbidden
from contracts.platform import sign_caller
from gateway.rpc import RpcClient
from tests.support import TEST_SECRET, Platform

OPERATOR = {"role": "operator", "subject": "mallory"}
IMPORT = dict(communes=[{"slug": "nulle-part", "name": "Nulle-Part"}], organizations=[], categories=[], themes=[])


@pytest.fixture(scope="module")
def platform(mongo, broker):
    p = Platform(mongo, broker)
    p.service("agenda")
    yield p
    p.stop()


def call(platform, context: dict, method: str = "import_reference_data", secret: str | None = None, **kwargs):
    async def go():
        client = RpcClient(platform.broker.url, secret=secret)
        try:
            return await client.call("agenda", method, context=context, **kwargs)
        finally:
            await client.close()

    return asyncio.run(go())


@pytest.mark.parametrize("signature", [
    None,                                                                         # no signature at all
    f"{int(time.time())}.{'0' * 64}",                                             # a made-up one
    sign_caller("another-secret-of-at-least-thirty-two-chars", OPERATOR, "agenda.import_reference_data"),
    sign_caller(TEST_SECRET, OPERATOR, "agenda.list_communes"),                   # ours, for another method
    sign_caller(TEST_SECRET, OPERATOR, "agenda.import_reference_data", now=time.time() - 300),  # ours, stale
    sign_caller(TEST_SECRET, {**OPERATOR, "subject": "someone"}, "agenda.import_reference_data"),  # another caller
])
def test_a_caller_without_our_fresh_signature_for_this_method_is_the_public(platform, signature):
    context = {"caller": OPERATOR, **({"caller_sig": signature} if signature else {})}
    with pytest.raises(Forbidden):
        call(platform, context, **IMPORT)


def test_the_signed_caller_is_believed(platform):
    report = call(platform, {"caller": OPERATOR}, secret=TEST_SECRET, **IMPORT)
    assert report["communes"] == 1
