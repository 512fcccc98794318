"""Notification service contracts: token revocation, the organisations' contact directory, sign-in codes, people's
accounts and roles and their sessions, subscriptions, templated notifications and their delivery receipts."""
from __future__ import annotations

from datetime import date, datetime
from typing import Any, Literal

from pydantic import Field

from contracts.base import Empty, EventContract, Model, RpcContract
from contracts.platform import declare_ping

SERVICE = "notification"

Channel = Literal["email", "sms", "in_app"]
HHMM = r"^([01][0-9]|2[0-3]):[0-5][0-9]$"
Status = Literal["created", "sending", "delivered", "temporary-failure", "permanent-failure"]
PARTNER_PATTERN = r"^[a-z0-9][a-z0-9-]*$"
# What a partner's webhook may receive. Delivery receipts are only of the messages the partner itself asked for
# (SendNotification.partner), never of sign-in codes nor of the platform's own messages; payment events only of the
# régies named on the webhook (the partner's own).
RECEIPT_TOPICS = ("notification.delivered", "notification.failed")
PAYMENT_TOPICS = ("payment_link.created", "payment_link.started", "payment_link.submitted", "payment_link.succeeded",
                  "payment_link.failed", "payment_link.cancelled", "payment_link.errored",
                  "payment_link.refund_submitted", "payment_link.refund_succeeded", "payment_link.refund_failed")
WebhookTopic = Literal["notification.delivered", "notification.failed", "payment_link.created", "payment_link.started",
                       "payment_link.submitted", "payment_link.succeeded", "payment_link.failed",
                       "payment_link.cancelled", "payment_link.errored", "payment_link.refund_submitted",
                       "payment_link.refund_succeeded", "payment_link.refund_failed"]


class RevokeToken(Model):
    token_id: str = Field(min_length=8, max_length=64)
    expires_at: datetime
    reason: str = Field(default="", max_length=200)


class Revoked(Model):
    token_id: str
    expires_at: datetime


class OrganizationContact(Model):
    id: str
    name: str
    contact_email: str | None = None


class GetOrganizationContact(Model):
    id: str


# -- sign-in -------------------------------------------------------------------------------------
class RequestLoginCode(Model):
    email: str = Field(max_length=254)
    client_ip: str | None = Field(default=None, max_length=64, description="as the gateway saw it, for rate limits")


class LoginCodeRequested(Model):
    sent: bool = Field(description="always true: whether the address is known is never revealed")
    expires_in_seconds: int


class VerifyLoginCode(Model):
    email: str = Field(max_length=254)
    code: str = Field(max_length=12)
    client_ip: str | None = Field(default=None, max_length=64)
    token_id: str | None = Field(default=None, min_length=8, max_length=64, description=(
        "id of the token the gateway will issue for this session: recorded, so that revoking the person's role "
        "(or an operator) ends it"))


# How long a session opened by signing in lasts, by the role the address has (the gateway's tokens of those roles).
SESSION_TTL = {"citizen": 30 * 86400, "organizer": 30 * 86400, "agent": 12 * 3600, "operator": 12 * 3600}
PersonRole = Literal["citizen", "organizer", "agent", "operator"]
AccountRole = Literal["organizer", "agent", "operator"]


class VerifiedCitizen(Model):
    citizen_id: str = Field(description="subject of the token the gateway issues")
    email: str
    role: PersonRole = Field(default="citizen", description="the role the address was granted (citizen without one)")
    org: str | None = Field(default=None, description="role organizer: its organisation's id")
    expires_at: datetime | None = Field(default=None, description="end of the session (SESSION_TTL of the role)")


# -- accounts: roles granted to addresses, and the sessions they open --------------------------------
class GrantRole(Model):
    email: str = Field(max_length=254)
    role: AccountRole
    org: str | None = Field(default=None, max_length=120, description="role organizer: the organisation's id")


class AccountRef(Model):
    email: str = Field(max_length=254)


class Account(Model):
    email: str
    role: AccountRole
    org: str | None = None
    org_name: str | None = None
    granted_by: str | None = None
    granted_at: datetime
    ended_sessions: list[str] = Field(default_factory=list, description=(
        "token ids of the sessions this change ended (revoked: refused by every gateway within 5 s)"))


class ListAccounts(Model):
    role: AccountRole | None = None
    org: str | None = Field(default=None, max_length=120)


class ListSessions(Model):
    email: str | None = Field(default=None, max_length=254)
    limit: int = Field(default=200, ge=1, le=1000)


class PersonSession(Model):
    token_id: str
    email: str
    role: PersonRole
    org: str | None = None
    created_at: datetime
    expires_at: datetime


# -- subscriptions -------------------------------------------------------------------------------
class Subscribe(Model):
    topic: str = Field(max_length=120)
    channel: Channel = "email"
    email: str | None = Field(default=None, max_length=254, description="agents: where to send (citizens: their verified address)")
    phone: str | None = Field(default=None, max_length=32, description="for SMS; E.164 or French national form")
    quiet_from: str | None = Field(default=None, pattern=HHMM, description="quiet hours start, Paris time, HH:MM")
    quiet_to: str | None = Field(default=None, pattern=HHMM, description="quiet hours end, Paris time, HH:MM")
    digest: bool = Field(default=False, description="agenda topics, email or in-app: one message a day listing "
                                                    "the events published, instead of one per event")


class Subscription(Model):
    id: str
    topic: str
    channel: Channel
    address: str | None = None
    quiet_from: str | None = None
    quiet_to: str | None = None
    digest: bool = False
    created_at: datetime


class Unsubscribe(Model):
    id: str | None = Field(default=None, description="a subscription of the caller")
    token: str | None = Field(default=None, max_length=400, description="the signed one-click link's token")


class Unsubscribed(Model):
    unsubscribed: bool
    topic: str | None = None


# -- notifications -------------------------------------------------------------------------------
class SendNotification(Model):
    template: str = Field(max_length=80)
    channel: Channel = "email"
    to: str = Field(max_length=254, description="an email address, a phone number, or (in_app) a citizen id")
    personalisation: dict[str, Any] = Field(default_factory=dict)
    reference: str = Field(min_length=1, max_length=100, description="idempotency key: one notification per (reference, to, channel)")
    partner: str | None = Field(default=None, min_length=1, max_length=80, pattern=PARTNER_PATTERN, description=(
        "the partner application the message is sent for: its delivery receipts go to that partner's webhooks, and "
        "to no one else's (none without a partner)"))


class Notification(Model):
    id: str
    event_id: str
    event_type: str | None = None
    template: str
    template_version: int
    channel: Channel
    recipient: str
    status: Status
    attempts: int = 0
    created_at: datetime
    delivered_at: datetime | None = None
    failed_at: datetime | None = None
    next_attempt_at: datetime | None = None
    error: str | None = None
    topic: str | None = None
    partner: str | None = None
    subject: str | None = None
    text: str | None = None
    read_at: datetime | None = None


class MyNotifications(Model):
    limit: int = Field(default=50, ge=1, le=200)
    unread_only: bool = False


class MarkRead(Model):
    ids: list[str] = Field(max_length=500)


class Count(Model):
    count: int


class DeliveryFilter(Model):
    status: Status | None = None
    channel: Channel | None = None
    event_id: str | None = Field(default=None, max_length=120)
    template: str | None = Field(default=None, max_length=80)
    limit: int = Field(default=100, ge=1, le=500)


class TemplateInfo(Model):
    name: str
    version: int
    description: str
    channels: list[Channel]
    variables: list[str]


class PreviewTemplate(Model):
    name: str = Field(max_length=80)
    channel: Channel = "email"
    version: int | None = None
    personalisation: dict[str, Any] = Field(default_factory=dict)


class Preview(Model):
    name: str
    version: int
    channel: Channel
    subject: str | None = None
    text: str
    html: str | None = None
    length: int


class AddWebhook(Model):
    partner: str = Field(min_length=1, max_length=80, pattern=PARTNER_PATTERN)
    url: str = Field(min_length=8, max_length=500, pattern=r"^https?://")
    topics: list[WebhookTopic] = Field(default_factory=lambda: list(RECEIPT_TOPICS), min_length=1, max_length=12,
                                       description="the events sent to this endpoint (default: delivery receipts)")
    regie_ids: list[str] = Field(default_factory=list, max_length=50, description=(
        "payment_link.* topics: the régies (the partner's own) whose payments are sent; required with them"))


class Webhook(Model):
    id: str
    partner: str
    url: str
    topics: list[WebhookTopic] = Field(default_factory=lambda: list(RECEIPT_TOPICS))
    regie_ids: list[str] = []
    created_at: datetime | None = None
    signing_secret: str = Field(description="HMAC-SHA256 key of the X-Parvis-Signature header; shown at creation")


class WebhookRef(Model):
    id: str = Field(min_length=1, max_length=40)


class WebhookInfo(Model):
    id: str
    partner: str
    url: str
    topics: list[WebhookTopic] = Field(default_factory=lambda: list(RECEIPT_TOPICS))
    regie_ids: list[str] = []
    created_at: datetime | None = None


class SendDigests(Model):
    day: date | None = Field(default=None, description="the Paris day of the digest; default today")


class DigestRun(Model):
    day: date
    events: int = Field(description="events published in the day's window")
    recipients: int = Field(description="(recipient, channel) pairs with something new")
    created: int = Field(description="digest notifications created by this call (0 when already created)")


# -- events --------------------------------------------------------------------------------------
class NotificationDelivered(EventContract):
    event_type = "notification.delivered"
    summary = "A notification reached its channel (SMTP server accepted it, SMS provider took it, stored in-app)"
    id: str
    event_id: str = Field(description="the event or reference the notification was sent for")
    template: str
    channel: Channel
    recipient: str
    attempts: int
    delivered_at: datetime


class NotificationFailed(EventContract):
    event_type = "notification.failed"
    summary = "A notification will not be delivered: permanent failure, or temporary ones beyond the retry period"
    id: str
    event_id: str
    template: str
    channel: Channel
    recipient: str
    attempts: int
    reason: str
    failed_at: datetime


PING = declare_ping(SERVICE)
REVOKE_TOKEN = RpcContract(SERVICE, "revoke_token", RevokeToken, Revoked, "Revoke a bearer token until it expires")
LIST_REVOKED_TOKENS = RpcContract(SERVICE, "list_revoked_tokens", Empty, list[Revoked],
                                  "Tokens revoked and not yet expired (the gateway caches them)")
GET_ORGANIZATION_CONTACT = RpcContract(SERVICE, "get_organization_contact", GetOrganizationContact, OrganizationContact,
                                       "Where to tell an organisation about its events (from agenda.organization_upserted)")
REQUEST_LOGIN_CODE = RpcContract(SERVICE, "request_login_code", RequestLoginCode, LoginCodeRequested,
                                 "Email a 6-digit sign-in code (10 minutes, 5 attempts); rate-limited per address and IP")
VERIFY_LOGIN_CODE = RpcContract(SERVICE, "verify_login_code", VerifyLoginCode, VerifiedCitizen,
                                "Check a sign-in code; the gateway then issues a citizen token for citizen_id")
GRANT_ROLE = RpcContract(SERVICE, "grant_role", GrantRole, Account, (
    "Give an address a role: agent or operator (operators), organiser of an organisation (agents, operators); a "
    "change of role ends the address's sessions"))
REVOKE_ROLE = RpcContract(SERVICE, "revoke_role", AccountRef, Account,
                          "Take an address's role away and end its sessions (same rights as granting it)")
LIST_ACCOUNTS = RpcContract(SERVICE, "list_accounts", ListAccounts, list[Account],
                            "Addresses with a role (operators: all; agents: organisers)")
LIST_SESSIONS = RpcContract(SERVICE, "list_sessions", ListSessions, list[PersonSession],
                            "Sessions opened by signing in, not expired nor revoked, newest first (operators)")
SUBSCRIBE = RpcContract(SERVICE, "subscribe", Subscribe, Subscription, "Subscribe the caller to a topic on a channel")
UNSUBSCRIBE = RpcContract(SERVICE, "unsubscribe", Unsubscribe, Unsubscribed,
                          "Remove a subscription: the caller's own by id, or anyone's by its signed link token")
MY_SUBSCRIPTIONS = RpcContract(SERVICE, "my_subscriptions", Empty, list[Subscription], "The caller's subscriptions")
MY_NOTIFICATIONS = RpcContract(SERVICE, "my_notifications", MyNotifications, list[Notification],
                               "The caller's in-app notifications, newest first")
MARK_READ = RpcContract(SERVICE, "mark_notifications_read", MarkRead, Count, "Mark in-app notifications read")
SEND_NOTIFICATION = RpcContract(SERVICE, "send_notification", SendNotification, Notification,
                                "Queue one templated notification (agents and services); idempotent by reference")
DELIVERIES = RpcContract(SERVICE, "notification_deliveries", DeliveryFilter, list[Notification],
                         "Notifications and their delivery status (agents, operators)")
LIST_TEMPLATES = RpcContract(SERVICE, "list_templates", Empty, list[TemplateInfo], "The templates, latest versions")
PREVIEW_TEMPLATE = RpcContract(SERVICE, "preview_template", PreviewTemplate, Preview,
                               "Render a template with personalisation, without sending (agents)")
SEND_DIGESTS = RpcContract(SERVICE, "send_digests", SendDigests, DigestRun,
                           "Create the day's agenda digests now (operators, agents): once per citizen, channel and day")
ADD_WEBHOOK = RpcContract(SERVICE, "add_webhook", AddWebhook, Webhook,
                          "Register a partner URL that receives its own messages' delivery receipts and its régies' payment events, "
                          "signed with HMAC-SHA256")
LIST_WEBHOOKS = RpcContract(SERVICE, "list_webhooks", Empty, list[WebhookInfo],
                            "The partners' webhook endpoints, without their signing keys (agents, operators)")
REMOVE_WEBHOOK = RpcContract(SERVICE, "remove_webhook", WebhookRef, WebhookInfo,
                             "Stop sending delivery receipts to one endpoint (agents, operators)")
