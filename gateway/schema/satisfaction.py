"""Satisfaction GraphQL: sites and kiosks (agents), vote ingest and heartbeats (kiosk tokens), results,
alerts, and the live `satisfactionUpdates` subscription.

Happy Index: mean of the counted votes' values, rating r of an n-level scale being worth
100 * (n - r) / (n - 1) (4 levels: 100, 66.7, 33.3, 0; 5 levels: 100, 75, 50, 25, 0).
"""
from __future__ import annotations

import asyncio
import time
import enum
import uuid
from datetime import datetime
from typing import Annotated, AsyncGenerator, Optional

import strawberry
from strawberry.types import Info

from contracts.errors import BadInput, Forbidden, Unauthenticated
from gateway import auth
from gateway.schema.convert import plain
from gateway.schema.permissions import HasRole, IsAgent, IsAgentOrOperator

UPDATES_POLL_SECONDS = 1.0


class IsKiosk(HasRole):
    roles = frozenset({"kiosk"})


@strawberry.type(description="When and how alerts are raised for a site")
class AlertSettings:
    threshold_percent: float = strawberry.field(description="negative share (%) that raises an alert")
    window_minutes: int
    min_votes: int
    index_below: Optional[float] = strawberry.field(description="also raise when the Happy Index falls below this")


@strawberry.input
class AlertSettingsInput:
    threshold_percent: float = 50.0
    window_minutes: int = 15
    min_votes: int = 4
    index_below: Optional[float] = None


@strawberry.type(description="A public place with satisfaction kiosks")
class Site:
    id: strawberry.ID
    name: str
    commune: str = strawberry.field(description="slug of its commune")
    competence: str = strawberry.field(description="the authority's competence it serves")
    alerts: AlertSettings
    open_alert_id: Optional[str]


@strawberry.input
class SiteInput:
    id: Optional[strawberry.ID] = None
    name: str
    commune: str
    competence: str
    alerts: Optional[AlertSettingsInput] = None


@strawberry.type
class OpeningHours:
    weekday: int = strawberry.field(description="0 = Monday")
    opens: str = strawberry.field(description="HH:MM, Europe/Paris")
    closes: str


@strawberry.input
class OpeningHoursInput:
    weekday: int
    opens: str
    closes: str


@strawberry.type(description="Question shown after a negative vote")
class FollowUp:
    question: str
    choices: list[str]


@strawberry.input
class FollowUpInput:
    question: str
    choices: list[str]


@strawberry.type(description="A satisfaction kiosk")
class Kiosk:
    id: strawberry.ID
    site_id: strawberry.ID
    site_name: str
    name: str
    question: str
    scale: int = strawberry.field(description="4 or 5 levels; rating 1 = très satisfait")
    follow_up: Optional[FollowUp]
    comments: bool
    opening_hours: list[OpeningHours]
    repeat_seconds: int
    revoked: bool
    offline: bool
    last_seen_at: Optional[datetime]
    battery: Optional[float]
    queue_length: Optional[int]
    app_version: Optional[str]


@strawberry.input
class KioskInput:
    site_id: strawberry.ID
    name: str
    question: Optional[str] = None
    scale: int = 4
    follow_up: Optional[FollowUpInput] = None
    comments: bool = False
    opening_hours: Optional[list[OpeningHoursInput]] = None
    repeat_seconds: int = 3


@strawberry.input
class KioskUpdateInput:
    name: Optional[str] = None
    question: Optional[str] = None
    scale: Optional[int] = None
    follow_up: Optional[FollowUpInput] = None
    clear_follow_up: bool = False
    comments: Optional[bool] = None
    opening_hours: Optional[list[OpeningHoursInput]] = None
    repeat_seconds: Optional[int] = None


@strawberry.type(description="A kiosk and its token; the provisioning URL opens /kiosk already set up")
class KioskCredentials:
    kiosk: Kiosk
    token: str
    provisioning_url: str


@strawberry.input(description="One press on a kiosk")
class KioskVoteInput:
    id: strawberry.ID = strawberry.field(description="UUID made by the kiosk: resending it never counts twice")
    rating: int = strawberry.field(description="1 = très satisfait ... 4 (or 5) = très insatisfait")
    pressed_at: datetime = strawberry.field(description="device clock; not in the future nor older than 30 days")
    follow_up: Optional[str] = None
    comment: Optional[str] = None


@strawberry.type
class RejectedVote:
    id: strawberry.ID
    reason: str


@strawberry.type(description="Per vote id: stored now, already stored, or refused")
class VoteSubmitReport:
    accepted: list[strawberry.ID]
    duplicates: list[strawberry.ID]
    rejected: list[RejectedVote]


@strawberry.type(description="A kiosk's own settings, returned to its heartbeat")
class KioskConfig:
    id: strawberry.ID
    name: str
    site_name: str
    question: str
    scale: int
    follow_up: Optional[FollowUp]
    comments: bool
    server_time: datetime


@strawberry.enum
class Granularity(enum.Enum):
    HOUR = "hour"
    DAY = "day"
    WEEK = "week"


@strawberry.type(description="Votes and Happy Index over one period")
class SatisfactionPoint:
    start: datetime
    counts: list[int] = strawberry.field(description="votes per rating, first = rating 1 (très satisfait)")
    total: int
    negative: int
    happy_index: Optional[float] = strawberry.field(description=(
        "Happy Index 0-100, null without votes: the mean of the counted votes' values, rating r of an n-level "
        "scale being worth 100*(n-r)/(n-1) (4 levels: 100, 66.7, 33.3, 0; 5 levels: 100, 75, 50, 25, 0)"))


@strawberry.type
class SatisfactionSeries:
    points: list[SatisfactionPoint]
    total: SatisfactionPoint
    profile: list[SatisfactionPoint] = strawberry.field(
        description="time-of-day profile: one point per local hour with votes (its start carries the hour)")


@strawberry.type
class SiteComparison:
    site_id: strawberry.ID
    site_name: str
    commune: str
    total: int
    negative: int
    happy_index: Optional[float]


@strawberry.type
class AlertRule:
    kind: str
    window_minutes: int
    threshold_percent: Optional[float]
    min_votes: int
    index_below: Optional[float]


@strawberry.type
class AlertCounts:
    votes: int
    negative: int
    negative_percent: float
    happy_index: Optional[float]


@strawberry.type(description="What a recount changed")
class KioskRecount:
    examined: int = strawberry.field(description="votes of the kiosk pressed in the period")
    flagged: int = strawberry.field(description="votes now flagged as repeated presses (no longer counted)")
    unflagged: int = strawberry.field(description="votes no longer flagged (counted again)")


@strawberry.type(description="A satisfaction alert episode, site-wide or of one kiosk (kioskId set)")
class SatisfactionAlert:
    id: strawberry.ID
    site_id: strawberry.ID
    site_name: str
    kiosk_id: Optional[strawberry.ID] = strawberry.field(
        description="the kiosk whose own votes broke the site's rule; null for a site-wide alert")
    rule: AlertRule
    counts: AlertCounts
    raised_at: datetime
    resolved_at: Optional[datetime]


@strawberry.type(description="Live figures of a site (today, Europe/Paris)")
class SatisfactionUpdate:
    site_id: strawberry.ID
    total_today: int
    negative_today: int
    happy_index_today: Optional[float]
    counts_today: list[int]
    open_alert_id: Optional[str]
    updated_at: Optional[datetime]


def _site(r: dict) -> Site:
    return Site(id=r["id"], name=r["name"], commune=r["commune"], competence=r["competence"],
                alerts=AlertSettings(**r["alerts"]), open_alert_id=r.get("open_alert_id"))


def _follow_up(r: dict | None) -> FollowUp | None:
    return FollowUp(**r) if r else None


def _kiosk(r: dict) -> Kiosk:
    return Kiosk(id=r["id"], site_id=r["site_id"], site_name=r["site_name"], name=r["name"], question=r["question"],
                 scale=r["scale"], follow_up=_follow_up(r.get("follow_up")), comments=r["comments"],
                 opening_hours=[OpeningHours(**h) for h in r.get("opening_hours") or []],
                 repeat_seconds=r["repeat_seconds"], revoked=r["revoked"], offline=r["offline"],
                 last_seen_at=r.get("last_seen_at"), battery=r.get("battery"), queue_length=r.get("queue_length"),
                 app_version=r.get("app_version"))


def _point(r: dict) -> SatisfactionPoint:
    return SatisfactionPoint(start=r["start"], counts=r["counts"], total=r["total"], negative=r["negative"],
                             happy_index=r.get("happy_index"))


def _kiosk_token(info: Info, kiosk_id: str) -> auth.Token:
    return auth.issue(info.context["settings"].secret, "kiosk", subject=f"kiosk:{kiosk_id}", kiosk=kiosk_id)


def _credentials(info: Info, kiosk: dict, token: auth.Token) -> KioskCredentials:
    base = info.context["settings"].public_url  # never the request's Host header
    return KioskCredentials(kiosk=_kiosk(kiosk), token=token.value, provisioning_url=f"{base}/kiosk#token={token.value}")


@strawberry.type
class SatisfactionQuery:
    @strawberry.field(description="Sites with kiosks", permission_classes=[IsAgentOrOperator])
    async def sites(self, info: Info) -> list[Site]:
        return [_site(r) for r in await info.context["call"]("satisfaction", "list_sites")]

    @strawberry.field(description="Kiosks, optionally of one site", permission_classes=[IsAgentOrOperator])
    async def kiosks(self, info: Info, site_id: Optional[strawberry.ID] = None) -> list[Kiosk]:
        return [_kiosk(r) for r in await info.context["call"]("satisfaction", "list_kiosks", site_id=site_id)]

    @strawberry.field(description="Counts per rating and Happy Index of a site or a kiosk over [from, to)",
                      permission_classes=[IsAgentOrOperator])
    async def satisfaction(self, info: Info, from_: Annotated[datetime, strawberry.argument(name="from")],
                           to: datetime, granularity: Granularity = Granularity.DAY,
                           site_id: Optional[strawberry.ID] = None,
                           kiosk_id: Optional[strawberry.ID] = None) -> SatisfactionSeries:
        r = await info.context["call"]("satisfaction", "satisfaction", site_id=site_id, kiosk_id=kiosk_id,
                                       start=from_.isoformat(), end=to.isoformat(), granularity=granularity.value)
        return SatisfactionSeries(points=[_point(p) for p in r["points"]], total=_point(r["total"]),
                                  profile=[_point(p) for p in r["profile"]])

    @strawberry.field(description="Sites side by side over [from, to), best Happy Index first",
                      permission_classes=[IsAgentOrOperator])
    async def satisfaction_comparison(self, info: Info, from_: Annotated[datetime, strawberry.argument(name="from")],
                                      to: datetime) -> list[SiteComparison]:
        rows = await info.context["call"]("satisfaction", "compare_sites", start=from_.isoformat(), end=to.isoformat())
        return [SiteComparison(**r) for r in rows]

    @strawberry.field(description="Satisfaction alerts, newest first", permission_classes=[IsAgentOrOperator])
    async def satisfaction_alerts(self, info: Info, site_id: Optional[strawberry.ID] = None,
                                  open_only: bool = False) -> list[SatisfactionAlert]:
        rows = await info.context["call"]("satisfaction", "list_alerts", site_id=site_id, open_only=open_only)
        return [SatisfactionAlert(id=r["id"], site_id=r["site_id"], site_name=r["site_name"], kiosk_id=r.get("kiosk_id"),
                                  rule=AlertRule(**r["rule"]), counts=AlertCounts(**r["counts"]),
                                  raised_at=r["raised_at"], resolved_at=r.get("resolved_at")) for r in rows]


@strawberry.type
class SatisfactionMutation:
    @strawberry.mutation(description="Create or update a site", permission_classes=[IsAgentOrOperator])
    async def save_site(self, info: Info, site: SiteInput) -> Site:
        return _site(await info.context["call"]("satisfaction", "upsert_site", **plain(site)))

    @strawberry.mutation(description="Register a kiosk: returns its token (scoped to it) and provisioning URL",
                         permission_classes=[IsAgentOrOperator])
    async def register_kiosk(self, info: Info, kiosk: KioskInput) -> KioskCredentials:
        kiosk_id = f"kiosk-{uuid.uuid4().hex[:12]}"
        token = _kiosk_token(info, kiosk_id)
        r = await info.context["call"]("satisfaction", "register_kiosk", id=kiosk_id, token_id=token.token_id,
                                       **plain(kiosk))
        return _credentials(info, r, token)

    @strawberry.mutation(description="Change a kiosk's settings", permission_classes=[IsAgentOrOperator])
    async def update_kiosk(self, info: Info, id: strawberry.ID, changes: KioskUpdateInput) -> Kiosk:
        return _kiosk(await info.context["call"]("satisfaction", "update_kiosk", id=id, **plain(changes)))

    @strawberry.mutation(description="Give a kiosk a new token; the previous one stops working",
                         permission_classes=[IsAgentOrOperator])
    async def rotate_kiosk_token(self, info: Info, id: strawberry.ID) -> KioskCredentials:
        token = _kiosk_token(info, str(id))
        r = await info.context["call"]("satisfaction", "rotate_kiosk_token", id=id, token_id=token.token_id)
        return _credentials(info, r, token)

    @strawberry.mutation(description="Revoke a kiosk: its token stops working", permission_classes=[IsAgentOrOperator])
    async def revoke_kiosk(self, info: Info, id: strawberry.ID) -> Kiosk:
        return _kiosk(await info.context["call"]("satisfaction", "revoke_kiosk", id=id))

    @strawberry.mutation(description=(
        "Replay the kiosk's current repeated-press rule (repeatSeconds) over its votes pressed in [from, to) "
        "(31 days at most): flags and counts are corrected; running it again changes nothing"),
        permission_classes=[IsAgent])
    async def recount_kiosk(self, info: Info, kiosk_id: strawberry.ID,
                            from_: Annotated[datetime, strawberry.argument(name="from")], to: datetime) -> KioskRecount:
        r = await info.context["call"]("satisfaction", "recount_kiosk", kiosk_id=kiosk_id, start=from_.isoformat(),
                                       end=to.isoformat(), timeout=120.0)
        return KioskRecount(**r)

    @strawberry.mutation(description="Send up to 500 votes (kiosk token); resending is safe",
                         permission_classes=[IsKiosk])
    async def submit_kiosk_votes(self, info: Info, votes: list[KioskVoteInput]) -> VoteSubmitReport:
        if len(votes) > 500:
            raise BadInput("500 votes au plus par envoi.", "votes")
        r = await info.context["call"]("satisfaction", "submit_votes", votes=plain(votes), timeout=30.0)
        return VoteSubmitReport(accepted=r["accepted"], duplicates=r["duplicates"],
                                rejected=[RejectedVote(**x) for x in r["rejected"]])

    @strawberry.mutation(description="A kiosk says it is alive; returns its settings", permission_classes=[IsKiosk])
    async def kiosk_heartbeat(self, info: Info, battery: Optional[float] = None, queue_length: Optional[int] = None,
                              app_version: Optional[str] = None) -> KioskConfig:
        r = await info.context["call"]("satisfaction", "heartbeat", battery=battery, queue_length=queue_length,
                                       app_version=app_version)
        return KioskConfig(id=r["id"], name=r["name"], site_name=r["site_name"], question=r["question"],
                           scale=r["scale"], follow_up=_follow_up(r.get("follow_up")), comments=r["comments"],
                           server_time=r["server_time"])


def _ws_caller(info: Info):
    """Over graphql-transport-ws the token comes in connection_init's payload ({"Authorization": "Bearer …"})."""
    context = info.context
    caller = context.get("caller")
    if caller is None or caller.role == "public":
        params = context.get("connection_params")
        caller = context["gateway"].authenticate({}, params if isinstance(params, dict) else {})
    if caller.role == "public":
        raise Unauthenticated("Connectez-vous : jeton attendu dans connection_init (Authorization).")
    return caller


@strawberry.type
class SatisfactionSubscription:
    @strawberry.subscription(description="Live figures of a site: a new value whenever its counts or alert change")
    async def satisfaction_updates(self, info: Info, site_id: strawberry.ID) -> AsyncGenerator[SatisfactionUpdate, None]:
        caller = _ws_caller(info)
        if caller.role not in ("agent", "operator"):
            raise Forbidden("Vous n'avez pas le droit de faire cette action.")
        call = info.context["gateway"].caller_call(caller, info.context.get("correlation_id") or uuid.uuid4().hex)
        last = None
        while True:
            # A subscription lasts as long as its token: not past its expiry, nor once it is revoked.
            if caller.expires_at is not None and time.time() >= caller.expires_at:
                raise Unauthenticated("Votre jeton a expiré : reconnectez-vous.")
            if caller.token_id in info.context["revocations"].ids:
                raise Unauthenticated("Ce jeton a été révoqué.")
            r = await call("satisfaction", "site_summary", site_id=str(site_id), timeout=5.0, background=True)
            if r != last:
                last = r
                yield SatisfactionUpdate(**r)
            await asyncio.sleep(UPDATES_POLL_SECONDS)
