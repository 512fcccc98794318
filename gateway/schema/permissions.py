"""Permission classes: authorisation checked in the gateway before any service is called."""
from __future__ import annotations

from typing import Any

from strawberry.permission import BasePermission
from strawberry.types import Info

from contracts.errors import Forbidden, Unauthenticated


class HasRole(BasePermission):
    roles: frozenset[str] = frozenset()

    def has_permission(self, source: Any, info: Info, **kwargs) -> bool:
        role = info.context["caller"].role
        if role in self.roles:
            return True
        if role == "public":
            raise Unauthenticated("Connectez-vous pour faire cette action.")
        raise Forbidden("Vous n'avez pas le droit de faire cette action.")


class IsAgent(HasRole):
    roles = frozenset({"agent"})


class IsOperator(HasRole):
    """What only operators may do: revoke anybody's token (and, later, grant roles)."""

    roles = frozenset({"operator"})


class IsAgentOrOperator(HasRole):
    roles = frozenset({"agent", "operator"})


class IsSignedIn(HasRole):
    roles = frozenset({"citizen", "organizer", "agent", "kiosk", "operator"})
