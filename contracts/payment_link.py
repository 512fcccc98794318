"""payment_link contracts: régies, payment links and their provider sessions, refunds, reconciliation, events.

A payment is one bill to pay through a link (`/pay/<id>`). Money is in integer cents (euros), times are UTC.
States and failure codes are GOV.UK Pay's: created → started → submitted → success | failed | cancelled |
error; `failed` carries P0010 (rejected), P0020 (expired) or P0030 (cancelled by the payer), `cancelled`
P0040 (cancelled by the service), `error` P0050 (provider error). A finished payment never changes again.

Requests keep only shape limits (types, lengths that bound a message); the rules themselves (amount 1 € to
100,000 €, reference, email, metadata, objet) are services/payment_link/domain.py's, which refuse with a
French message naming the field. What the service returns or announces holds the exact rules.
"""
from __future__ import annotations

from datetime import date, datetime
from typing import Literal, Union

from pydantic import Field, StrictBool, StrictFloat, StrictInt, StrictStr

from contracts.base import EventContract, Model, RpcContract
from contracts.platform import batch_of, declare_ping

SERVICE = "payment_link"

# The rules' numbers, shared by the domain, the gateway and the contracts' schemas.
MIN_AMOUNT = 100  # 1 €: PayFiP's minimum
MAX_AMOUNT = 10_000_000  # 100,000 €: PayFiP's maximum
REFERENCE_PATTERN = r"^[A-Za-z0-9]{1,30}$"  # PayFiP's refdet (see domain.PAYFIP_MIN_REFDET for PayFiP régies)
OBJET_PATTERN = r"^[A-Za-z0-9 ]{0,100}$"  # PayFiP's objet: ASCII letters, digits and spaces
NUMCLI_PATTERN = r"^[0-9]{6}$"
METADATA_MAX_KEYS = 15  # GOV.UK Pay's metadata limits
METADATA_MAX_KEY = 30
METADATA_MAX_VALUE = 100
IDEMPOTENCY_KEY_MAX = 255  # Stripe's
ID_PATTERN = r"^[A-Za-z0-9_-]{1,80}$"

PaymentState = Literal["created", "started", "submitted", "success", "failed", "cancelled", "error"]
FailureCode = Literal["P0010", "P0020", "P0030", "P0040", "P0050"]
ProviderName = Literal["payfip", "sandbox"]
PayfipMode = Literal["T", "X", "W"]
Language = Literal["fr", "en"]
RefundStatus = Literal["submitted", "success", "error"]
RefundKind = Literal["provider", "accountant"]
RefundAvailability = Literal["pending", "unavailable", "available", "full"]
MetadataValue = Union[StrictStr, StrictBool, StrictInt, StrictFloat]
Day = date  # fields named `date` below would shadow the type inside their class


# -- régies ------------------------------------------------------------------------------------------
class ProviderSettings(Model):
    provider: ProviderName = Field(default="payfip", description="payfip (DGFiP) or sandbox (demo cards)")
    payfip_mode: PayfipMode = Field(default="T", description="PayFiP `saisie`: T test, X activation, W production")


class RegieInput(Model):
    """What an agent saves; checked by domain.check_regie (French messages)."""

    id: str | None = Field(default=None, pattern=ID_PATTERN, description="absent: a new régie")
    numcli: str = Field(max_length=20, description="PayFiP client number: 6 digits")
    name: str = Field(max_length=300)
    services: list[str] = Field(default_factory=list, max_length=30,
                                description="what it bills (cantine, eau, crèche…), 80 characters each")
    provider: ProviderSettings = Field(default_factory=ProviderSettings)
    active: bool = True


class Regie(Model):
    """A collection account (régie de recettes) and how its payments are taken."""

    id: str
    numcli: str = Field(pattern=NUMCLI_PATTERN)
    name: str = Field(min_length=1, max_length=200)
    services: list[str] = []
    provider: ProviderSettings
    active: bool = True
    created_at: datetime
    updated_at: datetime


class ListRegies(Model):
    include_inactive: bool = False


# -- payments ----------------------------------------------------------------------------------------
class PaymentInput(Model):
    """A bill to pay, as an agent or the billing software sends it (rules: domain.check_payment_input)."""

    regie_id: str = Field(max_length=80)
    service: str | None = Field(default=None, max_length=80, description="one of the régie's services")
    amount: int = Field(strict=True, description="integer cents, 100 (1 €) to 10,000,000 (100,000 €)")
    reference: str = Field(max_length=60, description="the bill number (PayFiP refdet): 1 to 30 letters or "
                                                      "digits; 6 at least for a PayFiP régie")
    description: str = Field(max_length=500, description="French text shown to the payer (255 characters); "
                                                         "sent to PayFiP transliterated (objet)")
    email: str = Field(max_length=254, description="the payer's address, 6 to 80 characters (PayFiP's limits)")
    language: Language = "fr"
    metadata: dict[str, MetadataValue] = Field(default_factory=dict, description="15 keys at most, key 30 characters, "
                                               "value 100; cannot change after creation")
    return_url: str | None = Field(default=None, max_length=2000, description="where our receipt page sends the "
                                                                              "payer back (https)")
    due_date: date | None = Field(default=None, description="the link is valid until the end of this day "
                                                            "(Europe/Paris); default 30 days")


class CreatePaymentLink(Model):
    idempotency_key: str | None = Field(default=None, max_length=IDEMPOTENCY_KEY_MAX,
                                        description="same key + same body within 24 h: the first payment; "
                                                    "same key + another body: CONFLICT")
    payment: PaymentInput


class Failure(Model):
    code: FailureCode
    message: str = Field(description="French, for the payer and the agent")


class RefundSummary(Model):
    status: RefundAvailability
    amount_available: int = Field(ge=0)
    amount_submitted: int = Field(ge=0)


class Refund(Model):
    id: str
    amount: int = Field(ge=1)
    status: RefundStatus
    kind: RefundKind = Field(description="provider: refunded by the card provider; accountant: PayFiP has no "
                                         "refund call, the public accountant refunds and an agent marks it done")
    reason: str | None = None
    provider_refund_id: str | None = None
    created_by: str | None = None
    created_at: datetime
    settled_at: datetime | None = None


class Transition(Model):
    state: PaymentState
    at: datetime
    failure_code: FailureCode | None = None
    provider_status: str | None = Field(default=None, description="what the provider answered (resultrans, P5…)")
    actor: str | None = None


class Payment(Model):
    id: str
    url: str = Field(description="path of the public page: /pay/<id>")
    regie_id: str
    regie_name: str
    service: str | None = None
    amount: int = Field(ge=MIN_AMOUNT, le=MAX_AMOUNT)
    reference: str = Field(pattern=REFERENCE_PATTERN)
    description: str = Field(min_length=1, max_length=255)
    objet: str = Field(pattern=OBJET_PATTERN, description="the description as PayFiP takes it")
    email: str = Field(min_length=6, max_length=80)
    language: Language = "fr"
    metadata: dict[str, MetadataValue] = Field(default_factory=dict, max_length=METADATA_MAX_KEYS)
    return_url: str | None = None
    due_date: date | None = None
    expires_at: datetime = Field(description="the link cannot start a payment after this instant")
    state: PaymentState
    finished: bool
    failure: Failure | None = None
    provider: ProviderName
    provider_id: str | None = Field(default=None, description="the session at the provider (PayFiP idOp)")
    provider_status: str | None = None
    session_started_at: datetime | None = None
    session_expires_at: datetime | None = None
    paid_at: datetime | None = None
    authorisation_code: str | None = Field(default=None, description="PayFiP numauto")
    refund_summary: RefundSummary
    refunds: list[Refund] = []
    history: list[Transition] = []
    retry_of: str | None = Field(default=None, description="the failed payment of the same bill this one replaces")
    created_by: str | None = None
    created_at: datetime
    updated_at: datetime


class PaymentCreated(Model):
    payment: Payment
    replayed: bool = Field(description="true when the idempotency key returned an earlier payment")


class PublicPayment(Model):
    """What the public page /pay/<id> shows: from our store, never from the URL; no email, no metadata."""

    id: str
    regie_name: str
    amount: int
    reference: str
    description: str
    language: Language
    state: PaymentState
    finished: bool
    failure: Failure | None = None
    payable: bool = Field(description="the page offers « Payer »")
    due_date: date | None = None
    expires_at: datetime
    paid_at: datetime | None = None
    authorisation_code: str | None = None
    provider: ProviderName
    return_url: str | None = None


class PaymentRef(Model):
    id: str = Field(max_length=80)


class PaymentPageRequest(Model):
    id: str = Field(max_length=80)
    refresh: bool = Field(default=False, description="read the result back from the provider first (return page)")


class PaymentFilter(Model):
    regie_ids: list[str] = Field(default_factory=list, max_length=50)
    states: list[PaymentState] = Field(default_factory=list)
    reference: str | None = Field(default=None, max_length=60)
    email: str | None = Field(default=None, max_length=254)
    provider: ProviderName | None = None
    created_after: datetime | None = None
    created_before: datetime | None = None


class ListPayments(Model):
    filter: PaymentFilter = Field(default_factory=PaymentFilter)
    first: int = Field(default=50, ge=1, le=500)
    after: str | None = Field(default=None, max_length=200, description="keyset cursor (created_at, id)")


class MyPayments(Model):
    """The caller's payments: those made out to the verified address of the citizen token."""

    first: int = Field(default=50, ge=1, le=500)
    after: str | None = Field(default=None, max_length=200)


class PaymentPage(Model):
    items: list[Payment]
    cursors: list[str] = Field(default_factory=list, description="opaque Relay cursor of each item")
    total: int
    end_cursor: str | None = None
    has_next: bool = False


class CancelPayment(Model):
    id: str = Field(max_length=80)
    reason: str | None = Field(default=None, max_length=500)


class RefundPayment(Model):
    id: str = Field(max_length=80)
    amount: int = Field(strict=True, description="cents")
    amount_available: int = Field(strict=True, description="refundSummary.amountAvailable as the caller saw it: "
                                                           "CONFLICT when it changed (two refunds racing)")
    reason: str | None = Field(default=None, max_length=500)


class SettleRefund(Model):
    """An agent records the accountant's refund (PayFiP) as done, or as failed."""

    payment_id: str = Field(max_length=80)
    refund_id: str = Field(max_length=80)
    status: Literal["success", "error"]


# -- provider sessions and notifications --------------------------------------------------------------
class StartSession(Model):
    id: str = Field(max_length=80, description="the payment; the payer pressed « Payer » on /pay/<id>")


class SessionStarted(Model):
    payment_id: str
    provider: ProviderName
    provider_id: str
    next_url: str = Field(description="where to send the payer (PayFiP: …/tpa/paiementws.web?idop=…)")
    session_expires_at: datetime
    reused: bool = Field(description="the session already running was given again (a second press of « Payer »)")


class ProviderNotification(Model):
    """A provider's call to our notification URL, passed on untouched: it is never trusted, only read for
    the provider id whose result is then read back from the provider."""

    provider: ProviderName
    body: str = Field(max_length=8192, description="the raw body (PayFiP: form-encoded idOp=…)")
    content_type: str | None = Field(default=None, max_length=200)
    payment_id: str | None = Field(default=None, max_length=40, pattern=r"^pay-[0-9a-f]{1,36}$",
                                   description="the payment named by the notification URL given to the provider "
                                               "(/pay/notify/<provider>/<payment id>): a hint, used only when the "
                                               "payment it names has the provider id the body names")


class NotificationHandled(Model):
    payment_id: str | None = Field(default=None, description="none: the notification named no payment of ours")
    state: PaymentState | None = None
    changed: bool


class Reconcile(Model):
    payment_id: str | None = Field(default=None, max_length=80, description="one payment, else every one due")
    limit: int = Field(default=200, ge=1, le=5000)


class ReconcileReport(Model):
    examined: int
    changed: int
    pending: int = Field(description="still waiting for the provider's result")
    errors: int = Field(description="provider calls that failed (retried at the next round)")


# -- reconciliation ----------------------------------------------------------------------------------
class ReconciliationQuery(Model):
    date: Day = Field(description="a day, Europe/Paris")
    regie_id: str | None = Field(default=None, max_length=80)
    format: Literal["json", "csv"] = "json"


class ReconciliationRow(Model):
    date: Day = Field(description="day (Europe/Paris) the payment finished")
    regie_id: str
    payment_id: str
    reference: str
    amount: int
    state: PaymentState
    failure_code: FailureCode | None = None
    provider: ProviderName
    provider_id: str | None = None
    authorisation_code: str | None = None
    finished_at: datetime
    refunded: int = Field(default=0, description="refunds submitted or done, cents")


class RegieTotals(Model):
    regie_id: str
    date: Day
    succeeded_count: int = 0
    succeeded_amount: int = 0
    failed_count: int = 0
    cancelled_count: int = 0
    error_count: int = 0
    refunded_amount: int = 0
    net_amount: int = Field(default=0, description="collected minus refunded, cents")


class Reconciliation(Model):
    date: Day
    regie_id: str | None = None
    rows: list[ReconciliationRow]
    totals: list[RegieTotals]
    csv: str | None = Field(default=None, description="the accountant's CSV (format csv)")


# -- events --------------------------------------------------------------------------------------------
class PaymentFacts(EventContract):
    """Fields every payment event carries (base, not an event itself): what a partner's webhook needs."""

    payment_id: str
    regie_id: str
    reference: str
    amount: int
    state: PaymentState
    provider: ProviderName
    provider_id: str | None = None
    email: str
    metadata: dict[str, MetadataValue] = {}
    regie_name: str | None = Field(default=None, description="the régie's name, for a receipt or a partner")
    description: str | None = Field(default=None, description="what is paid, in French, as the payer saw it")


class PaymentLinkCreated(PaymentFacts):
    event_type = "payment_link.created"
    summary = "A payment link for a bill was created (agent or billing software)"
    description: str
    due_date: date | None = None
    expires_at: datetime
    created_by: str | None = None
    retry_of: str | None = None


class PaymentStarted(PaymentFacts):
    event_type = "payment_link.started"
    summary = "The payer pressed « Payer »: a provider session started (PayFiP idOp)"
    session_expires_at: datetime


class PaymentSubmitted(PaymentFacts):
    event_type = "payment_link.submitted"
    summary = "The provider notified us or the payer came back, but its result is not known yet (PayFiP P5)"


class PaymentSucceeded(PaymentFacts):
    event_type = "payment_link.succeeded"
    summary = "The provider confirmed the payment (read back from it): send the receipt, tell the partners"
    regie_name: str
    description: str
    paid_at: datetime
    authorisation_code: str | None = None


class PaymentFailed(PaymentFacts):
    event_type = "payment_link.failed"
    summary = "The payment failed: refused (P0010), expired (P0020) or abandoned by the payer (P0030)"
    failure_code: FailureCode
    failure_message: str


class PaymentCancelled(PaymentFacts):
    event_type = "payment_link.cancelled"
    summary = "The service cancelled the payment link before it was paid (P0040)"
    failure_code: FailureCode = "P0040"
    reason: str | None = None
    cancelled_by: str | None = None


class PaymentErrored(PaymentFacts):
    event_type = "payment_link.errored"
    summary = "The provider failed or answered something inconsistent (P0050): an agent has to look"
    failure_code: FailureCode = "P0050"
    failure_message: str


class RefundFacts(EventContract):
    """Fields of every refund event (base)."""

    payment_id: str
    regie_id: str
    reference: str
    refund_id: str
    refund_amount: int
    kind: RefundKind
    refund_summary: RefundSummary


class RefundSubmitted(RefundFacts):
    event_type = "payment_link.refund_submitted"
    summary = "A refund was submitted (to the card provider, or to the public accountant for PayFiP)"
    reason: str | None = None
    created_by: str | None = None


class RefundSucceeded(RefundFacts):
    event_type = "payment_link.refund_succeeded"
    summary = "A refund was done (provider confirmation, or an agent recorded the accountant's refund)"


class RefundFailed(RefundFacts):
    event_type = "payment_link.refund_failed"
    summary = "A refund failed: its amount is refundable again"


# -- RPC ---------------------------------------------------------------------------------------------
PING = declare_ping(SERVICE)
CREATE_PAYMENT_LINK = RpcContract(SERVICE, "create_payment_link", CreatePaymentLink, PaymentCreated,
                                  "Create a payment link for a bill, with an optional idempotency key "
                                  "(agent, or billing software for its own régies)")
CREATE_PAYMENT_LINKS = batch_of(CREATE_PAYMENT_LINK, "create_payment_links")
GET_PAYMENT = RpcContract(SERVICE, "get_payment", PaymentRef, Payment, "One payment with its refunds and history")
PAYMENT_PAGE = RpcContract(SERVICE, "payment_page", PaymentPageRequest, PublicPayment,
                           "What /pay/<id> shows (anyone with the link); refresh reads the provider's result back")
LIST_PAYMENTS = RpcContract(SERVICE, "list_payments", ListPayments, PaymentPage,
                            "Payments by régie, state, reference, email, dates; newest first, keyset cursors")
MY_PAYMENTS = RpcContract(SERVICE, "my_payments", MyPayments, PaymentPage,
                          "A citizen's payments, by the verified address of the token")
CANCEL_PAYMENT = RpcContract(SERVICE, "cancel_payment", CancelPayment, Payment,
                             "Cancel a link not yet paid (P0040); refused while a PayFiP session runs")
REFUND_PAYMENT = RpcContract(SERVICE, "refund_payment", RefundPayment, Payment,
                             "Refund part or all of a successful payment; CONFLICT when amountAvailable changed")
SETTLE_REFUND = RpcContract(SERVICE, "settle_refund", SettleRefund, Payment,
                            "Mark an accountant's refund (PayFiP) done or failed (agent)")
LIST_REGIES = RpcContract(SERVICE, "list_regies", ListRegies, list[Regie], "Régies, by name")
SAVE_REGIE = RpcContract(SERVICE, "save_regie", RegieInput, Regie, "Create or update a régie (agent)")
START_SESSION = RpcContract(SERVICE, "start_session", StartSession, SessionStarted,
                            "The payer pressed « Payer »: start (or give again) the provider session")
HANDLE_NOTIFICATION = RpcContract(SERVICE, "handle_notification", ProviderNotification, NotificationHandled,
                                  "A provider's notification: the result is read back from the provider")
HANDLE_NOTIFICATIONS = batch_of(HANDLE_NOTIFICATION, "handle_notifications")
RECONCILE = RpcContract(SERVICE, "reconcile", Reconcile, ReconcileReport,
                        "Ask the provider about payments still started or submitted (the timer's round)")
RECONCILIATION_REPORT = RpcContract(SERVICE, "reconciliation_report", ReconciliationQuery, Reconciliation,
                                    "A day's payments and totals per régie, for the accountant (JSON or CSV)")
