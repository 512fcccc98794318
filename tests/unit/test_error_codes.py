"""Every GraphQL error carries extensions.code; internal errors never show a trace, and in
production not even their message."""
import pytest
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
    assert "trop profonde" in error.message and error.extensions == {"code": "GRAPHQL_VALIDATION_FAILED"}


def test_syntax_and_token_limit_errors_are_coded():
    from gateway.schema import MAX_TOKENS, build_schema

    from gateway.errors import map_errors

    schema = build_schema()
    for query in ("{ me { role } ", "{ " + " ".join("communes { slug }" for _ in range(MAX_TOKENS // 3)) + " }"):
        errors = schema.execute_sync(query).errors
        map_errors(errors, production=True)  # as the HTTP view does with every result
        [error] = errors
        assert error.extensions == {"code": "GRAPHQL_VALIDATION_FAILED"}, error.message[:80]


@pytest.mark.parametrize("language, expected", [
    (None, "Date et heure invalides"), ("fr-FR,fr;q=0.9", "Date et heure invalides"),
    ("en-GB,en;q=0.8", "Value cannot represent a DateTime"),
])
def test_a_mistake_in_a_variable_is_the_callers_in_the_callers_language(language, expected):
    """A malformed DateTime given as a variable was INTERNAL_SERVER_ERROR ("Erreur interne" in production,
    logged with a traceback); the same value written in the document was a validation error."""
    from types import SimpleNamespace

    from gateway.schema import build_schema

    schema = build_schema(production=True)
    request = SimpleNamespace(headers={"accept-language": language} if language else {})
    query = "query($f: EventFilter) { events(filter: $f) { totalCount } }"
    result = schema.execute_sync(query, variable_values={"f": {"from": "2026-13-45T10:00"}},
                                 context_value={"request": request})
    [error] = result.errors
    assert error.extensions == {"code": "BAD_USER_INPUT"} and expected in error.message
    ints = schema.execute_sync("query($n: Int!) { events(first: $n) { totalCount } }", variable_values={"n": "abc"},
                               context_value={"request": request})
    assert ints.errors[0].extensions == {"code": "BAD_USER_INPUT"}


@pytest.mark.parametrize("query, french", [
    ("{ events(", "Erreur de syntaxe GraphQL : Name attendu, <EOF> trouvé."),
    ("{ nope }", "Le champ « nope » n'existe pas sur le type « Query »."),
    ('{ events(first: "x") { totalCount } }', '"x" n\'est pas une valeur de type Int.'),
    ("{ events(firs: 1) { totalCount } }", "Argument inconnu « firs » pour le champ « Query.events »."),
    ("{ events }", "Le champ « events » (EventConnection!) demande une sélection de sous-champs"),
])
def test_validation_errors_are_in_french(query, french):
    from types import SimpleNamespace

    from gateway.errors import map_errors
    from gateway.schema import build_schema

    schema = build_schema()
    result = schema.execute_sync(query, context_value={"request": SimpleNamespace(headers={})})
    map_errors(result.errors, False)  # as the HTTP view does (parse errors skip the extension)
    assert result.errors[0].message.startswith(french), result.errors[0].message
    assert result.errors[0].extensions["code"] == "GRAPHQL_VALIDATION_FAILED"


def test_pydantic_refusals_are_in_french():
    from pydantic import ValidationError

    from contracts.agenda import SearchEvents
    from contracts.errors import validation_error

    with pytest.raises(ValidationError) as exc:
        SearchEvents.model_validate({"first": 600})
    assert validation_error(exc.value).message == "first : au plus 500"
    with pytest.raises(ValidationError) as exc:
        SearchEvents.model_validate({"filter": {"starts_after": "garbage"}})
    assert "date et heure attendues" in validation_error(exc.value).message
