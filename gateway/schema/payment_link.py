"""payment_link GraphQL: queries, mutations and subscriptions of the payment_link service (its issue fills them)."""
from __future__ import annotations

import strawberry


@strawberry.type
class PaymentLinkQuery:
    pass


@strawberry.type
class PaymentLinkMutation:
    pass


@strawberry.type
class PaymentLinkSubscription:
    pass
