"""Agenda GraphQL: reference data, the public agenda (Relay connection), organisers' events and moderation."""
from __future__ import annotations

import enum
from datetime import datetime, timezone
from typing import Optional

import strawberry
from strawberry.types import Info

from contracts import agenda_public
from gateway.readmodel import Page
from gateway.schema.convert import plain
from gateway.schema.permissions import HasRole, IsAgent


class IsOrganizerOrAgent(HasRole):
    roles = frozenset({"organizer", "agent"})


@strawberry.type(description="One of the authority's member communes")
class Commune:
    slug: str
    name: str


@strawberry.enum
class OrganizationKind(enum.Enum):
    COMMUNE = "commune"
    ASSOCIATION = "association"
    AUTHORITY = "authority"


@strawberry.type(description="An organisation that may propose events: a commune, an association, the authority")
class Organization:
    id: strawberry.ID
    slug: str
    name: str
    kind: OrganizationKind
    commune: Optional[str] = strawberry.field(description="slug of its commune")


@strawberry.type(description="An event category")
class Category:
    slug: str
    name: str


@strawberry.type(description="One of the authority's competences, used as a theme")
class Theme:
    slug: str
    name: str


# -- events --------------------------------------------------------------------------------------
@strawberry.enum(description="Moderation axis: draft → submitted → published | rejected; withdrawn")
class ModerationState(enum.Enum):
    DRAFT = "draft"
    SUBMITTED = "submitted"
    PUBLISHED = "published"
    REJECTED = "rejected"
    WITHDRAWN = "withdrawn"


@strawberry.enum(description="Event status axis, mapped to schema.org eventStatus")
class EventStatus(enum.Enum):
    SCHEDULED = "scheduled"
    RESCHEDULED = "rescheduled"
    MOVED_ONLINE = "moved_online"
    POSTPONED = "postponed"
    FULL = "full"
    CANCELLED = "cancelled"


@strawberry.enum
class AccessibilityCode(enum.Enum):
    HEARING = "hearing"
    VISUAL = "visual"
    PSYCHIC = "psychic"
    MOTOR = "motor"
    INTELLECTUAL = "intellectual"


@strawberry.enum
class AttendanceMode(enum.Enum):
    OFFLINE = "offline"
    ONLINE = "online"
    MIXED = "mixed"


@strawberry.enum
class ModerationDecision(enum.Enum):
    APPROVE = "approve"
    REJECT = "reject"


@strawberry.type(description="One occurrence (UTC instants)")
class Occurrence:
    starts_at: datetime
    ends_at: datetime


@strawberry.type
class EventLocation:
    place: str
    address: str
    lat: Optional[float]
    lon: Optional[float]


@strawberry.type
class EventOrganizer:
    id: strawberry.ID
    name: str


@strawberry.type
class EventContact:
    name: Optional[str]
    email: Optional[str]
    phone: Optional[str]


@strawberry.type
class ExternalId:
    source: str
    id: str


@strawberry.type(description="A likely duplicate found on submit: same commune, overlapping time, similar title")
class DuplicateHint:
    id: strawberry.ID
    title: str
    starts_at: datetime
    commune: str


@strawberry.type(description="An agenda event (the published version for the public)")
class Event:
    id: strawberry.ID
    title: str
    description: str = strawberry.field(description="Markdown")
    description_html: str = strawberry.field(description="The Markdown rendered and sanitised")
    starts_at: datetime = strawberry.field(description="Start of the first occurrence (UTC)")
    ends_at: datetime = strawberry.field(description="End of the last occurrence (UTC)")
    all_day: bool
    rrule: Optional[str]
    slots: list[Occurrence]
    occurrences: list[Occurrence] = strawberry.field(description="Every occurrence, recurrences expanded (≤ 2 years)")
    commune: Commune
    location: EventLocation
    category: str = strawberry.field(description="category slug")
    category_name: str
    theme: Optional[str]
    tags: list[str]
    audience: Optional[str]
    free: bool
    price: Optional[str]
    registration_url: Optional[str]
    accessibility: list[AccessibilityCode]
    attendance_mode: AttendanceMode
    online_url: Optional[str]
    image_url: Optional[str]
    contact: Optional[EventContact]
    external_ids: list[ExternalId]
    publish_at: Optional[datetime]
    organizer: EventOrganizer
    moderation_state: ModerationState
    status: EventStatus
    schema_org_status: str = strawberry.field(description="schema.org eventStatus URL")
    rejection_reason: Optional[str]
    status_reason: Optional[str]
    removed: bool = strawberry.field(description="A tombstone (withdrawn), listed only with includeRemoved")
    created_at: datetime
    updated_at: datetime
    submitted_at: Optional[datetime]
    decided_at: Optional[datetime]
    url: str = strawberry.field(description="Public URL path")
    possible_duplicates: list[DuplicateHint]
    version: Optional[int] = strawberry.field(description=(
        "changes with every write (agents and the event's organisers): what moderateEvent names"))
    pending_revision: Optional["Event"] = strawberry.field(
        description="An organiser's edit of a published event, waiting for moderation (organiser and agents)")


def _occ(rows) -> list[Occurrence]:
    return [Occurrence(starts_at=r["starts_at"], ends_at=r["ends_at"]) for r in rows]


def to_event(v: dict) -> Event:
    loc = v["location"]
    contact = v.get("contact")
    return Event(
        id=v["id"], title=v["title"], description=v["description"], description_html=v["description_html"],
        starts_at=v["starts_at"], ends_at=v["ends_at"], all_day=v["all_day"], rrule=v.get("rrule"),
        slots=_occ(v["slots"]), occurrences=_occ(v["occurrences"]),
        commune=Commune(slug=loc["commune"], name=v["commune_name"]),
        location=EventLocation(place=loc.get("place") or "", address=loc.get("address") or "", lat=loc.get("lat"),
                               lon=loc.get("lon")),
        category=v["category"], category_name=v["category_name"], theme=v.get("theme"), tags=v["tags"],
        audience=v.get("audience"), free=v["free"], price=v.get("price"), registration_url=v.get("registration_url"),
        accessibility=[AccessibilityCode(a) for a in v["accessibility"]],
        attendance_mode=AttendanceMode(v["attendance_mode"]), online_url=v.get("online_url"),
        image_url=v.get("image_url"), contact=EventContact(**contact) if contact else None,
        external_ids=[ExternalId(**x) for x in v["external_ids"]], publish_at=v.get("publish_at"),
        organizer=EventOrganizer(id=v["organizer"], name=v["organizer_name"]),
        moderation_state=ModerationState(v["moderation_state"]), status=EventStatus(v["status"]),
        schema_org_status=agenda_public.SCHEMA_ORG_STATUS[v["status"]], rejection_reason=v.get("rejection_reason"),
        status_reason=v.get("status_reason"), removed=v["removed"], created_at=v["created_at"],
        updated_at=v["updated_at"], submitted_at=v.get("submitted_at"),
        decided_at=v.get("decided_at"), url=v["url"],
        possible_duplicates=[DuplicateHint(id=d["id"], title=d["title"], starts_at=d["starts_at"],
                                           commune=d["commune"]) for d in v.get("possible_duplicates") or []],
        version=v.get("version") or None,
        pending_revision=to_event(_view(v["pending_revision"])) if v.get("pending_revision") else None,
    )


def _view(raw: dict) -> dict:
    """A pending revision travels as a plain dict inside its event's view: read by the same contract, so that its
    times are datetimes as the event's are (`pendingRevision { startsAt }` failed on a string)."""
    from contracts.agenda import EventView

    return raw if isinstance(raw.get("starts_at"), datetime) else EventView.model_validate(raw).model_dump()


@strawberry.type
class EventEdge:
    cursor: str
    node: Event


@strawberry.type
class PageInfo:
    has_next_page: bool
    end_cursor: Optional[str]


@strawberry.type(description="A page of events (Relay connection)")
class EventConnection:
    edges: list[EventEdge]
    page_info: PageInfo
    total_count: int

    @strawberry.field(description="The events of this page, without edges")
    def nodes(self) -> list[Event]:
        return [e.node for e in self.edges]


@strawberry.type
class ModerationCounts:
    submitted: int
    revisions: int
    total: int


@strawberry.type(description="Submitted events and revisions, oldest first")
class ModerationQueue(EventConnection):
    counts: ModerationCounts


def to_connection(page: Page) -> EventConnection:
    return EventConnection(
        edges=[EventEdge(cursor=c, node=node) for c, node in zip(page.cursors, page.nodes)],
        page_info=PageInfo(has_next_page=page.has_next, end_cursor=page.end_cursor), total_count=page.total)


def page_of(reply: dict) -> Page:
    """A page of events the agenda service answered (agents' and organisers' lists)."""
    return Page(reply["items"], [to_event(v) for v in reply["items"]], reply["cursors"], reply["total"],
                reply["has_next"], reply.get("end_cursor"))


# -- inputs --------------------------------------------------------------------------------------
@strawberry.input(description="Naive date-times are Europe/Paris wall time")
class SlotInput:
    starts_at: datetime
    ends_at: datetime


@strawberry.input
class LocationInput:
    commune: str = strawberry.field(description="slug of one of the 36 communes")
    place: str = ""
    address: str = ""
    lat: Optional[float] = None
    lon: Optional[float] = None


@strawberry.input
class ContactInput:
    name: Optional[str] = None
    email: Optional[str] = None
    phone: Optional[str] = None


@strawberry.input
class ExternalIdInput:
    source: str
    id: str


@strawberry.input
class EventInput:
    title: str
    location: LocationInput
    category: str
    slots: list[SlotInput]
    description: str = strawberry.field(default="", description="Markdown (no HTML)")
    rrule: Optional[str] = strawberry.field(default=None, description="RFC 5545 RRULE, with COUNT or UNTIL (≤ 2 years)")
    all_day: bool = False
    theme: Optional[str] = None
    tags: list[str] = strawberry.field(default_factory=list)
    audience: Optional[str] = None
    free: bool = True
    price: Optional[str] = None
    registration_url: Optional[str] = None
    accessibility: list[AccessibilityCode] = strawberry.field(default_factory=list)
    attendance_mode: AttendanceMode = AttendanceMode.OFFLINE
    online_url: Optional[str] = None
    image_url: Optional[str] = None
    contact: Optional[ContactInput] = None
    external_ids: list[ExternalIdInput] = strawberry.field(default_factory=list)
    publish_at: Optional[datetime] = None


@strawberry.input
class EventFilter:
    communes: list[str] = strawberry.field(default_factory=list, description=(
        "communes, by slug or name (accents and capitals as you like: `Labège`, `labege`); an unknown one is "
        "refused with BAD_USER_INPUT naming it, never answered with an empty list"))
    categories: list[str] = strawberry.field(default_factory=list, description="category slugs or names; unknown: "
                                                                                 "BAD_USER_INPUT")
    themes: list[str] = strawberry.field(default_factory=list, description="theme slugs or names; unknown: "
                                                                             "BAD_USER_INPUT")
    from_: Optional[datetime] = strawberry.field(default=None, name="from", description=(
        "occurrences ending after this instant (ISO 8601; naive: Paris wall time; malformed: BAD_USER_INPUT)"))
    to: Optional[datetime] = strawberry.field(default=None, description="occurrences starting before this instant")
    text: Optional[str] = strawberry.field(default=None, description="accent- and case-insensitive")
    accessibility: list[AccessibilityCode] = strawberry.field(default_factory=list)
    free: Optional[bool] = None
    organizer: Optional[str] = None
    updated_since: Optional[datetime] = strawberry.field(default=None, description="delta sync: sorted by update")
    include_removed: bool = strawberry.field(default=False, description="also withdrawn events (tombstones)")
    moderation_states: list[ModerationState] = strawberry.field(default_factory=list, description="agents only")


def filter_dict(f: Optional[EventFilter]) -> dict:
    """The GraphQL filter as the agenda's contract names it (`from` and `to` bound the occurrences)."""
    if f is None:
        return {}
    d = plain(f)
    renamed = {"from_": "starts_after", "to": "starts_before"}
    return {renamed.get(k, k): v for k, v in d.items() if v != []}


def reads_public_copy(caller) -> bool:
    """Agents and organisers see more than the public (other states, pending revisions): the agenda answers them."""
    return caller.role not in ("agent", "organizer")


def public_connection(public, filter: Optional[EventFilter], first: int, after: Optional[str],
                      now: Optional[datetime] = None) -> EventConnection:
    """The public `events` page from the gateway's copy of the public agenda, when it is ready (the compiled path,
    gateway/compiled/events.py, answers only then), with the request read by the agenda's contract."""
    f = public.read_filter(filter_dict(filter), first, after)
    return to_connection(public.search(f, first, after, now or datetime.now(timezone.utc)))


@strawberry.type
class AgendaQuery:
    @strawberry.field(description="The member communes, by name")
    async def communes(self, info: Info) -> list[Commune]:
        return [Commune(**c) for c in await info.context["call"]("agenda", "list_communes")]

    @strawberry.field(description="Organisations, optionally of one kind")
    async def organizations(self, info: Info, kind: Optional[OrganizationKind] = None) -> list[Organization]:
        rows = await info.context["call"]("agenda", "list_organizations", kind=kind.value if kind else None)
        return [Organization(id=r["id"], slug=r["slug"], name=r["name"], kind=OrganizationKind(r["kind"]),
                             commune=r.get("commune")) for r in rows]

    @strawberry.field(description="Event categories")
    async def categories(self, info: Info) -> list[Category]:
        return [Category(**c) for c in await info.context["call"]("agenda", "list_categories")]

    @strawberry.field(description="Themes: the authority's competences")
    async def themes(self, info: Info) -> list[Theme]:
        return [Theme(**c) for c in await info.context["call"]("agenda", "list_themes")]

    @strawberry.field(description="Published events (agents may filter on moderation states), by start; with "
                                  "updatedSince, by update time for delta sync")
    async def events(self, info: Info, filter: Optional[EventFilter] = None, first: int = 20,
                     after: Optional[str] = None) -> EventConnection:
        if reads_public_copy(info.context["caller"]):
            return to_connection(await info.context["public_agenda"].page(filter_dict(filter), first, after))
        page = await info.context["call"]("agenda", "search_events", filter=filter_dict(filter), first=first,
                                          after=after)
        return to_connection(page_of(page))

    @strawberry.field(description="One event, if the caller may see it")
    async def event(self, info: Info, id: strawberry.ID) -> Optional[Event]:
        from contracts.errors import NotFound

        try:
            return to_event(await info.context["call"]("agenda", "get_event", id=str(id)))
        except NotFound:
            return None

    @strawberry.field(permission_classes=[IsOrganizerOrAgent], description="The caller's organisation's events")
    async def my_events(self, info: Info, first: int = 50, after: Optional[str] = None,
                        moderation_states: Optional[list[ModerationState]] = None) -> EventConnection:
        page = await info.context["call"]("agenda", "my_events", first=first, after=after,
                                          moderation_states=[s.value for s in moderation_states or []])
        return to_connection(page_of(page))

    @strawberry.field(permission_classes=[IsAgent], description="Events and revisions to moderate, oldest first")
    async def moderation_queue(self, info: Info, first: int = 50, after: Optional[str] = None) -> ModerationQueue:
        page = await info.context["call"]("agenda", "moderation_queue", first=first, after=after)
        conn = to_connection(page_of(page))
        return ModerationQueue(edges=conn.edges, page_info=conn.page_info, total_count=conn.total_count,
                               counts=ModerationCounts(**page["counts"]))


async def _changed(info: Info, event: Event) -> Event:
    """After a write, this gateway's copy of the public agenda catches up before the reply."""
    public = info.context.get("public_agenda")
    if public is not None:
        await public.changed()
    return event


@strawberry.type
class AgendaMutation:
    @strawberry.mutation(permission_classes=[IsOrganizerOrAgent], description="Draft an event")
    async def create_event(self, info: Info, event: EventInput, organizer: Optional[str] = None) -> Event:
        return to_event(await info.context["call"]("agenda", "create_event", event=plain(event), organizer=organizer))

    @strawberry.mutation(permission_classes=[IsOrganizerOrAgent],
                         description="Edit; an organiser's edit of a published event becomes a pending revision")
    async def update_event(self, info: Info, id: strawberry.ID, event: EventInput) -> Event:
        view = await info.context["call"]("agenda", "update_event", id=str(id), event=plain(event))
        return await _changed(info, to_event(view))

    @strawberry.mutation(permission_classes=[IsOrganizerOrAgent],
                         description="Submit for moderation; possibleDuplicates warns of likely duplicates")
    async def submit_event(self, info: Info, id: strawberry.ID) -> Event:
        return to_event(await info.context["call"]("agenda", "submit_event", id=str(id)))

    @strawberry.mutation(permission_classes=[IsAgent], description=(
        "Approve or reject (with a reason) the version of the event the agent reviewed (Event.version): "
        "an event changed since is refused with CONFLICT"))
    async def moderate_event(self, info: Info, id: strawberry.ID, version: int, decision: ModerationDecision,
                             reason: Optional[str] = None) -> Event:
        view = await info.context["call"]("agenda", "moderate_event", id=str(id), version=version,
                                          decision=decision.value, reason=reason)
        return await _changed(info, to_event(view))

    @strawberry.mutation(permission_classes=[IsOrganizerOrAgent], description="Withdraw (a tombstone remains)")
    async def withdraw_event(self, info: Info, id: strawberry.ID, reason: Optional[str] = None) -> Event:
        view = await info.context["call"]("agenda", "withdraw_event", id=str(id), reason=reason)
        return await _changed(info, to_event(view))

    @strawberry.mutation(permission_classes=[IsOrganizerOrAgent],
                         description="Scheduled, rescheduled (with new slots), moved online, postponed, full, cancelled")
    async def set_event_status(self, info: Info, id: strawberry.ID, status: EventStatus,
                               slots: Optional[list[SlotInput]] = None, reason: Optional[str] = None) -> Event:
        view = await info.context["call"]("agenda", "set_event_status", id=str(id), status=status.value,
                                          slots=plain(slots) if slots else None, reason=reason)
        return await _changed(info, to_event(view))


@strawberry.type
class AgendaSubscription:
    pass
