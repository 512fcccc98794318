"""Errors that cross the bus: raised in a service, re-raised with the same type in the gateway.

nameko serialises a remote exception as {exc_type, exc_path, exc_args, value}; the gateway maps
`exc_type` to a GraphQL error code in one place (gateway/errors.py). Messages are written for a
person: French where a citizen reads them.
"""
from __future__ import annotations


class ParvisError(Exception):
    code = "INTERNAL_SERVER_ERROR"

    def __init__(self, message: str, field: str | None = None):
        super().__init__(message, field)
        self.message = message
        self.field = field

    def __str__(self) -> str:
        return self.message


class BadInput(ParvisError):
    code = "BAD_USER_INPUT"


class NotFound(ParvisError):
    code = "NOT_FOUND"


class Forbidden(ParvisError):
    code = "FORBIDDEN"


class Unauthenticated(ParvisError):
    code = "UNAUTHENTICATED"


class Conflict(ParvisError):
    code = "CONFLICT"


class ServiceUnavailable(ParvisError):
    code = "SERVICE_UNAVAILABLE"


ERRORS = {cls.__name__: cls for cls in (BadInput, NotFound, Forbidden, Unauthenticated, Conflict, ServiceUnavailable)}


def validation_error(exc) -> BadInput:
    """The first problem of a pydantic ValidationError, named by its field, as a person can act on it."""
    first = exc.errors()[0]
    field = ".".join(str(p) for p in first.get("loc", ())) or None
    msg = first.get("msg", "invalid value")
    return BadInput(f"{field}: {msg}" if field else msg, field)
