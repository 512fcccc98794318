"""People's accounts (notification service): roles granted to email addresses, the sessions signing in opens, and
the dead letters operators replay. Operators grant agent and operator roles; agents and operators make an address
the organiser of an organisation; taking a role away ends that person's sessions."""
from __future__ import annotations

import asyncio
import enum
from datetime import datetime
from typing import Optional

import strawberry
from strawberry.types import Info

from core import deadletters
from gateway.schema.permissions import IsAgentOrOperator, IsOperator
from gateway.schema.platform import Role


@strawberry.enum(description="A role an address may be granted (without one, signing in makes a citizen)")
class AccountRole(enum.Enum):
    ORGANIZER = "organizer"
    AGENT = "agent"
    OPERATOR = "operator"


@strawberry.type(description="An address with a role: signing in with it gives that role")
class Account:
    email: str
    role: AccountRole
    organization_id: Optional[strawberry.ID]
    organization_name: Optional[str]
    granted_by: Optional[str]
    granted_at: datetime
    ended_sessions: int = strawberry.field(description="sessions this change ended (their tokens are revoked)")


@strawberry.type(description="A session opened by signing in, live (not expired nor revoked)")
class PersonSession:
    token_id: strawberry.ID
    email: str
    role: Role
    organization_id: Optional[strawberry.ID]
    created_at: datetime
    expires_at: datetime


@strawberry.type(description="A message its handler kept failing on, parked in the dead-letter queue")
class DeadLetter:
    id: strawberry.ID = strawberry.field(description="what replayDeadLetters names: <event id>@<handler>")
    event_id: Optional[str]
    type: Optional[str]
    queue: Optional[str]
    handler: Optional[str]
    attempts: Optional[int]
    dead_lettered_at: Optional[str]
    error: Optional[str]


def _account(r: dict) -> Account:
    return Account(email=r["email"], role=AccountRole(r["role"]), organization_id=r.get("org"),
                   organization_name=r.get("org_name"), granted_by=r.get("granted_by"), granted_at=r["granted_at"],
                   ended_sessions=len(r.get("ended_sessions") or []))


def _dead_letter(r: dict) -> DeadLetter:
    attempts = r.get("attempts")
    return DeadLetter(id=r["id"], event_id=r.get("event_id"), type=r.get("type"), queue=r.get("queue"),
                      handler=r.get("handler"), attempts=int(attempts) if attempts is not None else None,
                      dead_lettered_at=str(r["dead_lettered_at"]) if r.get("dead_lettered_at") else None,
                      error=r.get("error"))


def _ended(info: Info, reply: dict) -> Account:
    """The sessions a change ended are refused by this gateway at once (the others within 5 s)."""
    for token_id in reply.get("ended_sessions") or []:
        info.context["revocations"].add(token_id)
    return _account(reply)


@strawberry.type
class AccountsQuery:
    @strawberry.field(permission_classes=[IsAgentOrOperator],
                      description="Addresses with a role (operators: all; agents: organisers), by address")
    async def accounts(self, info: Info, role: Optional[AccountRole] = None,
                       organization_id: Optional[strawberry.ID] = None) -> list[Account]:
        rows = await info.context["call"]("notification", "list_accounts", role=role.value if role else None,
                                          org=str(organization_id) if organization_id else None)
        return [_account(r) for r in rows]

    @strawberry.field(permission_classes=[IsOperator], description="Live sessions opened by signing in, newest first")
    async def sessions(self, info: Info, email: Optional[str] = None, limit: int = 200) -> list[PersonSession]:
        rows = await info.context["call"]("notification", "list_sessions", email=email, limit=limit)
        return [PersonSession(token_id=r["token_id"], email=r["email"], role=Role(r["role"]), organization_id=r.get("org"),
                              created_at=r["created_at"], expires_at=r["expires_at"]) for r in rows]

    @strawberry.field(permission_classes=[IsOperator], description="The dead-letter queue (as `parvis dlq list`)")
    async def dead_letters(self, info: Info) -> list[DeadLetter]:
        rows = await asyncio.to_thread(deadletters.list_dead_letters, info.context["settings"].amqp_url)
        return [_dead_letter(r) for r in rows]


@strawberry.type
class AccountsMutation:
    @strawberry.mutation(permission_classes=[IsAgentOrOperator], description=(
        "Give an address a role: AGENT or OPERATOR (operators only), ORGANIZER of an organisation (agents, operators). "
        "Signing in with it then gives that role; a change of role ends its sessions"))
    async def grant_role(self, info: Info, email: str, role: AccountRole,
                         organization_id: Optional[strawberry.ID] = None) -> Account:
        reply = await info.context["call"]("notification", "grant_role", email=email, role=role.value,
                                           org=str(organization_id) if organization_id else None)
        return _ended(info, reply)

    @strawberry.mutation(permission_classes=[IsAgentOrOperator],
                         description="Take an address's role away: its sessions end (same rights as grantRole)")
    async def revoke_role(self, info: Info, email: str) -> Account:
        return _ended(info, await info.context["call"]("notification", "revoke_role", email=email))

    @strawberry.mutation(permission_classes=[IsOperator], description=(
        "Send dead letters back to their handler's queue (as `parvis dlq replay`): those named (ids or event ids), "
        "or all; returns those sent"))
    async def replay_dead_letters(self, info: Info, ids: Optional[list[str]] = None, all: bool = False) -> list[DeadLetter]:
        chosen = None if all else set(ids or [])
        if chosen == set():
            return []
        rows = await asyncio.to_thread(deadletters.replay, info.context["settings"].amqp_url, chosen)
        return [_dead_letter(r) for r in rows]
