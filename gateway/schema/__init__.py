"""The gateway's GraphQL schema, composed from one module per service."""
from __future__ import annotations

import strawberry
from graphql.validation import NoSchemaIntrospectionCustomRule
from strawberry.extensions import (
    AddValidationRules,
    MaxAliasesLimiter,
    MaxTokensLimiter,
    ParserCache,
    QueryDepthLimiter,
    ValidationCache,
)

from gateway.errors import ErrorCodes, OperationMetrics
from gateway.schema.accounts import AccountsMutation, AccountsQuery
from gateway.limits import cost_rule
from gateway.schema.agenda import AgendaMutation, AgendaQuery, AgendaSubscription
from gateway.schema.consultation import ConsultationMutation, ConsultationQuery, ConsultationSubscription
from gateway.schema.notification import NotificationMutation, NotificationQuery, NotificationSubscription
from gateway.schema.payment_link import PaymentLinkMutation, PaymentLinkQuery, PaymentLinkSubscription
from gateway.schema.platform import PlatformMutation, PlatformQuery
from gateway.schema.satisfaction import SatisfactionMutation, SatisfactionQuery, SatisfactionSubscription

MAX_DEPTH = 10
MAX_TOKENS = 2000
MAX_ALIASES = 30
MAX_DOCUMENT_BYTES = 32 * 1024  # the query text; data goes in the variables (the body's cap is 1 MiB)
MAX_QUERY_COST = 20_000  # objects an operation may return (gateway/limits.py): events(first: 500) with 40 per node


# One module per service contributes its root fields; these classes only compose them.
@strawberry.type
class Query(PlatformQuery, AgendaQuery, ConsultationQuery, SatisfactionQuery, PaymentLinkQuery, NotificationQuery,
            AccountsQuery):
    pass


@strawberry.type
class Mutation(PlatformMutation, AgendaMutation, ConsultationMutation, SatisfactionMutation, PaymentLinkMutation,
               NotificationMutation, AccountsMutation):
    pass


@strawberry.type
class Subscription(AgendaSubscription, ConsultationSubscription, SatisfactionSubscription, PaymentLinkSubscription,
                   NotificationSubscription):
    pass


def _has_fields(cls) -> bool:
    return bool(cls.__strawberry_definition__.fields)


# The limiters' rule classes, made once: QueryDepthLimiter and MaxAliasesLimiter create a new rule class
# per instance, so one instance per request made every request miss ValidationCache (keyed by the rules).
LIMIT_RULES = [*QueryDepthLimiter(max_depth=MAX_DEPTH).validation_rules,
                *MaxAliasesLimiter(max_alias_count=MAX_ALIASES).validation_rules, cost_rule(MAX_QUERY_COST)]
_NO_INTROSPECTION = [NoSchemaIntrospectionCustomRule]


def extensions(production: bool = False) -> list:
    """The limits and error mapping every request goes through."""
    # Factories, not instances: each request gets fresh extensions (they hold per-request state).
    # The parse and validation caches are module-level LRU caches inside strawberry, so they are
    # shared all the same.
    extensions = [
        lambda: AddValidationRules(LIMIT_RULES),
        lambda: MaxTokensLimiter(max_token_count=MAX_TOKENS),
        lambda: ParserCache(maxsize=256),
        lambda: ValidationCache(maxsize=256),
        lambda: ErrorCodes(production=production),
        OperationMetrics,
    ]
    if production:
        extensions.append(lambda: AddValidationRules(_NO_INTROSPECTION))
    return extensions


class ParvisSchema(strawberry.Schema):
    """Errors get their `extensions.code` on every transport: the ErrorCodes extension maps those of HTTP
    operations, but a subscription's errors (over graphql-transport-ws) only pass through process_errors."""

    def __init__(self, *args, production: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        self.production = production

    def process_errors(self, errors, execution_context=None) -> None:
        from gateway.errors import english_request, map_errors

        context = getattr(execution_context, "context", None)
        english = english_request(context.get("request")) if isinstance(context, dict) else False
        map_errors(errors, self.production, english)  # in place; unexpected errors are logged there, with their trace


def build_schema(production: bool = False) -> strawberry.Schema:
    return ParvisSchema(query=Query, mutation=Mutation,
                        subscription=Subscription if _has_fields(Subscription) else None,
                        extensions=extensions(production), production=production)


def sdl() -> str:
    return build_schema().as_str() + "\n"
