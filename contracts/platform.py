"""Contracts every service shares: the caller carried in context data, and the `ping` RPC."""
from __future__ import annotations

import hashlib
import hmac
import json
import time
from datetime import datetime
from typing import Literal

from pydantic import Field

from contracts.base import Empty, Model, RpcContract

Role = Literal["public", "citizen", "organizer", "agent", "kiosk", "operator", "service"]


class Caller(Model):
    """Who is calling, as the gateway authenticated it; carried in nameko context data `caller`."""

    role: Role = "public"
    subject: str | None = None
    org: str | None = None
    kiosk: str | None = None
    token_id: str | None = None
    regies: list[str] | None = Field(default=None, description="role service (billing software): the régies it may "
                                                                 "create and read payment links for")
    expires_at: int | None = Field(default=None, description="when the caller's token expires (Unix time)")


# -- the caller, signed -----------------------------------------------------------------------------
# Anyone who can publish on the broker (a leaked password, a compromised container) could otherwise claim to be an
# agent or an operator in every service. The gateway (and the command line) sign the caller they authenticated,
# for one method, with PARVIS_SECRET; a service trusts a caller only with a fresh signature for the method it runs
# (services/common/rpc.py), and treats any other as the public.
CALLER_SIGNATURE_MAX_AGE = 60.0  # seconds a signature holds: clocks of several hosts, queues under load


def _caller_text(caller: dict, target: str, stamp: int) -> bytes:
    fields = {k: v for k, v in sorted(caller.items()) if v is not None}
    return f"{stamp}|{target}|{json.dumps(fields, sort_keys=True, separators=(',', ':'))}".encode()


def sign_caller(secret: str, caller: dict, target: str, now: float | None = None) -> str:
    """The signature of `caller` for one RPC `target` ("service.method"): "<unix time>.<HMAC-SHA256 hex>"."""
    stamp = int(now if now is not None else time.time())
    digest = hmac.new(secret.encode(), _caller_text(caller, target, stamp), hashlib.sha256).hexdigest()
    return f"{stamp}.{digest}"


def caller_signed(secret: str, caller: dict, target: str, signature: str | None, now: float | None = None,
                  max_age: float = CALLER_SIGNATURE_MAX_AGE) -> bool:
    """True when `signature` is ours, for this caller and this target, and fresh."""
    if not signature or not isinstance(signature, str) or "." not in signature:
        return False
    stamp_text, _, digest = signature.partition(".")
    try:
        stamp = int(stamp_text)
    except ValueError:
        return False
    now = now if now is not None else time.time()
    if abs(now - stamp) > max_age:
        return False
    expected = hmac.new(secret.encode(), _caller_text(caller, target, stamp), hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, digest)


class PingReply(Model):
    service: str
    status: Literal["ok"] = "ok"
    version: str
    time: datetime
    database: bool = True


def declare_ping(service: str) -> RpcContract:
    return RpcContract(service, "ping", Empty, PingReply, "Liveness and readiness: answers when the service and its database do")


# -- batched RPCs: the calls of one method that arrive together, sent as one ---------------------------------
# The gateway sends the calls of a hot write (a budget ballot, a payment link) that arrive while one of their batches
# is in flight as one RPC (gateway/batching.py), so that the service pays its RPC, its workers and its rounds of writes
# once per batch. Each item keeps its own caller, signed for the single method (`"<service>.<method>"`): the service
# trusts an item's caller exactly as it trusts the caller of that method called alone (services/common/rpc.py). Each
# item's arguments are checked against the single method's request by the service, item by item: one bad item is
# refused alone, with the error the single method would give.
class BatchItem(Model):
    caller: dict | None = Field(default=None, description="who calls, as for the single method (Caller)")
    caller_sig: str | None = Field(default=None, description="the caller's signature for the single method")
    correlation_id: str | None = Field(default=None, max_length=64, description="the request this item comes from")
    args: dict = Field(description="the single method's keyword arguments (its request)")


class BatchError(Model):
    """An item's refusal, in the form nameko gives a remote exception (the gateway maps it as for one call)."""

    exc_type: str
    exc_args: list = []
    value: str = ""


def batch_of(spec: RpcContract, method: str, max_items: int = 500) -> RpcContract:
    """The batched form of `spec`: `method(items=[BatchItem])` answers `{"results": [{"result": …} | {"error": …}]}`,
    one per item, in order; each result is the single method's reply."""
    from pydantic import create_model

    stem = "".join(part.title() for part in method.split("_"))
    request = create_model(stem, __base__=Model, items=(list[BatchItem], Field(min_length=1, max_length=max_items)))
    outcome = create_model(f"{stem}Outcome", __base__=Model, result=(spec.reply | None, None),
                           error=(BatchError | None, None))
    reply = create_model(f"{stem}Reply", __base__=Model, results=(list[outcome], ...))
    summary = f"{spec.summary}: the calls that arrive together, as one (each item checked and answered as " \
              f"{spec.name} alone)"
    return RpcContract(spec.service, method, request, reply, summary)
