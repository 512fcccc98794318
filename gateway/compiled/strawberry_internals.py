"""Every part of Strawberry that is not its public API and that the compiled paths rely on, in one place.

Pinned: pyproject.toml pins strawberry-graphql to STRAWBERRY_VERSION. `check()` looks at each part and says
what changed; tests/unit/test_compiled_paths.py fails loudly on an upgrade that changes any of them, and the
gateway hands every request to Strawberry (the compiled paths stay off) when `check()` finds a problem.
"""
from __future__ import annotations

from importlib.metadata import version
from typing import Any, Callable

import strawberry
from graphql import GraphQLField, GraphQLSchema

STRAWBERRY_VERSION = "0.341.2"
BACKREF = "strawberry-definition"  # where Strawberry keeps its field definition in a graphql-core field


def graphql_schema(schema: strawberry.Schema) -> GraphQLSchema:
    """The graphql-core schema Strawberry built (`Schema._schema`)."""
    return schema._schema


def field_definition(field: GraphQLField):
    """Strawberry's definition of a graphql-core field (its resolver, permissions, extensions), or None."""
    return field.extensions.get(BACKREF)


def plain_getter(sfield) -> Callable[[Any], Any] | None:
    """How to read a field of an object without the executor: the attribute itself, or a resolver method that
    takes nothing but `self` (its undecorated function, `base_resolver.wrapped_func`); None otherwise."""
    from operator import attrgetter

    resolver = sfield.base_resolver
    if resolver is None:
        return attrgetter(sfield.python_name)
    if (not resolver.arguments and not resolver.is_async and resolver.info_parameter is None
            and resolver.self_parameter is not None):
        return resolver.wrapped_func
    return None


def convert_arguments(schema: strawberry.Schema, sfield, args: dict) -> dict:
    """Coerced GraphQL arguments as the resolver receives them (input objects as Strawberry's instances)."""
    from strawberry.types.arguments import convert_arguments as convert

    return convert(args, sfield.arguments, scalar_registry=schema.schema_converter.scalar_registry,
                   config=schema.config)


def only_permission_extensions(sfield) -> bool:
    """Strawberry holds a field's permission classes as a PermissionExtension: true when it has no other one."""
    from strawberry.permission import PermissionExtension

    return all(isinstance(e, PermissionExtension) for e in sfield.extensions)


@strawberry.type
class _Probe:  # named Probe in the schema
    plain: int = 1

    @strawberry.field
    def computed(self) -> int:
        return 2

    @strawberry.field
    def with_argument(self, x: int) -> int:
        return x


@strawberry.type
class _ProbeQuery:
    probe: _Probe = strawberry.field(default_factory=_Probe)


def check() -> list[str]:
    """What differs from what the compiled paths were written against (empty when all is as expected)."""
    problems = []
    installed = version("strawberry-graphql")
    if installed != STRAWBERRY_VERSION:
        problems.append(f"strawberry-graphql {installed} installed, the compiled paths know {STRAWBERRY_VERSION}")
    try:
        schema = strawberry.Schema(query=_ProbeQuery)
        gql = graphql_schema(schema)
        if not isinstance(gql, GraphQLSchema):
            problems.append("Schema._schema is not graphql-core's schema")
            return problems
        fields = gql.type_map["Probe"].fields
        defs = {name: field_definition(f) for name, f in fields.items()}
        if any(d is None for d in defs.values()):
            problems.append(f"graphql-core fields no longer carry {BACKREF!r}")
            return problems
        probe = _Probe()
        if plain_getter(defs["plain"])(probe) != 1 or plain_getter(defs["computed"])(probe) != 2:
            problems.append("a field's getter (python_name, base_resolver.wrapped_func) reads otherwise")
        if plain_getter(defs["withArgument"]) is not None:
            problems.append("base_resolver.arguments no longer lists a resolver's arguments")
        if convert_arguments(schema, defs["withArgument"], {"x": 3}) != {"x": 3}:
            problems.append("strawberry.types.arguments.convert_arguments converts otherwise")
        if not only_permission_extensions(defs["plain"]):
            problems.append("a plain field carries extensions")
    except Exception as exc:  # noqa: BLE001 - any change of shape is a problem to report, not a crash
        problems.append(f"{type(exc).__name__}: {exc}")
    return problems
