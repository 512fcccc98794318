"""The public `events` query without the general GraphQL executor: compiled once per document.

Why: graphql-core's executor spends ~17 ms completing a page of 50 events (a resolver call, an
`is_awaitable` check and a path object per field); the public agenda is the platform's hottest read. As
the JIT executors of the best gateways do (graphql-jit, Hot Chocolate), a document is parsed and
validated once, its selections are compiled into a plan of getters and serialisers, and each request
only coerces its variables and walks the plan over the objects of the gateway's public copy
(gateway/readmodel.py).

What it answers: an HTTP POST of an anonymous caller (or a citizen) whose operation is a query made only of
`events` (and `__typename`) root fields, whose selections are plain fields of object types (aliases,
fragments, `@skip` / `@include` allowed), and for which the public copy is ready. Everything else — other
fields, mutations, subscriptions, field arguments below the root, permissions or extensions on a field, an
invalid document or variables, a filter the contract refuses, a null where the schema says non-null —
returns None and the request goes to Strawberry, which answers it (or explains the error) as always. The
same objects and the same serialisers (the schema's own) are used on both paths; tests/unit/test_fastpath.py
compares the two on many documents.
"""
from __future__ import annotations

import time
from datetime import datetime, timezone
from typing import Any, Callable

from graphql import (FieldNode, FragmentSpreadNode, GraphQLEnumType, GraphQLList, GraphQLNonNull, GraphQLObjectType,
                     GraphQLScalarType, InlineFragmentNode, OperationType)
from graphql.execution.values import get_argument_values, get_directive_values, get_variable_values
from graphql.type import GraphQLIncludeDirective, GraphQLSkipDirective
from graphql.utilities import get_operation_ast
from prometheus_client import Counter

from gateway.compiled import strawberry_internals as internals
from gateway.compiled.plans import PlanCache, Unsupported
from gateway.errors import GRAPHQL_DURATION, GRAPHQL_OPERATIONS
from gateway.schema.agenda import public_connection

ROOT_FIELDS = {"events"}
RENDERED = "_parvis_rendered"  # attribute of the public copy's objects holding their renderings
RENDER_CACHE = 4

FAST_PATH = Counter("parvis_gateway_fast_path_total", "Public queries answered by the compiled path, or not",
                    ["outcome"])


class FieldPlan:
    __slots__ = ("key", "node", "field_def", "sfield", "get", "complete", "conditions", "typename", "static")

    def __init__(self, key, node, conditions):
        self.key, self.node, self.conditions = key, node, conditions
        self.field_def = self.sfield = self.get = self.complete = self.typename = None
        self.static = not conditions  # its output depends on the object only, not on the variables

    def active(self, variables: dict) -> bool:
        for node in self.conditions:
            skip = get_directive_values(GraphQLSkipDirective, node, variables)
            if skip is not None and skip["if"]:
                return False
            include = get_directive_values(GraphQLIncludeDirective, node, variables)
            if include is not None and not include["if"]:
                return False
        return True


class Plan:
    __slots__ = ("operation", "root")

    def __init__(self, operation, root: list[FieldPlan]):
        self.operation, self.root = operation, root


class FastQueries(PlanCache):
    def __init__(self, schema, public_agenda):
        super().__init__(schema)
        self.public = public_agenda

    def _compile(self, query: str, operation_name: str | None) -> Plan:
        document = self._document(query)
        operation = get_operation_ast(document, operation_name)
        if operation is None or operation.operation is not OperationType.QUERY:
            raise Unsupported("not a query")
        fragments = {d.name.value: d for d in document.definitions if d.kind == "fragment_definition"}
        root = self._selections(self.gql.query_type, operation.selection_set, fragments, (), root=True)
        if not any(f.typename is None for f in root):
            raise Unsupported("no field to resolve")
        return Plan(operation, root)

    def _selections(self, obj_type: GraphQLObjectType, selection_set, fragments, inherited, root=False):
        out: list[FieldPlan] = []
        keys: set[str] = set()
        self._collect(obj_type, selection_set, fragments, inherited, root, out, keys, set())
        return out

    def _collect(self, obj_type, selection_set, fragments, inherited, root, out, keys, visiting):
        for sel in selection_set.selections:
            conditions = inherited
            for d in sel.directives or ():
                if d.name.value not in ("skip", "include"):
                    raise Unsupported(f"directive @{d.name.value}")
                conditions = conditions + (sel,)
                break
            if isinstance(sel, FieldNode):
                key = sel.alias.value if sel.alias else sel.name.value
                if key in keys:
                    raise Unsupported("a response key selected twice (field merging)")
                keys.add(key)
                out.append(self._field(obj_type, sel, key, conditions, fragments, root))
            else:
                if isinstance(sel, FragmentSpreadNode):
                    name = sel.name.value
                    if name in visiting:
                        raise Unsupported("fragment cycle")
                    frag = fragments[name]
                    type_condition, selections = frag.type_condition, frag.selection_set
                    if frag.directives:
                        raise Unsupported("directive on a fragment definition")
                    visiting = visiting | {name}
                elif isinstance(sel, InlineFragmentNode):
                    type_condition, selections = sel.type_condition, sel.selection_set
                else:  # pragma: no cover - the grammar has no other selection
                    raise Unsupported("selection")
                if type_condition is not None and type_condition.name.value != obj_type.name:
                    raise Unsupported("fragment on another type")
                self._collect(obj_type, selections, fragments, conditions, root, out, keys, visiting)

    def _field(self, obj_type, node: FieldNode, key: str, conditions, fragments, root: bool) -> FieldPlan:
        fp = FieldPlan(key, node, conditions)
        name = node.name.value
        if name == "__typename":
            fp.typename = obj_type.name
            return fp
        if root and name not in ROOT_FIELDS:
            raise Unsupported(f"root field {name}")
        field_def = obj_type.fields[name]
        sfield = internals.field_definition(field_def)
        if sfield is None or sfield.permission_classes or sfield.extensions:
            raise Unsupported(f"{obj_type.name}.{name} has permissions or extensions")
        if not root:
            if node.arguments:
                raise Unsupported("arguments below the root")
            fp.get = internals.plain_getter(sfield)
            if fp.get is None:
                raise Unsupported(f"{obj_type.name}.{name} has a resolver with arguments")
        fp.field_def, fp.sfield = field_def, sfield
        fp.complete, static = self._completer(field_def.type, node, fragments)
        fp.static = fp.static and static
        return fp

    def _completer(self, gql_type, node: FieldNode, fragments) -> tuple[Callable[[Any, dict], Any], bool]:
        """How to complete a value of this type, and whether the result depends on the object only."""
        if isinstance(gql_type, GraphQLNonNull):
            inner, static = self._completer(gql_type.of_type, node, fragments)

            def non_null(value, variables):
                out = inner(value, variables)
                if out is None:
                    raise Unsupported("null for a non-null field: Strawberry reports the error")
                return out
            return non_null, static
        if isinstance(gql_type, GraphQLList):
            inner, static = self._completer(gql_type.of_type, node, fragments)
            return (lambda value, variables: None if value is None else [inner(v, variables) for v in value]), static
        if isinstance(gql_type, (GraphQLScalarType, GraphQLEnumType)):
            serialize = gql_type.serialize
            return (lambda value, variables: None if value is None else serialize(value)), True
        if isinstance(gql_type, GraphQLObjectType):
            if node.selection_set is None:
                raise Unsupported("object without selections")
            fields = self._selections(gql_type, node.selection_set, fragments, ())
            static = all(f.static for f in fields)
            if not static:
                return (lambda value, variables: None if value is None else _object(fields, value, variables)), False
            plan_key = object()

            def complete_object(value, variables):
                # The copy's objects never change (a changed event is a new object): their rendering under
                # a static plan is kept on them (RENDER_CACHE plans at most).
                if value is None:
                    return None
                cache = getattr(value, RENDERED, None)
                if cache is None:
                    return _object(fields, value, variables)
                out = cache.get(plan_key)
                if out is None:
                    if len(cache) >= RENDER_CACHE:
                        cache.clear()
                    out = cache[plan_key] = _object(fields, value, variables)
                return out
            return complete_object, True
        raise Unsupported(f"type {gql_type}")

    # -- executing -------------------------------------------------------------------------------
    def execute(self, payload: Any, now: datetime | None = None) -> dict | None:
        """The response of a public query, or None when Strawberry must answer it."""
        planned = self.planned(payload, FAST_PATH) if self.public.serving else None
        if planned is None:
            return None
        plan, variables = planned
        started = time.perf_counter()
        try:
            coerced = get_variable_values(self.gql, plan.operation.variable_definitions or [], variables)
            if isinstance(coerced, list):
                raise Unsupported("invalid variables")
            now = now or datetime.now(timezone.utc)
            data = {}
            for fp in plan.root:
                if not fp.active(coerced):
                    continue
                if fp.typename is not None:
                    data[fp.key] = fp.typename
                    continue
                args = get_argument_values(fp.field_def, fp.node, coerced)
                args = internals.convert_arguments(self.schema, fp.sfield, args)
                connection = public_connection(self.public, args.get("filter"), args.get("first", 20),
                                               args.get("after"), now)
                data[fp.key] = fp.complete(connection, coerced)
        except Exception:  # noqa: BLE001 - Unsupported, a refused filter, anything: Strawberry answers and explains
            FAST_PATH.labels("fallback").inc()
            return None
        FAST_PATH.labels("served").inc()
        GRAPHQL_OPERATIONS.labels("query", "events", "ok").inc()
        GRAPHQL_DURATION.labels("query", "events").observe(time.perf_counter() - started)
        return {"data": data}


def _object(fields: list[FieldPlan], value, variables: dict) -> dict:
    out = {}
    for fp in fields:
        if fp.conditions and not fp.active(variables):
            continue
        if fp.typename is not None:
            out[fp.key] = fp.typename
        else:
            out[fp.key] = fp.complete(fp.get(value), variables)
    return out
