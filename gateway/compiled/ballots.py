"""`castBudgetBallot` without the general GraphQL executor: a participatory budget's vote, compiled once per document.

Why: while a vote runs, citizens cast thousands of ballots a minute. Through Strawberry a ballot cost the gateway about
1.6 ms of CPU, of which graphql-core's executor (coercing the variables, running the resolver through its extensions,
completing the answer) took about a third, on a 2-core machine where that CPU is taken from the service and the
database that write the ballots (bench/consultation.py prints the CPU a ballot by process). As for kiosks'
`submitKioskVotes` (votes.py), a document is parsed and validated once, with the limits of every request, and
compiled into a plan; a request then only checks its variables and renders the service's receipt.

What it answers: an HTTP POST by a citizen's token whose operation is a mutation made only of `castBudgetBallot`
(an alias allowed), its `budgetId` a variable of type `ID!` and its `headings` a variable of type
`[HeadingBallotInput!]!`, the selections plain fields of `BallotReceipt` (`headings` with plain fields of
`HeadingBallot`; aliases, `__typename`; no fragments, no directives). Ids are strings or integers, as GraphQL's ID
reads them. Anything else (another shape, a value in another form, a document that fails validation, another role)
returns None and the request goes to Strawberry, which answers or explains the error as always. An error of the
service is answered here in Strawberry's form (same message, code, location and path; tests/unit/test_fastballots.py
compares both). The ballot goes to the service exactly as Strawberry's resolver sends it, through the gateway's call
(so through its batcher: gateway/batching.py).
"""
from __future__ import annotations

from typing import Any, Awaitable, Callable

from graphql import FieldNode, VariableNode, print_ast
from prometheus_client import Counter

from gateway.compiled import strawberry_internals as internals
from gateway.compiled.plans import CompiledMutation, Unsupported, plain_fields

FIELD = "castBudgetBallot"
ARGUMENTS = {"budgetId": "ID!", "headings": "[HeadingBallotInput!]!"}
HEADING_FIELDS = {"headingId": "ID!", "projectIds": "[ID!]!"}
RECEIPT_FIELDS = {"consultationId": "ID!", "receiptCode": "String!", "headings": "[HeadingBallot!]!"}
MAX_HEADINGS = 50  # the contract's (contracts/consultation.py: CastBudgetBallot); beyond, Strawberry's path explains
MAX_PROJECTS = 500

FAST_BALLOTS = Counter("parvis_gateway_fast_ballots_total", "Budget ballots answered by the compiled path, or not",
                       ["outcome"])

Call = Callable[[str, list[dict]], Awaitable[dict]]


class Plan:
    __slots__ = ("node", "key", "budget", "headings", "render")

    def __init__(self, node: FieldNode, key: str, budget: str, headings: str, render: Callable[[dict], dict]):
        self.node, self.key, self.budget, self.headings, self.render = node, key, budget, headings, render


class FastBudgetBallots(CompiledMutation):
    field = FIELD

    def _schema_matches(self) -> bool:
        """The plan below assumes the schema's shape of the mutation: if it changes, every ballot goes to
        Strawberry (and tests/unit/test_fastballots.py fails) until this module follows."""
        mutation = self.gql.mutation_type
        field = mutation.fields.get(FIELD) if mutation else None
        if field is None or {name: str(a.type) for name, a in field.args.items()} != ARGUMENTS:
            return False
        sfield = internals.field_definition(field)
        # Only the citizen permission: checked here by the role.
        if (sfield is None or [p.__name__ for p in sfield.permission_classes] != ["IsCitizen"]
                or not internals.only_permission_extensions(sfield)):
            return False
        heading_input = field.args["headings"].type.of_type.of_type.of_type
        receipt = field.type.of_type
        heading = receipt.fields["headings"].type.of_type.of_type.of_type if "headings" in receipt.fields else None
        return ({name: str(f.type) for name, f in heading_input.fields.items()} == HEADING_FIELDS
                and {name: str(f.type) for name, f in receipt.fields.items()} == RECEIPT_FIELDS
                and heading is not None
                and {name: str(f.type) for name, f in heading.fields.items()} == {"headingId": "ID!",
                                                                                 "projectIds": "[ID!]!"})

    # -- compiling -------------------------------------------------------------------------------
    def _compile(self, query: str, operation_name: str | None) -> Plan:
        key, node, operation = self._mutation_field(query, operation_name)
        definitions = {d.variable.name.value: d for d in operation.variable_definitions or ()}
        variables = {}
        for argument in node.arguments:
            value = argument.value
            if not isinstance(value, VariableNode) or value.name.value not in definitions:
                raise Unsupported("an argument not given as a variable")
            definition = definitions[value.name.value]
            if (print_ast(definition.type) != ARGUMENTS[argument.name.value] or definition.default_value is not None
                    or definition.directives):
                raise Unsupported("a variable of another type")
            variables[argument.name.value] = value.name.value
        if set(variables) != set(ARGUMENTS) or len(definitions) != len(ARGUMENTS) or len(set(variables.values())) != 2:
            raise Unsupported("variables other than the two arguments")
        steps = []  # (response key, field, extra): __typename's value, or headings' (key, field) pairs
        for field_key, sel in plain_fields(node.selection_set, set(RECEIPT_FIELDS) | {"__typename"}):
            name = sel.name.value
            if name == "__typename":
                steps.append((field_key, None, "BallotReceipt"))
            elif name == "headings":
                inner = [(k, s.name.value) for k, s in plain_fields(sel.selection_set, {"headingId", "projectIds",
                                                                                  "__typename"})]
                steps.append((field_key, "headings", inner))
            else:
                steps.append((field_key, name, None))
        names = {"consultationId": "consultation_id", "receiptCode": "receipt_code", "headingId": "heading_id",
                 "projectIds": "project_ids"}

        def heading(h: dict, inner) -> dict:
            return {k: ("HeadingBallot" if n == "__typename" else
                        list(h[names[n]]) if n == "projectIds" else h[names[n]]) for k, n in inner}

        def render(r: dict) -> dict:
            out = {}
            for k, name, extra in steps:
                if name is None:
                    out[k] = extra
                elif name == "headings":
                    out[k] = [heading(h, extra) for h in r["headings"]]
                else:
                    out[k] = r[names[name]]
            return out

        return Plan(node, key, variables["budgetId"], variables["headings"], render)

    # -- executing -------------------------------------------------------------------------------
    async def execute(self, payload: Any, call: Call) -> dict | None:
        """The response to a citizen's ballot, or None when Strawberry must answer it. `call(budget_id, headings)`
        is the RPC to the consultation service, with the caller and correlation id of the request."""
        planned = self.planned(payload, FAST_BALLOTS) if self.enabled else None
        if planned is None:
            return None
        plan, variables = planned
        budget_id = coerce_id(variables.get(plan.budget))
        headings = coerce_headings(variables.get(plan.headings))
        if budget_id is None or headings is None:
            FAST_BALLOTS.labels("fallback").inc()
            return None
        FAST_BALLOTS.labels("served").inc()
        return await self.answer(plan, lambda: call(budget_id, headings))


def coerce_id(value: Any) -> str | None:
    """An ID as GraphQL reads it from a variable: a string, or an integer written as text; None otherwise."""
    if type(value) is str:
        return value
    if type(value) is int:
        return str(value)
    return None


def coerce_headings(value: Any) -> list[dict] | None:
    """The headings as the service takes them (as Strawberry's resolver sends them), or None when a value is not in
    one of the forms this path reads (Strawberry then coerces it, or explains why not)."""
    if not isinstance(value, list) or not value or len(value) > MAX_HEADINGS:
        return None
    out = []
    for h in value:
        if not isinstance(h, dict) or h.keys() != HEADING_FIELDS.keys():
            return None
        heading_id, projects = coerce_id(h["headingId"]), h["projectIds"]
        if heading_id is None or not isinstance(projects, list) or len(projects) > MAX_PROJECTS:
            return None
        ids = [coerce_id(p) for p in projects]
        if None in ids:
            return None
        out.append({"heading_id": heading_id, "project_ids": ids})
    return out
