"""Every GraphQL error leaves with `extensions.code`: one place maps service errors to codes."""
from __future__ import annotations

import logging
from typing import Iterator

from graphql import GraphQLError
from strawberry.extensions import SchemaExtension

from contracts.errors import ParvisError

log = logging.getLogger("parvis.gateway")


def _rebuild(error: GraphQLError, message: str, extensions: dict) -> GraphQLError:
    return GraphQLError(message, nodes=error.nodes, source=error.source, positions=error.positions,
                        path=error.path, original_error=None, extensions=extensions)


def map_error(error: GraphQLError, production: bool) -> GraphQLError:
    """Typed errors keep their message and get their code; anything else is an internal error,
    logged with its trace here and shown without it (masked entirely in production)."""
    return ErrorCodes(production)._map(error)


def map_errors(errors: list[GraphQLError] | None, production: bool) -> None:
    """In place, so that every holder of the list sees the mapped errors."""
    if errors:
        errors[:] = [e if "code" in (e.extensions or {}) else map_error(e, production) for e in errors]


class ErrorCodes(SchemaExtension):
    """Maps execution errors as they leave each operation (see map_error). Strawberry returns parse
    errors without resuming this hook, so the HTTP view maps the final result as well."""

    def __init__(self, production: bool = False):
        self.production = production

    def _map(self, error: GraphQLError) -> GraphQLError:
        original = error.original_error
        if isinstance(original, ParvisError) and not (self.production and original.code == "INTERNAL_SERVER_ERROR"):
            ext = {"code": original.code}
            if original.field:
                ext["field"] = original.field
            return _rebuild(error, original.message, ext)
        if error.extensions and "code" in error.extensions:
            return error
        if original is None:
            # Parse and validation errors (syntax, unknown field, depth/token/alias limits).
            return _rebuild(error, error.message, {"code": "GRAPHQL_VALIDATION_FAILED"})
        log.error("unexpected error in %s", error.path, exc_info=(type(original), original, original.__traceback__))
        message = "Erreur interne : l'équipe technique est prévenue." if self.production else f"{type(original).__name__}: {original}"
        return _rebuild(error, message, {"code": "INTERNAL_SERVER_ERROR"})

    def on_operation(self) -> Iterator[None]:
        yield
        result = self.execution_context.result
        if result is not None:
            map_errors(getattr(result, "errors", None), self.production)
