"""Satisfaction service contracts: sites, kiosks, votes, results and the alerts it announces.

Happy Index (0-100): the mean of the ratings mapped linearly onto 100 ... 0.
A scale of `n` levels (n = 4 or 5) has ratings 1 (best: "très satisfait") ... n (worst); rating r maps to
100 * (n - r) / (n - 1): for 4 levels 100, 66.7, 33.3, 0; for 5 levels 100, 75, 50, 25, 0.
Index = sum(count_r * value_r) / sum(count_r); undefined (null) without votes.
"Negative" votes are the lower half of the scale: ratings 3 and 4 of 4; ratings 4 and 5 of 5.
"""
from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import Field

from contracts.base import Empty, EventContract, Model, RpcContract
from contracts.platform import declare_ping

SERVICE = "satisfaction"


class AlertRule(Model):
    """The rule that fired: share of negative votes >= threshold over `window_minutes` with >= `min_votes`,
    or (kind "index") a Happy Index below `index_below` over the window."""

    kind: Literal["negative_share", "index"] = "negative_share"
    window_minutes: int
    threshold_percent: float | None = None
    min_votes: int
    index_below: float | None = None


class AlertCounts(Model):
    votes: int
    negative: int
    negative_percent: float
    happy_index: float | None = None


class AlertRaised(EventContract):
    event_type = "satisfaction.alert_raised"
    summary = ("Satisfaction fell below a site's alert rule, site-wide or at one of its kiosks (kiosk_id set); "
               "raised once per episode; tell the site's managers")
    alert_id: str
    site_id: str
    site_name: str
    commune: str = Field(description="slug of the site's commune")
    kiosk_id: str | None = Field(default=None, description="set when the alert is a kiosk's (the site's rule over that kiosk's votes alone), "
                                                "else site-wide")
    kiosk_name: str | None = None
    rule: AlertRule
    counts: AlertCounts
    window_start: datetime
    window_end: datetime
    raised_at: datetime


class AlertResolved(EventContract):
    event_type = "satisfaction.alert_resolved"
    summary = "A satisfaction alert episode is over (the rule no longer holds)"
    alert_id: str
    site_id: str
    site_name: str
    commune: str
    kiosk_id: str | None = None
    kiosk_name: str | None = None
    rule: AlertRule
    counts: AlertCounts
    raised_at: datetime
    resolved_at: datetime


class KioskOffline(EventContract):
    event_type = "satisfaction.kiosk_offline"
    summary = "A kiosk has been silent for 15 minutes (or more) during its opening hours"
    kiosk_id: str
    kiosk_name: str
    site_id: str
    site_name: str
    commune: str
    last_seen_at: datetime | None = Field(default=None, description="last heartbeat or vote received, UTC")
    silent_minutes: int
    detected_at: datetime


class KioskOnline(EventContract):
    event_type = "satisfaction.kiosk_online"
    summary = "A kiosk reported offline is back (heartbeat or votes received)"
    kiosk_id: str
    kiosk_name: str
    site_id: str
    site_name: str
    commune: str
    offline_since: datetime | None = None
    back_at: datetime


# -- sites and kiosks ------------------------------------------------------------------------------
Id = Field(pattern=r"^[A-Za-z0-9_-]{1,80}$")
SlugField = Field(pattern=r"^[a-z0-9]+(?:-[a-z0-9]+)*$", max_length=80)
HHMM = Field(pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9]$")


class OpeningHours(Model):
    """Opening hours in Europe/Paris local time; weekday 0 = Monday."""

    weekday: int = Field(ge=0, le=6)
    opens: str = HHMM
    closes: str = HHMM


class FollowUp(Model):
    question: str = Field(min_length=1, max_length=200)
    choices: list[str] = Field(min_length=1, max_length=8)


class AlertSettings(Model):
    threshold_percent: float = Field(default=50.0, gt=0, le=100)
    window_minutes: int = Field(default=15, ge=1, le=24 * 60)
    min_votes: int = Field(default=4, ge=1, le=10000)
    index_below: float | None = Field(default=None, ge=0, le=100)


class SiteInput(Model):
    id: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_-]{1,80}$")
    name: str = Field(min_length=1, max_length=200)
    commune: str = SlugField
    competence: str = Field(min_length=1, max_length=120, description="the authority's competence it serves")
    alerts: AlertSettings = Field(default_factory=AlertSettings)


class Site(Model):
    id: str
    name: str
    commune: str
    competence: str
    alerts: AlertSettings
    open_alert_id: str | None = None


class KioskSettings(Model):
    name: str = Field(min_length=1, max_length=200)
    question: str = Field(default="Êtes-vous satisfait de votre visite ?", min_length=1, max_length=300)
    scale: Literal[4, 5] = 4
    follow_up: FollowUp | None = None
    comments: bool = False
    opening_hours: list[OpeningHours] = Field(default_factory=list, max_length=21)
    repeat_seconds: int = Field(default=3, ge=0, le=600, description="presses closer than this count as one")


class RegisterKiosk(KioskSettings):
    id: str = Id
    site_id: str = Id
    token_id: str = Field(min_length=8, max_length=64, description="jti of the kiosk token the gateway issued")


class UpdateKiosk(Model):
    id: str = Id
    name: str | None = Field(default=None, min_length=1, max_length=200)
    question: str | None = Field(default=None, min_length=1, max_length=300)
    scale: Literal[4, 5] | None = None
    follow_up: FollowUp | None = None
    clear_follow_up: bool = False
    comments: bool | None = None
    opening_hours: list[OpeningHours] | None = None
    repeat_seconds: int | None = Field(default=None, ge=0, le=600)


class RotateKioskToken(Model):
    id: str = Id
    token_id: str = Field(min_length=8, max_length=64)


class KioskRef(Model):
    id: str = Id


class Kiosk(KioskSettings):
    id: str
    site_id: str
    site_name: str
    revoked: bool = False
    last_seen_at: datetime | None = None
    offline: bool = False
    battery: float | None = None
    queue_length: int | None = None
    app_version: str | None = None


class ListKiosks(Model):
    site_id: str | None = None


# -- votes ------------------------------------------------------------------------------------------
MAX_BATCH = 500


class VoteIn(Model):
    id: str = Field(max_length=64, description="UUID made by the kiosk")
    rating: int = Field(description="1 = très satisfait ... 4 (or 5) = très insatisfait")
    pressed_at: datetime = Field(description="device clock")
    follow_up: str | None = Field(default=None, max_length=200)
    comment: str | None = Field(default=None, max_length=2000)


class SubmitVotes(Model):
    votes: list[VoteIn] = Field(min_length=1, max_length=MAX_BATCH)


class Rejected(Model):
    id: str
    reason: str


class SubmitReport(Model):
    accepted: list[str]
    duplicates: list[str]
    rejected: list[Rejected]


class Heartbeat(Model):
    battery: float | None = Field(default=None, ge=0, le=100)
    queue_length: int | None = Field(default=None, ge=0)
    app_version: str | None = Field(default=None, max_length=40)


class KioskConfig(Model):
    """What a kiosk needs to show: its own settings (the heartbeat's answer)."""

    id: str
    name: str
    site_name: str
    question: str
    scale: Literal[4, 5]
    follow_up: FollowUp | None = None
    comments: bool = False
    server_time: datetime


# -- results ----------------------------------------------------------------------------------------
class SeriesQuery(Model):
    site_id: str | None = None
    kiosk_id: str | None = None
    start: datetime
    end: datetime
    granularity: Literal["hour", "day", "week"] = "day"


class Point(Model):
    start: datetime
    counts: list[int] = Field(description="votes per rating, index 0 = rating 1 (très satisfait)")
    total: int
    negative: int
    happy_index: float | None = None


class Series(Model):
    points: list[Point]
    total: Point
    profile: list[Point] = Field(description="time-of-day profile: one point per local hour 0-23 with votes")


class CompareQuery(Model):
    start: datetime
    end: datetime


class SiteFigures(Model):
    site_id: str
    site_name: str
    commune: str
    total: int
    negative: int
    happy_index: float | None = None


class ListAlerts(Model):
    site_id: str | None = None
    open_only: bool = False


class Alert(Model):
    id: str
    site_id: str
    site_name: str
    kiosk_id: str | None = None
    rule: AlertRule
    counts: AlertCounts
    raised_at: datetime
    resolved_at: datetime | None = None


class RecountKiosk(Model):
    """Replay the kiosk's current repeated-press rule over its votes pressed in [start, end) (31 days at most)."""

    kiosk_id: str = Id
    start: datetime
    end: datetime


class RecountReport(Model):
    examined: int = Field(description="votes of the kiosk pressed in the period")
    flagged: int = Field(description="votes now flagged as repeated presses (no longer counted)")
    unflagged: int = Field(description="votes no longer flagged (counted again)")


class SiteSummary(Model):
    """The live figures of a site: today (Europe/Paris) and the current alert window."""

    site_id: str
    total_today: int
    negative_today: int
    happy_index_today: float | None = None
    counts_today: list[int]
    open_alert_id: str | None = None
    updated_at: datetime | None = None


class SiteRef(Model):
    site_id: str = Id


PING = declare_ping(SERVICE)
UPSERT_SITE = RpcContract(SERVICE, "upsert_site", SiteInput, Site, "Create or update a site (agent)")
LIST_SITES = RpcContract(SERVICE, "list_sites", Empty, list[Site], "Sites, by name")
REGISTER_KIOSK = RpcContract(SERVICE, "register_kiosk", RegisterKiosk, Kiosk,
                             "Register a kiosk with the id and token id the gateway made (agent)")
UPDATE_KIOSK = RpcContract(SERVICE, "update_kiosk", UpdateKiosk, Kiosk, "Change a kiosk's settings (agent)")
ROTATE_KIOSK_TOKEN = RpcContract(SERVICE, "rotate_kiosk_token", RotateKioskToken, Kiosk,
                                 "Replace a kiosk's token: the previous one stops working (agent)")
REVOKE_KIOSK = RpcContract(SERVICE, "revoke_kiosk", KioskRef, Kiosk, "Revoke a kiosk: its token stops working (agent)")
LIST_KIOSKS = RpcContract(SERVICE, "list_kiosks", ListKiosks, list[Kiosk], "Kiosks, optionally of one site")
SUBMIT_VOTES = RpcContract(SERVICE, "submit_votes", SubmitVotes, SubmitReport,
                           "Store a kiosk's votes exactly once (kiosk token); accepted = durable")
HEARTBEAT = RpcContract(SERVICE, "heartbeat", Heartbeat, KioskConfig, "A kiosk says it is alive (kiosk token)")
SATISFACTION = RpcContract(SERVICE, "satisfaction", SeriesQuery, Series, "Counts and Happy Index over time")
COMPARE_SITES = RpcContract(SERVICE, "compare_sites", CompareQuery, list[SiteFigures], "Sites side by side")
LIST_ALERTS = RpcContract(SERVICE, "list_alerts", ListAlerts, list[Alert], "Alerts, newest first")
RECOUNT_KIOSK = RpcContract(SERVICE, "recount_kiosk", RecountKiosk, RecountReport,
                            "Replay a kiosk's repeated-press rule over a period and correct its counters (agent)")
SITE_SUMMARY = RpcContract(SERVICE, "site_summary", SiteRef, SiteSummary, "Live figures of one site")
