"""payment_link GraphQL: régies, payment links (agents, and billing software with a `service` token limited to its
régies), the public payment page's data and « Payer », refunds, and the accountant's reconciliation.

Permissions are checked here and again in the service. Money is in integer cents; a payment's states are GOV.UK
Pay's (CREATED → STARTED → SUBMITTED → SUCCESS | FAILED | CANCELLED | ERROR)."""
from __future__ import annotations

import enum
from datetime import date, datetime
from typing import Optional

import strawberry
from strawberry.scalars import JSON
from strawberry.types import Info

from contracts.errors import Forbidden
from gateway.schema.agenda import PageInfo
from gateway.schema.consultation import build
from gateway.schema.convert import plain
from gateway.schema.permissions import HasRole, IsAgent, IsAgentOrOperator


class IsBiller(HasRole):
    """Who creates and cancels payment links: agents, and billing software (its own régies)."""

    roles = frozenset({"agent", "service"})


class ReadsPayments(HasRole):
    roles = frozenset({"agent", "operator", "service"})


class IsCitizen(HasRole):
    roles = frozenset({"citizen"})


def own_regies(info: Info, regie_ids: list[str]) -> None:
    """A service token acts only for its régies (the service checks again)."""
    caller = info.context["caller"]
    if caller.role == "service" and (not regie_ids or not set(regie_ids) <= set(caller.regies or [])):
        raise Forbidden("Ce jeton de service ne peut agir que pour ses régies.", "regieId")


@strawberry.enum(description="GOV.UK Pay's states: CREATED → STARTED → SUBMITTED → SUCCESS | FAILED | CANCELLED | "
                             "ERROR; the last four are final")
class PaymentState(enum.Enum):
    CREATED = "created"
    STARTED = "started"
    SUBMITTED = "submitted"
    SUCCESS = "success"
    FAILED = "failed"
    CANCELLED = "cancelled"
    ERROR = "error"


@strawberry.enum(description="payfip (DGFiP) or sandbox (demo cards, never real money)")
class PaymentProvider(enum.Enum):
    PAYFIP = "payfip"
    SANDBOX = "sandbox"


@strawberry.type(description="Why a payment did not succeed: P0010 refused, P0020 expired, P0030 abandoned by the payer, "
                             "P0040 cancelled by the service, P0050 provider error")
class PaymentFailure:
    code: str
    message: str


@strawberry.type(description="What may still be refunded (GOV.UK Pay's refundSummary)")
class RefundSummary:
    status: str = strawberry.field(description="pending, unavailable, available or full")
    amount_available: int
    amount_submitted: int


@strawberry.type(description="A refund: by the card provider, or by the public accountant for PayFiP (marked by an agent)")
class Refund:
    id: strawberry.ID
    amount: int
    status: str
    kind: str
    reason: Optional[str]
    provider_refund_id: Optional[str]
    created_by: Optional[str]
    created_at: datetime
    settled_at: Optional[datetime]


@strawberry.type
class PaymentTransition:
    state: PaymentState
    at: datetime
    failure_code: Optional[str]
    provider_status: Optional[str]
    actor: Optional[str]


@strawberry.type(description="A payment link for one bill, and what became of it")
class Payment:
    id: strawberry.ID
    url: str = strawberry.field(description="path of the public page: /pay/<id>")
    regie_id: str
    regie_name: str
    service: Optional[str]
    amount: int = strawberry.field(description="cents")
    reference: str
    description: str
    objet: str = strawberry.field(description="the description as PayFiP takes it (ASCII)")
    email: str
    language: str
    metadata: JSON
    return_url: Optional[str]
    due_date: Optional[date]
    expires_at: datetime
    state: PaymentState
    finished: bool
    failure: Optional[PaymentFailure]
    provider: PaymentProvider
    provider_id: Optional[str]
    provider_status: Optional[str]
    session_started_at: Optional[datetime]
    session_expires_at: Optional[datetime]
    paid_at: Optional[datetime]
    authorisation_code: Optional[str]
    refund_summary: RefundSummary
    refunds: list[Refund]
    history: list[PaymentTransition]
    retry_of: Optional[str] = strawberry.field(description="the failed payment of the same bill this one replaces "
                                                           "(the payer pressed « Payer » again on its link)")
    created_by: Optional[str]
    created_at: datetime
    updated_at: datetime


@strawberry.type
class PaymentEdge:
    cursor: str
    node: Payment


@strawberry.type(description="A page of payments (Relay connection), newest first")
class PaymentConnection:
    edges: list[PaymentEdge]
    page_info: PageInfo
    total_count: int


@strawberry.type(description="A created link; replayed: the Idempotency-Key gave back the payment of an earlier request")
class PaymentCreated:
    payment: Payment
    replayed: bool


@strawberry.type(description="What the public page /pay/<id> shows: no email, no metadata")
class PublicPayment:
    id: strawberry.ID
    regie_name: str
    amount: int
    reference: str
    description: str
    language: str
    state: PaymentState
    finished: bool
    failure: Optional[PaymentFailure]
    payable: bool
    due_date: Optional[date]
    expires_at: datetime
    paid_at: Optional[datetime]
    authorisation_code: Optional[str]
    provider: PaymentProvider
    return_url: Optional[str]


@strawberry.type(description="A provider session: send the payer to nextUrl")
class PaymentSession:
    payment_id: strawberry.ID
    provider: PaymentProvider
    provider_id: str
    next_url: str
    session_expires_at: datetime
    reused: bool


@strawberry.type
class ProviderSettings:
    provider: PaymentProvider
    payfip_mode: str = strawberry.field(description="PayFiP `saisie`: T test, X activation, W production")


@strawberry.type(description="A collection account (régie de recettes)")
class Regie:
    id: strawberry.ID
    numcli: str
    name: str
    services: list[str]
    provider: ProviderSettings
    active: bool
    created_at: datetime
    updated_at: datetime


@strawberry.type
class ReconciliationRow:
    date: date
    regie_id: str
    payment_id: str
    reference: str
    amount: int
    state: PaymentState
    failure_code: Optional[str]
    provider: PaymentProvider
    provider_id: Optional[str]
    authorisation_code: Optional[str]
    finished_at: datetime
    refunded: int


@strawberry.type
class RegieTotals:
    regie_id: str
    date: date
    succeeded_count: int
    succeeded_amount: int
    failed_count: int
    cancelled_count: int
    error_count: int
    refunded_amount: int
    net_amount: int


@strawberry.type(description="A day's finished payments (Europe/Paris) and totals per régie, for the accountant")
class Reconciliation:
    date: date
    regie_id: Optional[str]
    rows: list[ReconciliationRow]
    totals: list[RegieTotals]
    csv: Optional[str] = strawberry.field(description="with csv: true, the accountant's CSV (;, decimal comma)")


@strawberry.input(description="A bill to pay")
class PaymentLinkInput:
    regie_id: str
    amount: int = strawberry.field(description="cents: 100 (1 €) to 10,000,000 (100,000 €)")
    reference: str = strawberry.field(description="the bill number: 1 to 30 letters or digits (6 at least for PayFiP)")
    description: str
    email: str
    service: Optional[str] = None
    language: Optional[str] = None
    metadata: Optional[JSON] = None
    return_url: Optional[str] = None
    due_date: Optional[date] = None


@strawberry.input
class PaymentFilter:
    regie_ids: Optional[list[str]] = None
    states: Optional[list[PaymentState]] = None
    reference: Optional[str] = None
    email: Optional[str] = None
    provider: Optional[PaymentProvider] = None
    created_after: Optional[datetime] = None
    created_before: Optional[datetime] = None


@strawberry.input
class ProviderSettingsInput:
    provider: PaymentProvider = PaymentProvider.PAYFIP
    payfip_mode: str = "T"


@strawberry.input(description="A régie to create (without id) or change")
class RegieInput:
    numcli: str
    name: str
    id: Optional[strawberry.ID] = None
    services: Optional[list[str]] = None
    provider: Optional[ProviderSettingsInput] = None
    active: Optional[bool] = None


async def _call(info: Info, method: str, **kwargs):
    return await info.context["call"]("payment_link", method, **kwargs)


def _payments(page: dict) -> PaymentConnection:
    return PaymentConnection(
        edges=[PaymentEdge(cursor=cur, node=build(Payment, item)) for cur, item in zip(page["cursors"], page["items"])],
        page_info=PageInfo(has_next_page=page["has_next"], end_cursor=page.get("end_cursor")),
        total_count=page["total"])


def _input(value) -> dict:
    data = plain(value)
    if isinstance(data.get("due_date"), date):
        data["due_date"] = data["due_date"].isoformat()
    return data


@strawberry.type
class PaymentLinkQuery:
    @strawberry.field(description="Payments (agents, operators; a service token: its régies), newest first",
                      permission_classes=[ReadsPayments])
    async def payments(self, info: Info, filter: Optional[PaymentFilter] = None, first: int = 50,
                       after: Optional[str] = None) -> PaymentConnection:
        f = plain(filter) if filter else {}
        if info.context["caller"].role == "service" and f.get("regie_ids"):
            own_regies(info, f["regie_ids"])
        return _payments(await _call(info, "list_payments", filter=f, first=first, after=after))

    @strawberry.field(description="One payment with its refunds and history (agents, its régie's service token, "
                                  "its payer)")
    async def payment(self, info: Info, id: strawberry.ID) -> Optional[Payment]:
        from contracts.errors import NotFound

        try:
            return build(Payment, await _call(info, "get_payment", id=str(id)))
        except NotFound:
            return None

    @strawberry.field(description="The signed-in citizen's payments (made out to the verified address)",
                      permission_classes=[IsCitizen])
    async def my_payments(self, info: Info, first: int = 50, after: Optional[str] = None) -> PaymentConnection:
        return _payments(await _call(info, "my_payments", first=first, after=after))

    @strawberry.field(description="What the public page of a payment link shows (anyone with the link); refresh "
                                  "reads the result back from the provider first")
    async def payment_page(self, info: Info, id: strawberry.ID, refresh: bool = False) -> PublicPayment:
        return build(PublicPayment, await _call(info, "payment_page", id=str(id), refresh=refresh))

    @strawberry.field(description="Régies (agents, operators; a service token: its own)", permission_classes=[ReadsPayments])
    async def regies(self, info: Info, include_inactive: bool = False) -> list[Regie]:
        return [build(Regie, r) for r in await _call(info, "list_regies", include_inactive=include_inactive)]

    @strawberry.field(description="A day's finished payments and totals per régie (Europe/Paris); csv: the "
                                  "accountant's file", permission_classes=[ReadsPayments])
    async def reconciliation(self, info: Info, date: date, regie_id: Optional[str] = None,
                             csv: bool = False) -> Reconciliation:
        if info.context["caller"].role == "service":
            own_regies(info, [regie_id] if regie_id else [])
        r = await _call(info, "reconciliation_report", date=date.isoformat(), regie_id=regie_id,
                        format="csv" if csv else "json")
        return build(Reconciliation, r)


@strawberry.type
class PaymentLinkMutation:
    @strawberry.mutation(description="Create a payment link for a bill (agents; a service token for its régies). The "
                                     "same idempotencyKey with the same input within 24 h gives the first payment back; "
                                     "with another input: CONFLICT", permission_classes=[IsBiller])
    async def create_payment_link(self, info: Info, input: PaymentLinkInput,
                                  idempotency_key: Optional[str] = None) -> PaymentCreated:
        own_regies(info, [input.regie_id])
        r = await _call(info, "create_payment_link", idempotency_key=idempotency_key, payment=_input(input))
        return PaymentCreated(payment=build(Payment, r["payment"]), replayed=r["replayed"])

    @strawberry.mutation(description="Cancel a link not yet paid (P0040)", permission_classes=[IsBiller])
    async def cancel_payment(self, info: Info, id: strawberry.ID, reason: Optional[str] = None) -> Payment:
        return build(Payment, await _call(info, "cancel_payment", id=str(id), reason=reason))

    @strawberry.mutation(description="Refund part or all of a successful payment, stating the amountAvailable seen "
                                     "(CONFLICT when it changed: another refund passed first)", permission_classes=[IsAgent])
    async def refund_payment(self, info: Info, id: strawberry.ID, amount: int, amount_available: int,
                             reason: Optional[str] = None) -> Payment:
        return build(Payment, await _call(info, "refund_payment", id=str(id), amount=amount,
                                          amount_available=amount_available, reason=reason))

    @strawberry.mutation(description="Record a PayFiP refund as done (or failed) by the public accountant (agents)",
                         permission_classes=[IsAgent])
    async def settle_refund(self, info: Info, payment_id: strawberry.ID, refund_id: strawberry.ID,
                            success: bool = True) -> Payment:
        return build(Payment, await _call(info, "settle_refund", payment_id=str(payment_id), refund_id=str(refund_id),
                                          status="success" if success else "error"))

    @strawberry.mutation(description="Create or change a régie (agents, operators)", permission_classes=[IsAgentOrOperator])
    async def save_regie(self, info: Info, input: RegieInput) -> Regie:
        return build(Regie, await _call(info, "save_regie", **plain(input)))

    @strawberry.mutation(description="The payer pressed « Payer »: start (or give again) the provider session (anyone "
                                     "with the link)")
    async def start_payment(self, info: Info, id: strawberry.ID) -> PaymentSession:
        return build(PaymentSession, await _call(info, "start_session", id=str(id)))


@strawberry.type
class PaymentLinkSubscription:
    pass
