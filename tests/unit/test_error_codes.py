"""Every GraphQL error carries extensions.code; internal errors never show a trace, and in
production not even their message."""
import strawberry

from contracts.errors import BadInput, NotFound
from gateway.errors import ErrorCodes
from gateway.rpc import RemoteError, remote_error


@strawberry.type
class Query:
    @strawberry.field
    def bad(self) -> str:
        raise BadInput("La date de fin précède la date de début.", "endsAt")

    @strawberry.field
    def missing(self) -> str:
        raise NotFound("Évènement introuvable.")

    @strawberry.field
    def bug(self) -> str:
        raise RuntimeError("secret internals at /srv/app.py line 12")

    @strawberry.field
    def remote(self) -> str:
        raise RemoteError("KeyError: 'password'")


def run(query, production):
    schema = strawberry.Schema(query=Query, extensions=[lambda: ErrorCodes(production=production)])
    return schema.execute_sync(query)


def test_typed_errors_keep_message_and_get_code_and_field():
    result = run("{ bad }", production=True)
    [error] = result.errors
    assert error.message == "La date de fin précède la date de début."
    assert error.extensions == {"code": "BAD_USER_INPUT", "field": "endsAt"}
    assert run("{ missing }", production=True).errors[0].extensions == {"code": "NOT_FOUND"}


def test_internal_errors_are_masked_in_production_and_coded_in_dev():
    for query in ("{ bug }", "{ remote }"):
        [prod] = run(query, production=True).errors
        assert prod.extensions == {"code": "INTERNAL_SERVER_ERROR"}
        assert "internals" not in prod.message and "password" not in prod.message
        [dev] = run(query, production=False).errors
        assert dev.extensions == {"code": "INTERNAL_SERVER_ERROR"}
        assert "Traceback" not in dev.message


def test_validation_errors_are_coded():
    [error] = run("{ nope }", production=False).errors
    assert error.extensions == {"code": "GRAPHQL_VALIDATION_FAILED"}


def test_remote_errors_come_back_typed():
    exc = remote_error({"exc_type": "BadInput", "exc_args": ["Titre trop long", "title"], "value": "Titre trop long"})
    assert isinstance(exc, BadInput) and exc.field == "title" and exc.message == "Titre trop long"
    assert isinstance(remote_error({"exc_type": "KeyError", "exc_args": ["x"], "value": "'x'"}), RemoteError)


def test_a_refusal_without_a_field_comes_back_without_one():
    """nameko serialises exception arguments as text: a field of None crossed the bus as the string 'None'."""
    from nameko.exceptions import serialize

    from contracts.errors import Forbidden

    exc = remote_error(serialize(Forbidden("Vous n'avez pas le droit de faire cette action.")))
    assert isinstance(exc, Forbidden) and exc.field is None


@strawberry.type
class Node:
    name: str = "n"

    @strawberry.field
    def child(self) -> "Node":
        return Node()


@strawberry.type
class DeepQuery:
    @strawberry.field
    def root(self) -> Node:
        return Node()


def test_the_gateway_limits_query_depth():
    from gateway.schema import MAX_DEPTH, extensions

    schema = strawberry.Schema(query=DeepQuery, extensions=extensions(production=False))
    ok = "{ root " + "{ child " * (MAX_DEPTH - 1) + "{ name }" + " }" * (MAX_DEPTH - 1) + " }"
    too_deep = "{ root " + "{ child " * MAX_DEPTH + "{ name }" + " }" * MAX_DEPTH + " }"
    assert schema.execute_sync(ok).errors is None
    [error] = schema.execute_sync(too_deep).errors
    assert "depth" in error.message and error.extensions == {"code": "GRAPHQL_VALIDATION_FAILED"}


def test_syntax_and_token_limit_errors_are_coded():
    from gateway.schema import MAX_TOKENS, build_schema

    from gateway.errors import map_errors

    schema = build_schema()
    for query in ("{ me { role } ", "{ " + " ".join("communes { slug }" for _ in range(MAX_TOKENS // 3)) + " }"):
        errors = schema.execute_sync(query).errors
        map_errors(errors, production=True)  # as the HTTP view does with every result
        [error] = errors
        assert error.extensions == {"code": "GRAPHQL_VALIDATION_FAILED"}, error.message[:80]
