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


# pydantic's messages are English and name Python types: what a person reads instead, by error type.
_FRENCH = {
    "missing": "valeur obligatoire",
    "extra_forbidden": "champ inconnu",
    "less_than_equal": "au plus {le}",
    "less_than": "moins de {lt}",
    "greater_than_equal": "au moins {ge}",
    "greater_than": "plus de {gt}",
    "string_too_long": "{max_length} caractères au plus",
    "string_too_short": "{min_length} caractère(s) au moins",
    "too_long": "{max_length} élément(s) au plus",
    "too_short": "{min_length} élément(s) au moins",
    "string_pattern_mismatch": "format invalide",
    "literal_error": "valeur attendue : {expected}",
    "enum": "valeur attendue : {expected}",
    "int_parsing": "nombre entier attendu",
    "int_type": "nombre entier attendu",
    "int_from_float": "nombre entier attendu",
    "float_parsing": "nombre attendu",
    "float_type": "nombre attendu",
    "bool_parsing": "vrai ou faux attendu",
    "bool_type": "vrai ou faux attendu",
    "string_type": "texte attendu",
    "list_type": "liste attendue",
    "dict_type": "objet attendu",
    "model_type": "objet attendu",
    "datetime_parsing": "date et heure attendues, au format ISO 8601 (2026-12-01T19:30:00+01:00)",
    "datetime_from_date_parsing": "date et heure attendues, au format ISO 8601 (2026-12-01T19:30:00+01:00)",
    "datetime_type": "date et heure attendues, au format ISO 8601 (2026-12-01T19:30:00+01:00)",
    "date_parsing": "date attendue, au format AAAA-MM-JJ",
    "date_from_datetime_parsing": "date attendue, au format AAAA-MM-JJ",
    "date_type": "date attendue, au format AAAA-MM-JJ",
    "time_parsing": "heure attendue, au format HH:MM",
    "url_parsing": "adresse web invalide",
    "url_scheme": "adresse web invalide (http:// ou https:// attendu)",
    "uuid_parsing": "identifiant (UUID) invalide",
}


def french_message(error: dict) -> str:
    """One pydantic error as a person reads it (a validator's own message, written by us, is kept)."""
    if error.get("type") == "value_error":
        return str(error.get("ctx", {}).get("error") or error.get("msg", "valeur invalide")).removeprefix("Value error, ")
    template = _FRENCH.get(error.get("type", ""))
    if template is None:
        return "valeur invalide"
    try:
        return template.format(**(error.get("ctx") or {}))
    except (KeyError, IndexError):
        return template.split(" {")[0]


def validation_error(exc) -> BadInput:
    """The first problem of a pydantic ValidationError, named by its field, in French, as a person can act on it."""
    first = exc.errors()[0]
    field = ".".join(str(p) for p in first.get("loc", ())) or None
    msg = french_message(first)
    return BadInput(f"{field} : {msg}" if field else msg, field)
