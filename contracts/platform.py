"""Contracts every service shares: the caller carried in context data, and the `ping` RPC."""
from __future__ import annotations

from datetime import datetime
from typing import Literal

from contracts.base import Empty, Model, RpcContract

Role = Literal["public", "citizen", "organizer", "agent", "kiosk", "operator"]


class Caller(Model):
    """Who is calling, as the gateway authenticated it; carried in nameko context data `caller`."""

    role: Role = "public"
    subject: str | None = None
    org: str | None = None
    kiosk: str | None = None
    token_id: str | None = None


class PingReply(Model):
    service: str
    status: Literal["ok"] = "ok"
    version: str
    time: datetime
    database: bool = True


def declare_ping(service: str) -> RpcContract:
    return RpcContract(service, "ping", Empty, PingReply, "Liveness and readiness: answers when the service and its database do")
