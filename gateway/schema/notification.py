"""notification GraphQL: queries, mutations and subscriptions of the notification service (its issue fills them)."""
from __future__ import annotations

import strawberry


@strawberry.type
class NotificationQuery:
    pass


@strawberry.type
class NotificationMutation:
    pass


@strawberry.type
class NotificationSubscription:
    pass
