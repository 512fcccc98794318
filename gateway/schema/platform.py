"""Platform-wide GraphQL: who am I, and the health of the services (agents and operators)."""
from __future__ import annotations

import asyncio
import enum
import time
from datetime import datetime, timezone
from typing import Optional

import strawberry
from strawberry.types import Info

from contracts.errors import BadInput
from gateway.schema.permissions import IsAgentOrOperator, IsOperator, IsSignedIn
from core.settings import SERVICES


@strawberry.enum(description="What a caller may do")
class Role(enum.Enum):
    PUBLIC = "public"
    CITIZEN = "citizen"
    ORGANIZER = "organizer"
    AGENT = "agent"
    KIOSK = "kiosk"
    OPERATOR = "operator"
    SERVICE = "service"


@strawberry.type(description="Who the bearer token says the caller is")
class Viewer:
    role: Role
    subject: Optional[str]
    organization_id: Optional[str]
    kiosk_id: Optional[str]


@strawberry.type(description="One service's answer to ping")
class ServiceHealth:
    name: str
    ok: bool
    database: bool
    version: Optional[str]
    latency_ms: Optional[float]
    error: Optional[str]


async def ping_service(rpc, name: str, timeout: float = 1.0) -> dict:
    started = time.perf_counter()
    try:
        reply = await rpc.call(name, "ping", timeout=timeout, context={"background": True})
        return {"name": name, "ok": bool(reply.get("database")), "database": bool(reply.get("database")),
                "version": reply.get("version"), "latency_ms": round((time.perf_counter() - started) * 1000, 2),
                "error": None if reply.get("database") else "database unreachable"}
    except Exception as exc:  # noqa: BLE001 - reported, not raised: this is a health check
        return {"name": name, "ok": False, "database": False, "version": None, "latency_ms": None,
                "error": str(exc) or exc.__class__.__name__}


async def ping_all(rpc, timeout: float = 1.0) -> list[dict]:
    return list(await asyncio.gather(*(ping_service(rpc, s, timeout) for s in SERVICES)))


@strawberry.type
class PlatformQuery:
    @strawberry.field(description="The caller, as authenticated by its bearer token (public without one)")
    def me(self, info: Info) -> Viewer:
        c = info.context["caller"]
        return Viewer(role=Role(c.role), subject=c.subject, organization_id=c.org, kiosk_id=c.kiosk)

    @strawberry.field(permission_classes=[IsAgentOrOperator], description="Each service's ping, within 1 s")
    async def service_health(self, info: Info) -> list[ServiceHealth]:
        return [ServiceHealth(**h) for h in await ping_all(info.context["rpc"])]


@strawberry.type
class RevokedToken:
    token_id: str
    expires_at: datetime


@strawberry.type
class PlatformMutation:
    @strawberry.mutation(permission_classes=[IsOperator],
                         description="Revoke a bearer token by its id (jti) until it expires (operators only)")
    async def revoke_token(self, info: Info, token_id: str, expires_at: datetime, reason: str = "") -> RevokedToken:
        if expires_at.tzinfo is None:
            raise BadInput("expiresAt must carry a time zone (UTC: ...Z)", "expiresAt")
        result = await info.context["call"]("notification", "revoke_token", token_id=token_id,
                                             expires_at=expires_at.isoformat(), reason=reason)
        info.context["revocations"].add(result["token_id"])
        return RevokedToken(token_id=result["token_id"], expires_at=result["expires_at"])

    @strawberry.mutation(permission_classes=[IsSignedIn],
                         description="Sign out: the caller's own token stops working (within 5 s on every gateway)")
    async def sign_out(self, info: Info) -> bool:
        caller = info.context["caller"]
        expires = datetime.fromtimestamp(caller.expires_at, timezone.utc) if caller.expires_at else None
        result = await info.context["call"]("notification", "revoke_token", token_id=caller.token_id,
                                             expires_at=(expires or datetime.now(timezone.utc)).isoformat(),
                                             reason="déconnexion")
        info.context["revocations"].add(result["token_id"])
        return True
