"""Notification GraphQL: citizen sign-in by emailed code, subscriptions, in-app notifications, templates
and delivery receipts."""
from __future__ import annotations

import enum
import time
import uuid
from datetime import datetime
from typing import Optional

import strawberry
from strawberry.scalars import JSON
from strawberry.types import Info

from contracts import agenda_public
from contracts import notification as notification_c
from contracts.errors import BadInput, ServiceUnavailable
from gateway import auth
from gateway.schema.permissions import IsAgent, IsAgentOrOperator, HasRole
from gateway.schema.platform import Role


class IsCitizenOrAgent(HasRole):
    roles = frozenset({"citizen", "agent"})


@strawberry.enum(description="Where a notification goes")
class NotificationChannel(enum.Enum):
    EMAIL = "email"
    SMS = "sms"
    IN_APP = "in_app"


@strawberry.enum(description="created → sending → delivered | temporary-failure (retried) | permanent-failure")
class DeliveryStatus(enum.Enum):
    CREATED = "created"
    SENDING = "sending"
    DELIVERED = "delivered"
    TEMPORARY_FAILURE = "temporary-failure"
    PERMANENT_FAILURE = "permanent-failure"


@strawberry.type(description="A sign-in code was sent if the address can receive one (never says whether it is known)")
class LoginCodeRequest:
    sent: bool
    expires_in_seconds: int


@strawberry.type(description="A session opened by signing in: send the token as 'Authorization: Bearer <token>'; "
                             "its role is the one the address was granted (citizen without one)")
class CitizenSession:
    token: str
    expires_at: datetime
    citizen_id: strawberry.ID
    role: Role = strawberry.field(description="CITIZEN, ORGANIZER, AGENT or OPERATOR")
    organization_id: Optional[strawberry.ID] = strawberry.field(description="role organizer: its organisation")


@strawberry.type(description="A subscription of the caller to a topic, on one channel")
class TopicSubscription:
    id: strawberry.ID
    topic: str
    channel: NotificationChannel
    address: Optional[str]
    quiet_from: Optional[str] = strawberry.field(description="quiet hours start (Paris time, HH:MM): email and SMS wait")
    quiet_to: Optional[str]
    digest: bool = strawberry.field(description="agenda topics: one message a day listing the events published, "
                                                "instead of one per event")
    created_at: datetime


@strawberry.type(description="Result of an unsubscription")
class UnsubscribeResult:
    unsubscribed: bool
    topic: Optional[str]


@strawberry.type(description="One notification to one recipient on one channel, and its delivery status")
class Notification:
    id: strawberry.ID
    event_id: str
    template: str
    template_version: int
    channel: NotificationChannel
    recipient: str
    status: DeliveryStatus
    attempts: int
    created_at: datetime
    delivered_at: Optional[datetime]
    failed_at: Optional[datetime]
    next_attempt_at: Optional[datetime]
    error: Optional[str]
    topic: Optional[str]
    subject: Optional[str]
    text: Optional[str]
    read_at: Optional[datetime]


@strawberry.type(description="A message template (latest version)")
class NotificationTemplate:
    name: str
    version: int
    description: str
    channels: list[NotificationChannel]
    variables: list[str]


@strawberry.type(description="A template rendered without sending")
class TemplatePreview:
    name: str
    version: int
    channel: NotificationChannel
    subject: Optional[str]
    text: str
    html: Optional[str]
    length: int


@strawberry.input(description="Which deliveries to list")
class DeliveryFilter:
    status: Optional[DeliveryStatus] = None
    channel: Optional[NotificationChannel] = None
    event_id: Optional[str] = None
    template: Optional[str] = None
    limit: int = 100


def _notification(row: dict) -> Notification:
    return Notification(
        id=row["id"], event_id=row["event_id"], template=row["template"], template_version=row["template_version"],
        channel=NotificationChannel(row["channel"]), recipient=row["recipient"], status=DeliveryStatus(row["status"]),
        attempts=row["attempts"], created_at=row["created_at"], delivered_at=row.get("delivered_at"),
        failed_at=row.get("failed_at"), next_attempt_at=row.get("next_attempt_at"), error=row.get("error"),
        topic=row.get("topic"), subject=row.get("subject"), text=row.get("text"), read_at=row.get("read_at"))


def _subscription(row: dict) -> TopicSubscription:
    return TopicSubscription(id=row["id"], topic=row["topic"], channel=NotificationChannel(row["channel"]),
                             address=row.get("address"), quiet_from=row.get("quiet_from"),
                             quiet_to=row.get("quiet_to"), digest=bool(row.get("digest")),
                             created_at=row["created_at"])


def agenda_topic(info: Info, topic: str) -> str:
    """An agenda topic with its commune or category checked against the agenda's reference data, the way a person
    types it (`agenda:commune:Labège` is `agenda:commune:labege`): a subscription to nothing is refused."""
    prefix, kind, value = (topic.split(":", 2) + ["", ""])[:3]
    kinds = {"commune": "communes", "category": "categories"}
    if prefix != "agenda" or kind not in kinds:
        return topic  # the other topics are the notification service's to check
    reference = info.context["public_agenda"].reference
    if reference is None:
        raise ServiceUnavailable("L'agenda ne répond pas : réessayez dans un instant.")
    try:
        [slug] = agenda_public.resolve([value], getattr(reference, kinds[kind]), kinds[kind])
    except BadInput as exc:
        raise BadInput(exc.message, "topic") from None
    return f"agenda:{kind}:{slug}"


def _client_ip(info: Info) -> Optional[str]:
    """The client's address as the gateway resolved it (behind trusted proxies: X-Forwarded-For; gateway/limits.py)."""
    request = info.context["request"]
    state = request.scope.get("state") or {}
    if "client" in state:
        return state["client"]
    return request.client.host if request.client else None


@strawberry.type
class NotificationQuery:
    @strawberry.field(description="The caller's subscriptions", permission_classes=[IsCitizenOrAgent])
    async def my_subscriptions(self, info: Info) -> list[TopicSubscription]:
        return [_subscription(r) for r in await info.context["call"]("notification", "my_subscriptions")]

    @strawberry.field(description="The caller's in-app notifications, newest first", permission_classes=[IsCitizenOrAgent])
    async def my_notifications(self, info: Info, limit: int = 50, unread_only: bool = False) -> list[Notification]:
        rows = await info.context["call"]("notification", "my_notifications", limit=limit, unread_only=unread_only)
        return [_notification(r) for r in rows]

    @strawberry.field(description="The message templates and the variables they need")
    async def notification_templates(self, info: Info) -> list[NotificationTemplate]:
        rows = await info.context["call"]("notification", "list_templates")
        return [NotificationTemplate(name=r["name"], version=r["version"], description=r["description"],
                                     channels=[NotificationChannel(ch) for ch in r["channels"]], variables=r["variables"])
                for r in rows]

    @strawberry.field(description="Render a template without sending it (agents)", permission_classes=[IsAgent])
    async def preview_template(self, info: Info, name: str, personalisation: JSON,
                               channel: NotificationChannel = NotificationChannel.EMAIL,
                               version: Optional[int] = None) -> TemplatePreview:
        r = await info.context["call"]("notification", "preview_template", name=name, channel=channel.value,
                                       version=version, personalisation=personalisation)
        return TemplatePreview(name=r["name"], version=r["version"], channel=NotificationChannel(r["channel"]),
                               subject=r.get("subject"), text=r["text"], html=r.get("html"), length=r["length"])

    @strawberry.field(description="Partners' webhook endpoints, without their keys (agents, operators)",
                      permission_classes=[IsAgentOrOperator])
    async def webhooks(self, info: Info) -> list[PartnerWebhook]:
        return [_webhook(r) for r in await info.context["call"]("notification", "list_webhooks")]

    @strawberry.field(description="Notifications and their delivery status (agents, operators)",
                      permission_classes=[IsAgentOrOperator])
    async def notification_deliveries(self, info: Info, filter: Optional[DeliveryFilter] = None) -> list[Notification]:
        f = filter or DeliveryFilter()
        rows = await info.context["call"](
            "notification", "notification_deliveries", status=f.status.value if f.status else None,
            channel=f.channel.value if f.channel else None, event_id=f.event_id, template=f.template, limit=f.limit)
        return [_notification(r) for r in rows]


WebhookTopic = strawberry.enum(enum.Enum("WebhookTopic", {
    t.replace(".", "_").upper(): t for t in (*notification_c.RECEIPT_TOPICS, *notification_c.PAYMENT_TOPICS)}),
    description="What a partner's webhook receives: the delivery receipts of the messages it asked for "
                "(NOTIFICATION_*), or the payment events of its régies (PAYMENT_LINK_*)")


@strawberry.type(description="A partner's endpoint receiving, signed, the delivery receipts of its own messages and "
                             "the payment events of its régies")
class PartnerWebhook:
    id: strawberry.ID
    partner: str
    url: str
    topics: list[WebhookTopic]
    regie_ids: list[str]
    created_at: Optional[datetime] = None
    signing_secret: Optional[str] = strawberry.field(
        default=None, description="HMAC-SHA256 key of the X-Parvis-Signature and Pay-Signature headers: shown once, "
                                  "at registration")


def _webhook(r: dict) -> PartnerWebhook:
    return PartnerWebhook(id=r["id"], partner=r["partner"], url=r["url"], signing_secret=r.get("signing_secret"),
                          created_at=r.get("created_at"), topics=[WebhookTopic(t) for t in r.get("topics") or ()],
                          regie_ids=r.get("regie_ids") or [])


@strawberry.type
class NotificationMutation:
    @strawberry.mutation(description="Register a partner URL for the delivery receipts of its own messages (default) "
                                     "or its régies' payment events (topics PAYMENT_LINK_* with regieIds); several per "
                                     "partner (agents, operators)", permission_classes=[IsAgentOrOperator])
    async def register_webhook(self, info: Info, partner: str, url: str, topics: Optional[list[WebhookTopic]] = None,
                               regie_ids: Optional[list[str]] = None) -> PartnerWebhook:
        extra = {"topics": [t.value for t in topics]} if topics else {}
        return _webhook(await info.context["call"]("notification", "add_webhook", partner=partner, url=url,
                                                   regie_ids=regie_ids or [], **extra))

    @strawberry.mutation(description="Stop sending receipts to one endpoint (agents, operators)",
                         permission_classes=[IsAgentOrOperator])
    async def remove_webhook(self, info: Info, id: strawberry.ID) -> PartnerWebhook:
        return _webhook(await info.context["call"]("notification", "remove_webhook", id=str(id)))

    @strawberry.mutation(description="Email a 6-digit sign-in code, valid 10 minutes")
    async def request_login_code(self, info: Info, email: str) -> LoginCodeRequest:
        r = await info.context["call"]("notification", "request_login_code", email=email, client_ip=_client_ip(info))
        return LoginCodeRequest(sent=r["sent"], expires_in_seconds=r["expires_in_seconds"])

    @strawberry.mutation(description="Exchange a sign-in code for a token of the address's role (citizen without "
                                     "one; see grantRole); the session is recorded, so that revoking the role ends it")
    async def verify_login_code(self, info: Info, email: str, code: str) -> CitizenSession:
        token_id = uuid.uuid4().hex
        r = await info.context["call"]("notification", "verify_login_code", email=email, code=code,
                                       client_ip=_client_ip(info), token_id=token_id)
        ttl = max(1, int(r["expires_at"].timestamp() - time.time()))
        token = auth.issue(info.context["settings"].secret, r["role"], subject=r["citizen_id"], org=r.get("org"),
                           ttl=ttl, token_id=token_id)
        return CitizenSession(token=token.value, expires_at=datetime.fromtimestamp(token.expires_at).astimezone(),
                              citizen_id=r["citizen_id"], role=Role(r["role"]), organization_id=r.get("org"))

    @strawberry.mutation(description="Subscribe to a topic: agenda:commune:<commune>, agenda:category:<category> "
                                     "(slug or name; an unknown one is refused with BAD_USER_INPUT), "
                                     "consultation:new; agents also satisfaction:site:<id>. With digest (agenda "
                                     "topics, EMAIL or IN_APP), one message a day lists the events published "
                                     "instead of one message per event; subscribing again changes it",
                         permission_classes=[IsCitizenOrAgent])
    async def subscribe(self, info: Info, topic: str, channel: NotificationChannel = NotificationChannel.EMAIL,
                        email: Optional[str] = None, phone: Optional[str] = None,
                        quiet_from: Optional[str] = None, quiet_to: Optional[str] = None,
                        digest: bool = False) -> TopicSubscription:
        topic = agenda_topic(info, topic)
        r = await info.context["call"]("notification", "subscribe", topic=topic, channel=channel.value,
                                       email=email, phone=phone, quiet_from=quiet_from, quiet_to=quiet_to,
                                       digest=digest)
        return _subscription(r)

    @strawberry.mutation(description="Remove one of the caller's subscriptions", permission_classes=[IsCitizenOrAgent])
    async def unsubscribe(self, info: Info, id: strawberry.ID) -> UnsubscribeResult:
        r = await info.context["call"]("notification", "unsubscribe", id=str(id))
        return UnsubscribeResult(unsubscribed=r["unsubscribed"], topic=r.get("topic"))

    @strawberry.mutation(description="Mark in-app notifications read; returns how many changed",
                         permission_classes=[IsCitizenOrAgent])
    async def mark_notifications_read(self, info: Info, ids: list[strawberry.ID]) -> int:
        r = await info.context["call"]("notification", "mark_notifications_read", ids=[str(i) for i in ids])
        return r["count"]


@strawberry.type
class NotificationSubscription:
    pass
