"""Every GraphQL error leaves with `extensions.code`: one place maps service errors to codes."""
from __future__ import annotations

import logging
import time
from typing import Iterator

from graphql import GraphQLError
from prometheus_client import Counter, Histogram
from strawberry.extensions import SchemaExtension

from contracts.errors import ParvisError
from core.logjson import SLO_BUCKETS

log = logging.getLogger("parvis.gateway")

# Labelled by the schema's root field, never by the client's operation name: bounded cardinality.
GRAPHQL_OPERATIONS = Counter("parvis_graphql_operations_total", "GraphQL operations by root field and outcome",
                             ["type", "field", "outcome"])
GRAPHQL_DURATION = Histogram("parvis_graphql_operation_duration_seconds", "GraphQL operation time",
                             ["type", "field"], buckets=SLO_BUCKETS)


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
