"""The named GraphQL operations the pages run, executed in-process against the gateway's own schema.

Every page's data comes from an operation of `operations.graphql`, run for the session's caller through the same
Strawberry schema, extensions and limits as `/graphql` (permissions, errors and their codes included): the web has
no second path to the services. The public `events` operations go through the compiled path when the API would
(an anonymous caller or a citizen, the public copy ready: `gateway/compiled/`), which answers as Strawberry does.
Operations without a caller-dependent answer (the agenda's reference data) may be kept a minute.
"""
from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

from graphql import FragmentDefinitionNode, OperationDefinitionNode, parse, print_ast

from contracts.platform import Caller

SOURCE = Path(__file__).resolve().parent / "operations.graphql"
CACHED = {"AgendaChoices": 60.0, "EventFormChoices": 60.0, "Organizations": 60.0}  # public reference data
COMPILED = {"AgendaPage"}  # made of `events` only: the compiled path may answer them


def load(text: str) -> dict[str, str]:
    """Each named operation as a document of its own, with the fragments it uses (a document per operation keeps
    each under the token limit, and lets the parse and validation caches hold them)."""
    document = parse(text)
    fragments = {d.name.value: print_ast(d) for d in document.definitions if isinstance(d, FragmentDefinitionNode)}
    out = {}
    for d in document.definitions:
        if isinstance(d, OperationDefinitionNode):
            body, used, todo = print_ast(d), [], [print_ast(d)]
            while todo:
                for name in re.findall(r"\.\.\.([A-Za-z_]\w*)", todo.pop()):
                    if name in fragments and name not in used:
                        used.append(name)
                        todo.append(fragments[name])
            out[d.name.value] = "\n".join([body, *(fragments[n] for n in used)])
    return out


OPERATIONS = load(SOURCE.read_text(encoding="utf-8"))


@dataclass
class Problem:
    message: str
    code: str
    field: str | None = None


@dataclass
class Result:
    data: dict | None
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


class Operations:
    def __init__(self, gateway):
        self.gateway = gateway
        self.cache: dict[str, tuple[float, Result]] = {}

    async def run(self, request, caller: Caller, name: str, variables: dict | None = None) -> Result:
        document = OPERATIONS[name]
        variables = {k: v for k, v in (variables or {}).items() if v is not None}
        key = None
        if name in CACHED:
            key = f"{name}|{json.dumps(variables, sort_keys=True)}"
            hit = self.cache.get(key)
            if hit is not None and time.monotonic() - hit[0] < CACHED[name]:
                return hit[1]
        result = None
        compiled = self.gateway.compiled.events
        if (name in COMPILED and compiled is not None and caller.role in ("public", "citizen")
                and self.gateway.public_agenda.ready):
            answer = compiled.execute({"query": document, "variables": variables, "operationName": name})
            if answer is not None:
                result = Result(answer.get("data"))
        if result is None:
            request.scope.setdefault("state", {})["caller"] = caller
            context = self.gateway.context(request, None)
            executed = await self.gateway.schema.execute(document, variable_values=variables, context_value=context,
                                                         operation_name=name)
            problems = [Problem(e.message, (e.extensions or {}).get("code", "INTERNAL_SERVER_ERROR"),
                                (e.extensions or {}).get("field")) for e in executed.errors or []]
            result = Result(executed.data, problems)
        if key is not None and result.ok:
            self.cache[key] = (time.monotonic(), result)
        return result
