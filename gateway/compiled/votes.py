"""`submitKioskVotes` without the general GraphQL executor: the kiosks' hottest write, compiled once per document.

Why: through Strawberry, a 100-vote submit cost the gateway ~3.5 ms of CPU, most of it graphql-core coercing
the `votes` variable field by field (and dateutil parsing each `pressedAt`) and then completing the answer; on
a 2-core machine that CPU is taken from the service and the database that count the votes. As for the public
`events` query (gateway/compiled/events.py), a document is parsed and validated once (with the same limits as every
request) and compiled into a plan; a request then only checks its variables and renders the service's report.

What it answers: an HTTP POST by a kiosk token whose operation is a mutation made only of `submitKioskVotes`
(aliases allowed), its `votes` argument a variable of type `[KioskVoteInput!]!`, the selections plain fields
(aliases, `__typename`; no fragments, no directives). It accepts a subset of what GraphQL accepts, and gives
it the same meaning: ids that are strings or integers, ratings that are 32-bit integers, follow-up and
comment strings or null, and `pressedAt` in the usual ISO 8601 form (`2026-11-26T09:30:00.250+01:00`, or
`Z`), parsed to the same instant as Strawberry's DateTime scalar. Anything else (another shape, a value in
another form, more than 500 votes, a document that fails validation) returns None and the request goes to
Strawberry, which answers or explains the error as always. An error of the service is answered here in
Strawberry's form (same message, code, location and path; tests/unit/test_fastvotes.py compares both).
"""
from __future__ import annotations

import re
from datetime import datetime
from typing import Any, Awaitable, Callable

from graphql import FieldNode, VariableNode, print_ast
from prometheus_client import Counter

from gateway.compiled import strawberry_internals as internals
from gateway.compiled.plans import CompiledMutation, Unsupported, plain_fields

FIELD = "submitKioskVotes"
VOTE_TYPE = "[KioskVoteInput!]!"
VOTE_FIELDS = {"id": "ID!", "rating": "Int!", "pressedAt": "DateTime!", "followUp": "String", "comment": "String"}
REPORT_FIELDS = {"accepted", "duplicates", "rejected", "__typename"}
REJECTED_FIELDS = {"id", "reason", "__typename"}
MAX_VOTES = 500
INT_MIN, INT_MAX = -(2 ** 31), 2 ** 31 - 1
# Hours 00-23 only: dateutil (Strawberry's DateTime) reads 24:00 as the next midnight, fromisoformat refuses it.
ISO_INSTANT = re.compile(r"\d{4}-\d{2}-\d{2}T(?:[01]\d|2[0-3]):[0-5]\d:[0-5]\d(?:\.\d{1,6})?(?:Z|[+-]\d{2}:\d{2})\Z")

FAST_VOTES = Counter("parvis_gateway_fast_votes_total", "Kiosk vote submits answered by the compiled path, or not",
                     ["outcome"])

Call = Callable[[list[dict]], Awaitable[dict]]


class Plan:
    __slots__ = ("node", "key", "variable", "render")

    def __init__(self, node: FieldNode, key: str, variable: str, render: Callable[[dict], dict]):
        self.node, self.key, self.variable, self.render = node, key, variable, render


class FastKioskVotes(CompiledMutation):
    field = FIELD

    def _schema_matches(self) -> bool:
        """The plan below assumes the schema's shape of the mutation: if it changes, every submit goes to
        Strawberry (and tests/unit/test_fastvotes.py fails) until this module follows."""
        mutation = self.gql.mutation_type
        field = mutation.fields.get(FIELD) if mutation else None
        if field is None or set(field.args) != {"votes"} or str(field.args["votes"].type) != VOTE_TYPE:
            return False
        sfield = internals.field_definition(field)
        # Only the kiosk permission: checked here by the role.
        if (sfield is None or [p.__name__ for p in sfield.permission_classes] != ["IsKiosk"]
                or not internals.only_permission_extensions(sfield)):
            return False
        vote_type = field.args["votes"].type.of_type.of_type.of_type
        return {name: str(f.type) for name, f in vote_type.fields.items()} == VOTE_FIELDS

    # -- compiling -------------------------------------------------------------------------------
    def _compile(self, query: str, operation_name: str | None) -> Plan:
        key, node, operation = self._mutation_field(query, operation_name)
        definitions = operation.variable_definitions or ()
        (argument,) = node.arguments
        if (len(definitions) != 1 or not isinstance(argument.value, VariableNode)
                or definitions[0].variable.name.value != argument.value.name.value
                or print_ast(definitions[0].type) != VOTE_TYPE or definitions[0].default_value is not None
                or definitions[0].directives):
            raise Unsupported("votes not given as one [KioskVoteInput!]! variable")
        steps = []  # (response key, field, extra): __typename's value, or rejected's (key, field) pairs
        for field_key, sel in plain_fields(node.selection_set, REPORT_FIELDS):
            if sel.name.value == "__typename":
                steps.append((field_key, None, "VoteSubmitReport"))
            elif sel.name.value == "rejected":
                inner = [(k, s.name.value) for k, s in plain_fields(sel.selection_set, REJECTED_FIELDS)]
                steps.append((field_key, "rejected", inner))
            else:
                steps.append((field_key, sel.name.value, None))

        def render(r: dict) -> dict:
            out = {}
            for key, name, extra in steps:
                if name is None:
                    out[key] = extra
                elif name == "rejected":
                    out[key] = [{k: ("RejectedVote" if n == "__typename" else x[n]) for k, n in extra}
                                for x in r["rejected"]]
                else:
                    out[key] = list(r[name])
            return out

        return Plan(node, key, definitions[0].variable.name.value, render)

    # -- executing -------------------------------------------------------------------------------
    async def execute(self, payload: Any, call: Call) -> dict | None:
        """The response to a kiosk's submit, or None when Strawberry must answer it. `call(votes)` is the RPC
        to the satisfaction service, with the caller and correlation id of the request."""
        planned = self.planned(payload, FAST_VOTES) if self.enabled else None
        if planned is None:
            return None
        plan, variables = planned
        votes = coerce_votes(variables.get(plan.variable))  # other variables: ignored, as GraphQL does
        if votes is None:
            FAST_VOTES.labels("fallback").inc()
            return None
        FAST_VOTES.labels("served").inc()
        return await self.answer(plan, lambda: call(votes))


def coerce_votes(value: Any) -> list[dict] | None:
    """The votes as the service takes them (as the Strawberry path sends them: gateway/schema/convert.py), or None when a
    value is not in one of the forms this path reads (Strawberry then coerces it, or explains why not)."""
    if not isinstance(value, list) or not value or len(value) > MAX_VOTES:
        return None
    out = []
    for vote in value:
        if not isinstance(vote, dict) or not vote.keys() <= VOTE_FIELDS.keys():
            return None
        vid, rating, pressed = vote.get("id"), vote.get("rating"), vote.get("pressedAt")
        follow_up, comment = vote.get("followUp"), vote.get("comment")
        if type(vid) is int:
            vid = str(vid)
        if (type(vid) is not str or type(rating) is not int or not INT_MIN <= rating <= INT_MAX
                or type(pressed) is not str or not ISO_INSTANT.match(pressed)
                or not (follow_up is None or type(follow_up) is str) or not (comment is None or type(comment) is str)):
            return None
        try:
            at = datetime.fromisoformat(pressed)
        except ValueError:
            return None
        payload = {"id": vid, "rating": rating, "pressed_at": at.isoformat()}
        if follow_up is not None:
            payload["follow_up"] = follow_up
        if comment is not None:
            payload["comment"] = comment
        out.append(payload)
    return out
