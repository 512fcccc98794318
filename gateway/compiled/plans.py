"""What both compiled paths share: documents parsed and validated once, with the limits of every request, and
kept as plans (or as "not for this path") by their text."""
from __future__ import annotations

import hashlib
import time
from collections import OrderedDict
from typing import Any, Awaitable, Callable

from graphql import FieldNode, OperationType, parse, specified_rules, validate
from graphql.error import GraphQLError
from graphql.utilities import get_operation_ast
from prometheus_client import Counter

from gateway.compiled.strawberry_internals import graphql_schema
from gateway.schema import LIMIT_RULES, MAX_DOCUMENT_BYTES, MAX_TOKENS

PLAN_CACHE_SIZE = 512


class Unsupported(Exception):
    """Not for the compiled path: Strawberry answers."""


class PlanCache:
    """Documents compiled once: plans kept by (query, operation name), the least recently used dropped first;
    a None plan means "not for the compiled path" (Strawberry answers). Subclasses write `_compile`."""

    size = PLAN_CACHE_SIZE

    def __init__(self, schema):
        self.schema = schema  # the Strawberry schema
        self.gql = graphql_schema(schema)
        self.plans: OrderedDict[tuple[bytes, str | None], Any] = OrderedDict()

    def plan(self, query: str, operation_name: str | None):
        # Keyed on a digest: the cache holds PLAN_CACHE_SIZE plans, never that many documents' texts.
        key = (hashlib.blake2b(query.encode(), digest_size=16).digest(), operation_name)
        if key in self.plans:
            self.plans.move_to_end(key)
            return self.plans[key]
        try:
            plan = self._compile(query, operation_name)
        except (Unsupported, GraphQLError, ValueError):  # ValueError: a shape unpacked where it did not fit
            plan = None
        self.plans[key] = plan
        if len(self.plans) > self.size:
            self.plans.popitem(last=False)
        return plan

    def _compile(self, query: str, operation_name: str | None):
        raise NotImplementedError

    def planned(self, payload: Any, outcomes: Counter) -> tuple[Any, dict] | None:
        """(plan, variables) of a request's JSON body, or None when it is not one this path compiles."""
        if not isinstance(payload, dict):
            return None
        query, variables = payload.get("query"), payload.get("variables") or {}
        operation_name = payload.get("operationName")
        if not isinstance(query, str) or not isinstance(variables, dict) or not (
                operation_name is None or isinstance(operation_name, str)):
            return None
        if len(query) > MAX_DOCUMENT_BYTES:
            return None  # Strawberry refuses it, with its code
        plan = self.plan(query, operation_name)
        if plan is None:
            outcomes.labels("not_compiled").inc()
            return None
        return plan, variables

    def _document(self, query: str):
        """Parsed and validated with the same limits as every request (depth, aliases, tokens)."""
        document = parse(query, max_tokens=MAX_TOKENS)
        if validate(self.gql, document, [*specified_rules, *LIMIT_RULES]):
            raise Unsupported("invalid document")
        return document


def plain_fields(selection_set, allowed: set[str]) -> list[tuple[str, FieldNode]]:
    """(response key, field) of a selection set made only of plain fields among `allowed`, each key once."""
    if selection_set is None:
        raise Unsupported("no selections")
    out, keys = [], set()
    for sel in selection_set.selections:
        if not isinstance(sel, FieldNode) or sel.directives or sel.name.value not in allowed:
            raise Unsupported("not a plain field of the expected ones")
        key = sel.alias.value if sel.alias else sel.name.value
        if key in keys:
            raise Unsupported("a response key selected twice (field merging)")
        keys.add(key)
        out.append((key, sel))
    if not out:
        raise Unsupported("no selections")
    return out


class CompiledMutation(PlanCache):
    """What the compiled mutations share (votes.py, ballots.py): a document made of one mutation field, compiled
    once; the service's answer rendered, or its error answered in Strawberry's form, with the operation's metrics.
    Subclasses name their `field`, check the schema's shape (`_schema_matches`) and write `_compile`, whose plan
    has `node`, `key` and `render`."""

    size = 64
    field: str

    def __init__(self, schema, production: bool = False):
        super().__init__(schema)
        self.production = production
        self.enabled = self._schema_matches()

    def _schema_matches(self) -> bool:
        raise NotImplementedError

    def _mutation_field(self, query: str, operation_name: str | None):
        """(response key, field node, operation) of a document whose operation is a mutation made only of our field
        (an alias allowed), with no fragment and no directive on the operation."""
        document = self._document(query)
        operation = get_operation_ast(document, operation_name)
        if operation is None or operation.operation is not OperationType.MUTATION:
            raise Unsupported("not a mutation")
        if any(d.kind != "operation_definition" for d in document.definitions) or operation.directives:
            raise Unsupported("fragments or directives")
        ((key, node),) = plain_fields(operation.selection_set, {self.field})
        return key, node, operation

    async def answer(self, plan, call: Callable[[], Awaitable[Any]]) -> dict:
        """The response: the plan's rendering of what `call()` returns, or its error as Strawberry answers an error
        of the resolver (same message, code, location and path)."""
        from gateway.errors import GRAPHQL_DURATION, GRAPHQL_OPERATIONS, map_error, operation_outcome

        started = time.perf_counter()
        try:
            result = await call()
        except Exception as exc:  # noqa: BLE001 - answered as Strawberry answers an error of the resolver
            error = GraphQLError(str(exc), nodes=[plan.node], path=[plan.key], original_error=exc)
            outcome = operation_outcome([error])
            response = {"data": None, "errors": [map_error(error, self.production).formatted]}
        else:
            outcome, response = "ok", {"data": {plan.key: plan.render(result)}}
        GRAPHQL_OPERATIONS.labels("mutation", self.field, outcome).inc()
        GRAPHQL_DURATION.labels("mutation", self.field).observe(time.perf_counter() - started)
        return response
