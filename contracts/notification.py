"""Notification service contracts: token revocation and the organisations' contact directory."""
from __future__ import annotations

from datetime import datetime

from pydantic import Field

from contracts.base import Empty, Model, RpcContract
from contracts.platform import declare_ping

SERVICE = "notification"


class RevokeToken(Model):
    token_id: str = Field(min_length=8, max_length=64)
    expires_at: datetime
    reason: str = Field(default="", max_length=200)


class Revoked(Model):
    token_id: str
    expires_at: datetime


class OrganizationContact(Model):
    id: str
    name: str
    contact_email: str | None = None


class GetOrganizationContact(Model):
    id: str


PING = declare_ping(SERVICE)
REVOKE_TOKEN = RpcContract(SERVICE, "revoke_token", RevokeToken, Revoked, "Revoke a bearer token until it expires")
LIST_REVOKED_TOKENS = RpcContract(SERVICE, "list_revoked_tokens", Empty, list[Revoked],
                                  "Tokens revoked and not yet expired (the gateway caches them)")
GET_ORGANIZATION_CONTACT = RpcContract(SERVICE, "get_organization_contact", GetOrganizationContact, OrganizationContact,
                                       "Where to tell an organisation about its events (from agenda.organization_upserted)")
