"""What both compiled paths share: documents parsed and validated once, with the limits of every request, and
kept as plans (or as "not for this path") by their text."""
from __future__ import annotations

import hashlib
from collections import OrderedDict
from typing import Any

from graphql import parse, specified_rules, validate
from graphql.error import GraphQLError
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
