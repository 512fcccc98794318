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


# pydantic's error types a request meets most, said in French (the contract's bound in `ctx`); others keep
# pydantic's English text behind the field's name.
_FRENCH = {
    "missing": "obligatoire",
    "string_too_long": "{max_length} caractères au plus",
    "string_too_short": "{min_length} caractère(s) au moins",
    "too_long": "{max_length} élément(s) au plus",
    "too_short": "{min_length} élément(s) au moins",
    "string_pattern_mismatch": "format invalide (lettres, chiffres, « - » et « _ »)",
    "greater_than_equal": "{ge} au moins",
    "greater_than": "plus de {gt}",
    "less_than_equal": "{le} au plus",
    "less_than": "moins de {lt}",
    "literal_error": "une valeur parmi {expected}",
    "int_parsing": "un nombre entier",
    "int_type": "un nombre entier",
    "bool_type": "vrai ou faux",
    "datetime_from_date_parsing": "une date et une heure (AAAA-MM-JJTHH:MM)",
    "datetime_parsing": "une date et une heure (AAAA-MM-JJTHH:MM)",
    "extra_forbidden": "champ inconnu",
}


def validation_error(exc) -> BadInput:
    """The first problem of a pydantic ValidationError, named by its field, as a person can act on it."""
    first = exc.errors()[0]
    field = ".".join(str(p) for p in first.get("loc", ())) or None
    template = _FRENCH.get(first.get("type", ""))
    try:
        msg = template.format(**(first.get("ctx") or {})) if template else first.get("msg", "valeur invalide")
    except (KeyError, IndexError):
        msg = first.get("msg", "valeur invalide")
    return BadInput(f"{field} : {msg}" if field else msg, field)
