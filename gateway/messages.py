"""What graphql-core and Strawberry say in English, said in French (the default) for the people who read it.

Clients get the same `extensions.code` whatever the language; `Accept-Language` preferring English keeps the
original messages. A message this table does not know is prefixed in French and left as it is."""
from __future__ import annotations

import re
from typing import Callable

Rule = tuple[re.Pattern, Callable[[re.Match], str]]


def _q(text: str) -> str:
    return f"« {text} »"


def _rules() -> list[Rule]:
    r: list[tuple[str, Callable[[re.Match], str]]] = [
        (r"Syntax Error: (?P<detail>.*)", lambda m: f"Erreur de syntaxe GraphQL : {syntax(m['detail'])}"),
        (r"Cannot query field '(?P<f>[^']+)' on type '(?P<t>[^']+)'\.(?: Did you mean (?P<s>.+)\?)?",
         lambda m: f"Le champ {_q(m['f'])} n'existe pas sur le type {_q(m['t'])}."
                   + (f" Vouliez-vous dire {m['s']} ?" if m["s"] else "")),
        (r"Unknown argument '(?P<a>[^']+)' on field '(?P<f>[^']+)'\.(?: Did you mean (?P<s>.+)\?)?",
         lambda m: f"Argument inconnu {_q(m['a'])} pour le champ {_q(m['f'])}."
                   + (f" Vouliez-vous dire {m['s']} ?" if m["s"] else "")),
        (r"Field '(?P<f>[^']+)' argument '(?P<a>[^']+)' of type '(?P<t>[^']+)' is required, but it was not provided\.",
         lambda m: f"Le champ {_q(m['f'])} demande l'argument {_q(m['a'])} ({m['t']})."),
        (r"Field '(?P<f>[^']+)' of type '(?P<t>[^']+)' must have a selection of subfields\. Did you mean '(?P<s>.+)'\?",
         lambda m: f"Le champ {_q(m['f'])} ({m['t']}) demande une sélection de sous-champs : {_q(m['s'])}."),
        (r"Field '(?P<f>[^']+)' must not have a selection since type '(?P<t>[^']+)' has no subfields\.",
         lambda m: f"Le champ {_q(m['f'])} ({m['t']}) n'a pas de sous-champs : retirez la sélection."),
        (r"Variable '\$(?P<v>[^']+)' got invalid value (?P<val>.*?); (?P<detail>.*)",
         lambda m: f"Valeur invalide pour la variable {_q('$' + m['v'])} : {french(m['detail'])}"),
        (r"Variable '\$(?P<v>[^']+)' has invalid value(?: at (?P<at>\S+?))?: (?P<detail>.*)",
         lambda m: f"Valeur invalide pour la variable {_q('$' + m['v'])}"
                   + (f" ({m['at'].lstrip('.')})" if m["at"] else "") + f" : {french(m['detail'])}"),
        (r"Variable '\$(?P<v>[^']+)' of required type '(?P<t>[^']+)' was not provided\.",
         lambda m: f"La variable {_q('$' + m['v'])} ({m['t']}) est obligatoire."),
        (r"Variable '\$(?P<v>[^']+)' of non-null type '(?P<t>[^']+)' must not be null\.",
         lambda m: f"La variable {_q('$' + m['v'])} ({m['t']}) ne peut pas être nulle."),
        (r"Variable '\$(?P<v>[^']+)' is never used(?: in operation '[^']+')?\.",
         lambda m: f"La variable {_q('$' + m['v'])} est déclarée mais jamais utilisée."),
        (r"Variable '\$(?P<v>[^']+)' is not defined(?: by operation '[^']+')?\.",
         lambda m: f"La variable {_q('$' + m['v'])} n'est pas déclarée."),
        (r"Variable '\$(?P<v>[^']+)' of type '(?P<t>[^']+)' used in position expecting type '(?P<e>[^']+)'\.",
         lambda m: f"La variable {_q('$' + m['v'])} est de type {m['t']}, {m['e']} est attendu ici."),
        (r"Expected value of type '(?P<t>[^']+)', found (?P<v>.*?)(?:; (?P<detail>.*))?",
         lambda m: f"Valeur de type {m['t']} attendue, {m['v']} reçu"
                   + (f" : {french(m['detail'])}" if m["detail"] else ".")),
        (r"Expected a value of non-null type '(?P<t>[^']+)' to be provided\.",
         lambda m: f"Une valeur de type {m['t']} est obligatoire."),
        (r"Expected type '(?P<t>[^']+)' to be an object\.", lambda m: f"Un objet {m['t']} est attendu."),
        (r"Field '(?P<f>[^']+)' of required type '(?P<t>[^']+)' was not provided\.",
         lambda m: f"Le champ {_q(m['f'])} ({m['t']}) est obligatoire."),
        (r"Field '(?P<f>[^']+)' is not defined by type '(?P<t>[^']+)'\.(?: Did you mean (?P<s>.+)\?)?",
         lambda m: f"Le champ {_q(m['f'])} n'existe pas dans {_q(m['t'])}."
                   + (f" Vouliez-vous dire {m['s']} ?" if m["s"] else "")),
        (r"(?P<t>Int|Float|String|Boolean|ID) cannot represent (?P<what>.*?): (?P<v>.*)",
         lambda m: f"{m['v']} n'est pas une valeur de type {m['t']}."),
        (r"Value cannot represent a DateTime: (?P<v>.*?)\.(?: .*)?",
         lambda m: f"Date et heure invalides : {m['v']} (format ISO 8601 attendu, par exemple "
                   "2026-12-01T19:30:00+01:00)."),
        (r"Value cannot represent a Date: (?P<v>.*?)\.(?: .*)?",
         lambda m: f"Date invalide : {m['v']} (format AAAA-MM-JJ attendu)."),
        (r"Value '(?P<v>[^']+)' does not exist in '(?P<t>[^']+)' enum\.(?: Did you mean (?P<s>.+)\?)?",
         lambda m: f"La valeur {_q(m['v'])} n'existe pas pour {m['t']}."
                   + (f" Vouliez-vous dire {m['s']} ?" if m["s"] else "")),
        (r"Enum '(?P<t>[^']+)' cannot represent non-enum value: (?P<v>.*?)\.(?: Did you mean (?P<s>.+)\?)?",
         lambda m: f"{m['v']} n'est pas une valeur de {m['t']}." + (f" Vouliez-vous dire {m['s']} ?" if m["s"] else "")),
        (r"This anonymous operation must be the only defined operation\.",
         lambda m: "Une opération sans nom doit être la seule du document."),
        (r"There can be only one operation named '(?P<o>[^']+)'\.", lambda m: f"Deux opérations s'appellent {_q(m['o'])}."),
        (r"Unknown operation named '(?P<o>[^']+)'\.", lambda m: f"Opération inconnue : {_q(m['o'])}."),
        (r"Must provide operation name if query contains multiple operations\.",
         lambda m: "Le document contient plusieurs opérations : indiquez operationName."),
        (r"Unknown type '(?P<t>[^']+)'\.(?: Did you mean (?P<s>.+)\?)?", lambda m: f"Type inconnu : {_q(m['t'])}."),
        (r"Unknown directive '@(?P<d>[^']+)'\.", lambda m: f"Directive inconnue : @{m['d']}."),
        (r"Unknown fragment '(?P<f>[^']+)'\.", lambda m: f"Fragment inconnu : {_q(m['f'])}."),
        (r"Fragment '(?P<f>[^']+)' is never used\.", lambda m: f"Le fragment {_q(m['f'])} n'est jamais utilisé."),
        (r"'(?P<o>[^']+)' exceeds maximum operation depth of (?P<n>\d+)",
         lambda m: f"Requête trop profonde : {m['n']} niveaux au plus."),
        (r"(?P<n>\d+) aliases found\. Allowed: (?P<max>\d+)", lambda m: f"Trop d'alias : {m['n']} (au plus {m['max']})."),
        (r"Document contains more than (?P<n>\d+) tokens\. Parsing aborted\.",
         lambda m: f"Requête trop longue : plus de {m['n']} éléments."),
        (r"GraphQL introspection has been disabled.*",
         lambda m: "L'introspection du schéma est désactivée ici (le schéma est publié : gateway/schema.graphql)."),
        (r"Subscriptions are not allowed on this transport.*|Unsupported operation type.*",
         lambda m: "Ce type d'opération n'est pas accepté ici."),
    ]
    return [(re.compile(pattern + r"\Z", re.S), render) for pattern, render in r]


_SYNTAX = [
    (re.compile(r"Document contains more than (?P<n>\d+) tokens\. Parsing aborted\.\Z"),
     lambda m: f"requête trop longue : plus de {m['n']} éléments."),
    (re.compile(r"Expected (?P<e>.+), found (?P<f>.+)\.\Z"), lambda m: f"{m['e']} attendu, {m['f']} trouvé."),
    (re.compile(r"Unexpected (?P<u>.+)\.\Z"), lambda m: f"{m['u']} inattendu."),
    (re.compile(r"Unterminated string\.\Z"), lambda m: "chaîne de caractères non terminée."),
    (re.compile(r"Cannot parse the unexpected character (?P<c>.+)\.\Z"), lambda m: f"caractère inattendu {m['c']}."),
    (re.compile(r"Invalid number.*\Z", re.S), lambda m: "nombre mal écrit."),
]
RULES = _rules()


def syntax(detail: str) -> str:
    for pattern, render in _SYNTAX:
        m = pattern.match(detail)
        if m:
            return render(m)
    return detail


def french(message: str) -> str:
    """The French of a graphql-core or Strawberry message (unknown: kept, after a French word)."""
    for pattern, render in RULES:
        m = pattern.match(message)
        if m:
            return render(m)
    return f"Requête invalide : {message}"


def prefers_english(accept_language: str | None) -> bool:
    """True when the first language the client names is English (`en`, `en-GB`…)."""
    first = (accept_language or "").split(",")[0].strip().lower()
    return first == "en" or first.startswith("en-")
