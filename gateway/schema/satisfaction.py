"""satisfaction GraphQL: queries, mutations and subscriptions of the satisfaction service (its issue fills them)."""
from __future__ import annotations

import strawberry


@strawberry.type
class SatisfactionQuery:
    pass


@strawberry.type
class SatisfactionMutation:
    pass


@strawberry.type
class SatisfactionSubscription:
    pass
