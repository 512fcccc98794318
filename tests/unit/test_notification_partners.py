"""Which payment events the notification service takes into its inbox (services/notification/partners.py:
`partners_want`): only those an endpoint listens to, by type and régie; the others are acknowledged before the inbox,
as their handler would have kept nothing. A payment's success is always taken (the payer's receipt)."""
from __future__ import annotations

from types import SimpleNamespace

import pytest

from services.notification import partners
from services.notification.webhooks import Webhooks


class Store:
    def __init__(self, hooks):
        self.hooks, self.reads = hooks, 0

    def webhooks(self):
        self.reads += 1
        return self.hooks


@pytest.fixture(autouse=True)
def fresh_cache():
    Webhooks.forget()
    yield
    Webhooks.forget()


def envelope(kind: str, regie: str | None = "regie-eau"):
    return SimpleNamespace(type=kind, data={"regie_id": regie} if regie else {})


def test_only_events_an_endpoint_listens_to_are_wanted():
    store = Store([{"_id": "wh-1", "partner": "p", "topics": ["payment_link.succeeded", "payment_link.failed"],
                    "regie_ids": ["regie-eau"]}])
    assert partners.partners_want(store, envelope("payment_link.failed"))
    assert not partners.partners_want(store, envelope("payment_link.created"))  # another type
    assert not partners.partners_want(store, envelope("payment_link.failed", "regie-cantine"))  # another régie
    assert not partners.partners_want(store, envelope("payment_link.failed", None))
    assert store.reads == 1  # the endpoints read once for them all (Webhooks' cache)


def test_no_endpoint_no_event_wanted():
    assert not partners.partners_want(Store([]), envelope("payment_link.created"))


def test_the_success_handler_takes_every_event():
    """on_payment_succeeded sends the payer's receipt: it has no `wanted`; every other payment handler has one."""
    handlers = {name: getattr(partners.PartnerEntrypoints, name) for name in dir(partners.PartnerEntrypoints)
                if name.startswith("on_")}
    wanted = {}
    for name, fn in handlers.items():
        (entrypoint,) = fn.nameko_entrypoints
        wanted[name] = entrypoint.wanted
    assert wanted.pop("on_payment_succeeded") is None
    assert wanted and all(w is partners.partners_want for w in wanted.values())
