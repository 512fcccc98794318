"""Agenda service contracts: reference data, the event model, its moderation and the events on the bus."""
from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import Field

from contracts.base import Empty, EventContract, Model, RpcContract
from contracts.platform import declare_ping

SERVICE = "agenda"
Slug = Field(pattern=r"^[a-z0-9]+(?:-[a-z0-9]+)*$", max_length=80)


class Commune(Model):
    slug: str = Slug
    name: str = Field(min_length=1, max_length=120)


class Organization(Model):
    id: str = Field(min_length=1, max_length=80)
    slug: str = Slug
    name: str = Field(min_length=1, max_length=200)
    kind: Literal["commune", "association", "authority"]
    commune: str | None = Field(default=None, description="slug of the commune it belongs to")
    contact_email: str | None = Field(default=None, max_length=254)


class Category(Model):
    slug: str = Slug
    name: str = Field(min_length=1, max_length=120)


class Theme(Model):
    slug: str = Slug
    name: str = Field(min_length=1, max_length=120)


class ReferenceData(Model):
    communes: list[Commune]
    organizations: list[Organization]
    categories: list[Category]
    themes: list[Theme]


class ImportReport(Model):
    communes: int
    organizations_created: int
    organizations_updated: int
    organizations_unchanged: int
    categories: int
    themes: int


class ListOrganizations(Model):
    kind: Literal["commune", "association", "authority"] | None = None


class OrganizationUpserted(EventContract):
    event_type = "agenda.organization_upserted"
    summary = "An organisation (commune, association) was registered or its details changed"
    id: str
    slug: str
    name: str
    kind: Literal["commune", "association", "authority"]
    commune: str | None = None
    contact_email: str | None = None


PING = declare_ping(SERVICE)
IMPORT_REFERENCE_DATA = RpcContract(SERVICE, "import_reference_data", ReferenceData, ImportReport,
                                    "Upsert communes, organisations, categories and themes (idempotent)")
LIST_COMMUNES = RpcContract(SERVICE, "list_communes", Empty, list[Commune], "The member communes, by name")
LIST_ORGANIZATIONS = RpcContract(SERVICE, "list_organizations", ListOrganizations, list[Organization],
                                 "Organisations that may propose events")
LIST_CATEGORIES = RpcContract(SERVICE, "list_categories", Empty, list[Category], "Event categories")
LIST_THEMES = RpcContract(SERVICE, "list_themes", Empty, list[Theme], "The authority's competences, used as themes")


# --------------------------------------------------------------------------------------------------
# Events of the agenda (moderation and status transitions). The notification service consumes them.

ModerationState = Literal["draft", "submitted", "published", "rejected", "withdrawn"]
EventStatus = Literal["scheduled", "rescheduled", "moved_online", "postponed", "full", "cancelled"]


class AgendaEventFacts(EventContract):
    """Fields every agenda transition carries (base, not an event itself)."""

    id: str = Field(description="the agenda event id")
    title: str
    organizer: str = Field(description="organisation id of the organiser")
    commune: str = Field(description="commune slug")
    category: str = Field(description="category slug")
    starts_at: datetime = Field(description="start of the first occurrence, UTC")
    ends_at: datetime = Field(description="end of the first occurrence, UTC")
    moderation_state: ModerationState
    status: EventStatus = "scheduled"
    actor: str | None = Field(default=None, description="subject of who made the transition")


class EventSubmitted(AgendaEventFacts):
    event_type = "agenda.event_submitted"
    summary = "An organiser submitted an event (or a revision of a published one) for moderation"
    revision: bool = Field(default=False, description="true when it is a pending revision of a published event")
    duplicates: list[str] = Field(default_factory=list, description="ids of likely duplicates found on submit")


class EventPublished(AgendaEventFacts):
    event_type = "agenda.event_published"
    summary = ("An event (or a revision of it) is public: at its approval, or at its publishAt when that is later "
               "(announced then, never before)")
    url: str | None = Field(default=None, description="public URL path of the event, e.g. /agenda/events/<id>")
    revision: bool = False
    publish_at: datetime | None = Field(default=None, description="unused since scheduled publications are announced "
                                                                   "when they go public; kept for compatibility")


class EventRejected(AgendaEventFacts):
    event_type = "agenda.event_rejected"
    summary = "An agent rejected a submitted event (or a revision), with a reason for the organiser"
    reason: str
    revision: bool = False


class EventUpdated(AgendaEventFacts):
    event_type = "agenda.event_updated"
    summary = "An event changed (details, or its status other than cancelled)"
    changed: list[str] = Field(default_factory=list, description="names of the fields that changed")


class EventCancelled(AgendaEventFacts):
    event_type = "agenda.event_cancelled"
    summary = "A published event was cancelled (status cancelled); it stays listed as cancelled"
    reason: str | None = None


class EventWithdrawn(AgendaEventFacts):
    event_type = "agenda.event_withdrawn"
    summary = "The organiser or an agent withdrew an event: it is no longer listed (tombstone for sync)"


# --------------------------------------------------------------------------------------------------
# Event model and RPC payloads.

Accessibility = Literal["hearing", "visual", "psychic", "motor", "intellectual"]
AttendanceMode = Literal["offline", "online", "mixed"]
Decision = Literal["approve", "reject"]


class Slot(Model):
    starts_at: datetime = Field(description="Europe/Paris wall time when naive; stored as UTC")
    ends_at: datetime


class Location(Model):
    place: str = Field(default="", max_length=200)
    address: str = Field(default="", max_length=300)
    commune: str = Field(description="slug of one of the member communes", max_length=80)
    lat: float | None = Field(default=None, ge=-90, le=90)
    lon: float | None = Field(default=None, ge=-180, le=180)


class Contact(Model):
    name: str | None = Field(default=None, max_length=200)
    email: str | None = Field(default=None, max_length=254)
    phone: str | None = Field(default=None, max_length=40)


class ExternalId(Model):
    source: str = Field(min_length=1, max_length=60)
    id: str = Field(min_length=1, max_length=200)


class EventInput(Model):
    """What an organiser writes; validated in services/agenda/domain.py (BAD_USER_INPUT naming the field)."""

    title: str = Field(max_length=500)
    description: str = Field(default="", max_length=50_000)
    slots: list[Slot] = Field(default_factory=list, max_length=100)
    rrule: str | None = Field(default=None, max_length=500)
    all_day: bool = False
    location: Location
    category: str = Field(max_length=80)
    theme: str | None = Field(default=None, max_length=80)
    tags: list[str] = Field(default_factory=list, max_length=20)
    audience: str | None = Field(default=None, max_length=200)
    free: bool = True
    price: str | None = Field(default=None, max_length=200)
    registration_url: str | None = Field(default=None, max_length=2000)
    accessibility: list[Accessibility] = Field(default_factory=list)
    attendance_mode: AttendanceMode = "offline"
    online_url: str | None = Field(default=None, max_length=2000)
    image_url: str | None = Field(default=None, max_length=2000)
    contact: Contact | None = None
    external_ids: list[ExternalId] = Field(default_factory=list, max_length=20)
    publish_at: datetime | None = None


class CreateEvent(Model):
    event: EventInput
    organizer: str | None = Field(default=None, description="organisation id; an organiser's own is used")


class UpdateEvent(Model):
    id: str
    event: EventInput


class EventRef(Model):
    id: str


class ModerateEvent(Model):
    id: str
    version: int = Field(ge=1, description="the version the agent reviewed (EventView.version): a decision on an "
                                           "event changed since is refused (CONFLICT)")
    decision: Decision
    reason: str | None = Field(default=None, max_length=2000)


class WithdrawEvent(Model):
    id: str
    reason: str | None = Field(default=None, max_length=2000)


class SetEventStatus(Model):
    id: str
    status: EventStatus
    slots: list[Slot] | None = Field(default=None, description="new time slots when rescheduled")
    reason: str | None = Field(default=None, max_length=2000)


class EventFilter(Model):
    communes: list[str] = Field(default_factory=list, max_length=36)
    categories: list[str] = Field(default_factory=list, max_length=50)
    themes: list[str] = Field(default_factory=list, max_length=50)
    starts_after: datetime | None = Field(default=None, description="occurrences ending after this instant")
    starts_before: datetime | None = Field(default=None, description="occurrences starting before this instant")
    text: str | None = Field(default=None, max_length=200)
    accessibility: list[Accessibility] = Field(default_factory=list)
    free: bool | None = None
    organizer: str | None = Field(default=None, max_length=80)
    updated_since: datetime | None = None
    include_removed: bool = False
    moderation_states: list[ModerationState] = Field(default_factory=list,
                                                     description="agents only; the public sees published events")


class SearchEvents(Model):
    filter: EventFilter = Field(default_factory=EventFilter)
    first: int = Field(default=20, ge=1, le=500)
    after: str | None = Field(default=None, max_length=100)


class MyEvents(Model):
    first: int = Field(default=50, ge=1, le=500)
    after: str | None = Field(default=None, max_length=100)
    moderation_states: list[ModerationState] = Field(default_factory=list)


class ModerationQueueRequest(Model):
    first: int = Field(default=50, ge=1, le=500)
    after: str | None = Field(default=None, max_length=100)


class Occurrence(Model):
    starts_at: datetime
    ends_at: datetime


class DuplicateHint(Model):
    id: str
    title: str
    starts_at: datetime
    commune: str


class EventView(Model):
    """An event as a caller may see it (the published version for the public)."""

    id: str
    title: str
    description: str
    description_html: str
    slots: list[Occurrence]
    rrule: str | None = None
    all_day: bool = False
    occurrences: list[Occurrence]
    starts_at: datetime
    ends_at: datetime
    location: Location
    commune_name: str
    category: str
    category_name: str
    theme: str | None = None
    tags: list[str] = []
    audience: str | None = None
    free: bool = True
    price: str | None = None
    registration_url: str | None = None
    accessibility: list[Accessibility] = []
    attendance_mode: AttendanceMode = "offline"
    online_url: str | None = None
    image_url: str | None = None
    contact: Contact | None = None
    external_ids: list[ExternalId] = []
    publish_at: datetime | None = None
    organizer: str
    organizer_name: str
    moderation_state: ModerationState
    status: EventStatus
    rejection_reason: str | None = None
    status_reason: str | None = None
    removed: bool = False
    created_at: datetime
    updated_at: datetime
    submitted_at: datetime | None = None
    decided_at: datetime | None = None
    url: str
    possible_duplicates: list[DuplicateHint] = []
    pending_revision: dict | None = Field(default=None, description="an EventView of the pending revision")
    version: int = Field(default=0, description="changes with every write; what a moderation decision names")


class EventPage(Model):
    items: list[EventView]
    cursors: list[str] = Field(default_factory=list, description="opaque Relay cursor of each item")
    total: int
    end_cursor: str | None = None
    has_next: bool = False


class QueueCounts(Model):
    submitted: int
    revisions: int
    total: int


class ModerationQueuePage(EventPage):
    counts: QueueCounts


CREATE_EVENT = RpcContract(SERVICE, "create_event", CreateEvent, EventView, "An organiser or agent drafts an event")
UPDATE_EVENT = RpcContract(SERVICE, "update_event", UpdateEvent, EventView,
                           "Edit an event; an organiser's edit of a published event becomes a pending revision")
SUBMIT_EVENT = RpcContract(SERVICE, "submit_event", EventRef, EventView, "Submit a draft for moderation")
MODERATE_EVENT = RpcContract(SERVICE, "moderate_event", ModerateEvent, EventView, "An agent approves or rejects")
WITHDRAW_EVENT = RpcContract(SERVICE, "withdraw_event", WithdrawEvent, EventView, "Withdraw an event (tombstone)")
SET_EVENT_STATUS = RpcContract(SERVICE, "set_event_status", SetEventStatus, EventView,
                               "Scheduled, rescheduled, moved online, postponed, full, cancelled")
GET_EVENT = RpcContract(SERVICE, "get_event", EventRef, EventView, "One event, as the caller may see it")


class PublicFeedRequest(Model):
    """Changes of the public read model after a cursor (updated_at, id), oldest first."""

    after_ts: float = Field(default=0.0, ge=0, description="updated_at (epoch seconds) of the last item seen")
    after_id: str = Field(default="", max_length=80)
    first: int = Field(default=500, ge=1, le=2000)


class PublicFeedItem(Model):
    view: EventView = Field(description="the public view (no pending revision)")
    visible_from: datetime | None = Field(default=None, description="published, or publishAt when later")
    price_kind: str | None = None
    search: str = Field(default="", description="the normalised text the public search matches")
    updated_ts: float


class PublicFeed(Model):
    items: list[PublicFeedItem]
    complete: bool = Field(description="no more items after these")


SEARCH_EVENTS = RpcContract(SERVICE, "search_events", SearchEvents, EventPage,
                            "Published events by commune, category, theme, dates, text; delta sync with tombstones")
PUBLIC_FEED = RpcContract(SERVICE, "public_feed", PublicFeedRequest, PublicFeed,
                          "The public read model's changes after a cursor: how the gateway keeps its copy")
MY_EVENTS = RpcContract(SERVICE, "my_events", MyEvents, EventPage, "The caller's organisation's events")
MODERATION_QUEUE = RpcContract(SERVICE, "moderation_queue", ModerationQueueRequest, ModerationQueuePage,
                               "Submitted events and revisions, oldest first, with counts")
