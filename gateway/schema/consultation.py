"""consultation GraphQL: queries, mutations and subscriptions of the consultation service (its issue fills them)."""
from __future__ import annotations

import strawberry


@strawberry.type
class ConsultationQuery:
    pass


@strawberry.type
class ConsultationMutation:
    pass


@strawberry.type
class ConsultationSubscription:
    pass
