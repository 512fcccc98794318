"""Every GraphQL error leaves with `extensions.code`: one place maps service errors to codes."""
from __future__ import annotations

import logging
import time
from typing import Iterator

from graphql import GraphQLError
from prometheus_client import Counter, Histogram
from strawberry.exceptions import StrawberryInputCoercionError
from strawberry.extensions import SchemaExtension

from contracts.errors import ParvisError
from gateway.messages import french, prefers_english
from core.logjson import SLO_BUCKETS

log = logging.getLogger("parvis.gateway")

# Labelled by the schema's root field, never by the client's operation name: bounded cardinality.
GRAPHQL_OPERATIONS = Counter("parvis_graphql_operations_total", "GraphQL operations by root field and outcome",
                             ["type", "field", "outcome"])
GRAPHQL_DURATION = Histogram("parvis_graphql_operation_duration_seconds", "GraphQL operation time",
                             ["type", "field"], buckets=SLO_BUCKETS)


def _rebuild(error: GraphQLError, message: str, extensions: dict, raw: str | None = None) -> GraphQLError:
    """A new error with our message and code; `raw` keeps graphql-core's own message, which Strawberry's parse and
    validation caches hand to the next request with the same document: that one is answered in its own language."""
    new = GraphQLError(message, nodes=error.nodes, source=error.source, positions=error.positions,
                       path=error.path, original_error=None, extensions=extensions)
    new.parvis_raw = raw
    return new


def map_error(error: GraphQLError, production: bool, english: bool = False) -> GraphQLError:
    """Typed errors keep their message and get their code; a person's mistake in the document or its variables is
    BAD_USER_INPUT or GRAPHQL_VALIDATION_FAILED, in French unless `english`; anything else is an internal error,
    logged with its trace here and shown without it (masked entirely in production)."""
    return ErrorCodes(production, english)._map(error)


def map_errors(errors: list[GraphQLError] | None, production: bool, english: bool = False) -> None:
    """In place, so that every holder of the list sees the mapped errors."""
    if errors:
        errors[:] = [map_error(e, production, english) if getattr(e, "parvis_raw", None) or "code" not in (e.extensions or {})
                     else e for e in errors]


STATUS = {"BAD_USER_INPUT": 400, "UNAUTHENTICATED": 401, "FORBIDDEN": 403, "NOT_FOUND": 404, "CONFLICT": 409,
          "SERVICE_UNAVAILABLE": 503}
MASKED = "Erreur interne : l'équipe technique est prévenue."


def route_error(exc: Exception, production: bool) -> tuple[int, str, str, str | None]:
    """(status, code, message, field) of an error on a plain HTTP route (exports, pages): a refusal says what to
    do; anything else is logged with its trace and, in production, shown without its text, as in GraphQL."""
    if isinstance(exc, ParvisError) and exc.code in STATUS:
        return STATUS[exc.code], exc.code, exc.message, exc.field
    log.error("unexpected error on a route", exc_info=(type(exc), exc, exc.__traceback__))
    message = MASKED if production else f"{type(exc).__name__}: {exc}"
    return 500, "INTERNAL_SERVER_ERROR", message, None


def english_request(request) -> bool:
    """Whether the request asks for English (Accept-Language): French otherwise."""
    headers = getattr(request, "headers", None)
    return prefers_english(headers.get("accept-language") if headers is not None else None)


class ErrorCodes(SchemaExtension):
    """Maps execution errors as they leave each operation (see map_error). Strawberry returns parse
    errors without resuming this hook, so the HTTP view maps the final result as well."""

    def __init__(self, production: bool = False, english: bool = False):
        self.production = production
        self.english = english

    def _say(self, message: str) -> str:
        return message if self.english else french(message)

    def _map(self, error: GraphQLError) -> GraphQLError:
        original = error.original_error
        if isinstance(original, ParvisError) and not (self.production and original.code == "INTERNAL_SERVER_ERROR"):
            ext = {"code": original.code}
            if original.field:
                ext["field"] = original.field
            return _rebuild(error, original.message, ext)
        raw = getattr(error, "parvis_raw", None)
        if raw:  # mapped already, for another request (a cached validation): said again in this one's language
            return _rebuild(error, self._say(raw), dict(error.extensions or {}), raw)
        if error.extensions and "code" in error.extensions:
            return error
        if original is None:
            # Parse and validation errors (syntax, unknown field, depth/token/alias limits).
            return _rebuild(error, self._say(error.message), {"code": "GRAPHQL_VALIDATION_FAILED"}, error.message)
        if isinstance(original, (GraphQLError, StrawberryInputCoercionError)):
            # A variable's value that its type refuses (`"2026-13-45T10:00"` for a DateTime): the caller's mistake,
            # as the same value written in the document is.
            return _rebuild(error, self._say(error.message), {"code": "BAD_USER_INPUT"}, error.message)
        log.error("unexpected error in %s", error.path, exc_info=(type(original), original, original.__traceback__))
        message = MASKED if self.production else f"{type(original).__name__}: {original}"
        return _rebuild(error, message, {"code": "INTERNAL_SERVER_ERROR"})

    def on_operation(self) -> Iterator[None]:
        yield
        result = self.execution_context.result
        if result is not None:
            context = self.execution_context.context
            english = english_request(context.get("request")) if isinstance(context, dict) else False
            map_errors(getattr(result, "errors", None), self.production, english)


class OperationMetrics(SchemaExtension):
    """RED metrics of GraphQL operations, by operation type and first root field."""

    def on_operation(self) -> Iterator[None]:
        started = time.perf_counter()
        yield
        ctx = self.execution_context
        op_type, field = "unknown", "unknown"
        try:
            op_type = ctx.operation_type.value
            operation = next(d for d in ctx.graphql_document.definitions if hasattr(d, "selection_set"))
            field = operation.selection_set.selections[0].name.value
        except Exception:  # noqa: BLE001 - unparsable documents are counted as unknown
            pass
        result = ctx.result
        outcome = "error" if (result is not None and getattr(result, "errors", None)) or ctx.pre_execution_errors else "ok"
        GRAPHQL_OPERATIONS.labels(op_type, field, outcome).inc()
        GRAPHQL_DURATION.labels(op_type, field).observe(time.perf_counter() - started)
