"""`createPaymentLink` without the general GraphQL executor: billing software's hottest write, compiled once per
document (as gateway/compiled/votes.py does for the kiosks).

Why: through Strawberry, a link cost the gateway ~0.9 ms of CPU in graphql-core (coercing the input, the
permission, building the whole Payment object to answer `payment { id }`), on a 2-core machine where the service
and the database need it (bench/payments.py).

What it answers: an HTTP POST by an agent or a `service` token (the mutation's permission, IsBiller) whose operation
is a mutation made only of `createPaymentLink` (aliases allowed), its `input` a variable of type
`PaymentLinkInput!` and its `idempotencyKey`, if given, a variable of type `String` or `String!`; selections plain
fields (aliases, `__typename`; no fragments, no directives): `replayed` and `payment { … }` with the payment's
text, number, boolean and enum fields (id, url, regieId, regieName, service, amount, reference, description, objet,
email, language, state, finished, provider, providerId, providerStatus, authorisationCode, retryOf, createdBy).
The input's values in the forms it reads: strings for the text fields, a 32-bit integer for the amount, null or
absent for the optional ones; `metadata` and `dueDate`, when given, leave it to Strawberry. Anything else returns
None and Strawberry answers, or explains the error, as always. The régie check of a service token and the service's
errors are answered here in Strawberry's form (same message, code, location and path; tests/unit/test_fastlinks.py
compares both paths).
"""
from __future__ import annotations

from typing import Any, Awaitable, Callable

from graphql import FieldNode, VariableNode, print_ast
from prometheus_client import Counter

from contracts.errors import Forbidden
from contracts.platform import Caller
from gateway.compiled import strawberry_internals as internals
from gateway.compiled.plans import CompiledMutation, Unsupported, plain_fields
from gateway.compiled.votes import INT_MAX, INT_MIN

FIELD = "createPaymentLink"
ROLES = frozenset({"agent", "service"})  # gateway/schema/payment_link.py: IsBiller
INPUT_TYPE = "PaymentLinkInput!"
KEY_TYPES = ("String", "String!")
ARGS = {"input": INPUT_TYPE, "idempotencyKey": "String"}
# The input's fields this path reads (GraphQL name -> contract name, type, required); the schema must have these
# and only the two it leaves to Strawberry (metadata, dueDate).
INPUT_FIELDS = {"regieId": ("regie_id", str, True), "amount": ("amount", int, True),
                "reference": ("reference", str, True), "description": ("description", str, True),
                "email": ("email", str, True), "service": ("service", str, False),
                "language": ("language", str, False), "returnUrl": ("return_url", str, False)}
LEFT_TO_STRAWBERRY = {"metadata": "JSON", "dueDate": "Date"}
INPUT_SCHEMA = {"regieId": "String!", "amount": "Int!", "reference": "String!", "description": "String!",
                "email": "String!", "service": "String", "language": "String", "returnUrl": "String",
                **LEFT_TO_STRAWBERRY}
# The payment's fields this path renders (GraphQL name -> contract name, GraphQL type): the enums' values are
# rendered as their names, as Strawberry does.
PAYMENT_FIELDS = {"id": ("id", "ID!"), "url": ("url", "String!"), "regieId": ("regie_id", "String!"),
                  "regieName": ("regie_name", "String!"), "service": ("service", "String"),
                  "amount": ("amount", "Int!"), "reference": ("reference", "String!"),
                  "description": ("description", "String!"), "objet": ("objet", "String!"),
                  "email": ("email", "String!"), "language": ("language", "String!"),
                  "state": ("state", "PaymentState!"), "finished": ("finished", "Boolean!"),
                  "provider": ("provider", "PaymentProvider!"), "providerId": ("provider_id", "String"),
                  "providerStatus": ("provider_status", "String"),
                  "authorisationCode": ("authorisation_code", "String"), "retryOf": ("retry_of", "String"),
                  "createdBy": ("created_by", "String")}
ENUMS = {"PaymentState!", "PaymentProvider!"}

FAST_LINKS = Counter("parvis_gateway_fast_links_total", "createPaymentLink requests answered by the compiled path, "
                     "or not", ["outcome"])

Call = Callable[..., Awaitable[dict]]


class Plan:
    __slots__ = ("node", "key", "input_var", "key_var", "key_required", "render")

    def __init__(self, node: FieldNode, key: str, input_var: str, key_var: str | None, key_required: bool,
                 render: Callable[[dict], dict]):
        self.node, self.key, self.input_var, self.key_var, self.render = node, key, input_var, key_var, render
        self.key_required = key_required


class FastPaymentLinks(CompiledMutation):
    field = FIELD

    def _schema_matches(self) -> bool:
        """The plan below assumes the schema's shape of the mutation: if it changes, every request goes to
        Strawberry (and tests/unit/test_fastlinks.py fails) until this module follows."""
        mutation = self.gql.mutation_type
        field = mutation.fields.get(FIELD) if mutation else None
        if field is None or {k: str(a.type) for k, a in field.args.items()} != ARGS:
            return False
        sfield = internals.field_definition(field)
        if (sfield is None or [p.__name__ for p in sfield.permission_classes] != ["IsBiller"]
                or not internals.only_permission_extensions(sfield)):
            return False
        input_type = field.args["input"].type.of_type
        if {name: str(f.type) for name, f in input_type.fields.items()} != INPUT_SCHEMA:
            return False
        created = field.type.of_type
        payment = created.fields["payment"].type.of_type
        if {n: str(f.type) for n, f in created.fields.items()} != {"payment": "Payment!", "replayed": "Boolean!"}:
            return False
        return all(name in payment.fields and str(payment.fields[name].type) == gtype
                   for name, (_, gtype) in PAYMENT_FIELDS.items())

    # -- compiling -------------------------------------------------------------------------------
    def _compile(self, query: str, operation_name: str | None) -> Plan:
        key, node, operation = self._mutation_field(query, operation_name)
        definitions = {d.variable.name.value: d for d in operation.variable_definitions or ()}
        if any(d.default_value is not None or d.directives for d in definitions.values()):
            raise Unsupported("variable defaults or directives")
        used = {}
        for argument in node.arguments:
            if not isinstance(argument.value, VariableNode):
                raise Unsupported("an argument not given as a variable")
            name = argument.value.name.value
            expected = (INPUT_TYPE,) if argument.name.value == "input" else KEY_TYPES
            if name not in definitions or print_ast(definitions[name].type) not in expected:
                raise Unsupported("an argument's variable of another type")
            used[argument.name.value] = name
        if "input" not in used:
            raise Unsupported("no input")
        steps = []  # (response key, kind, extra): __typename's value, replayed, or the payment's (key, field) pairs
        for field_key, sel in plain_fields(node.selection_set, {"replayed", "payment", "__typename"}):
            if sel.name.value == "__typename":
                steps.append((field_key, "typename", "PaymentCreated"))
            elif sel.name.value == "replayed":
                steps.append((field_key, "replayed", None))
            else:
                inner = [(k, s.name.value) for k, s in plain_fields(sel.selection_set, {*PAYMENT_FIELDS, "__typename"})]
                steps.append((field_key, "payment", inner))

        def render(r: dict) -> dict:
            out = {}
            for field_key, kind, extra in steps:
                if kind == "typename":
                    out[field_key] = extra
                elif kind == "replayed":
                    out[field_key] = bool(r["replayed"])
                else:
                    out[field_key] = _payment(r["payment"], extra)
            return out

        key_var = used.get("idempotencyKey")
        key_required = key_var is not None and print_ast(definitions[key_var].type) == "String!"
        return Plan(node, key, used["input"], key_var, key_required, render)

    # -- executing -------------------------------------------------------------------------------
    async def execute(self, payload: Any, caller: Caller, call: Call) -> dict | None:
        """The response to a createPaymentLink, or None when Strawberry must answer it. `call(service, method,
        **kwargs)` is the RPC on behalf of the request's caller (Gateway.caller_call)."""
        if caller.role not in ROLES:
            return None
        planned = self.planned(payload, FAST_LINKS) if self.enabled else None
        if planned is None:
            return None
        plan, variables = planned
        payment = coerce_input(variables.get(plan.input_var))
        key = variables.get(plan.key_var) if plan.key_var else None
        if payment is None or not (key is None or type(key) is str) or (key is None and plan.key_required):
            FAST_LINKS.labels("fallback").inc()
            return None
        FAST_LINKS.labels("served").inc()

        async def create():
            if caller.role == "service" and payment["regie_id"] not in (caller.regies or []):
                raise Forbidden("Ce jeton de service ne peut agir que pour ses régies.", "regieId")  # own_regies
            return await call("payment_link", "create_payment_link", idempotency_key=key, payment=payment)

        return await self.answer(plan, create)


def _payment(p: dict, selections: list[tuple[str, str]]) -> dict:
    out = {}
    for field_key, name in selections:
        if name == "__typename":
            out[field_key] = "Payment"
            continue
        attr, gtype = PAYMENT_FIELDS[name]
        value = p.get(attr)
        out[field_key] = value.upper() if gtype in ENUMS else str(value) if gtype == "ID!" else value
    return out


def coerce_input(value: Any) -> dict | None:
    """The payment as the service takes it (as the Strawberry path sends it: gateway/schema/payment_link.py `_input`,
    its unset fields left out), or None when a value is not in one of the forms this path reads."""
    if not isinstance(value, dict) or not value.keys() <= INPUT_FIELDS.keys() | LEFT_TO_STRAWBERRY.keys():
        return None
    if any(value.get(name) is not None for name in LEFT_TO_STRAWBERRY):
        return None
    out = {}
    for name, (attr, kind, required) in INPUT_FIELDS.items():
        v = value.get(name)
        if v is None:
            if required:
                return None
            continue
        if type(v) is not kind or (kind is int and not INT_MIN <= v <= INT_MAX):
            return None
        out[attr] = v
    return out
