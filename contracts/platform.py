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
