"""Consultation GraphQL: surveys, public consultations and participatory budgets; forms and responses, budget projects
and ballots, panels, booths and paper ballots, results, receipts and exports.

Replies come back read by their contracts (gateway/rpc.py); `build` turns them into these types by their
annotations. Roles are checked here (permission classes) and again by the service for anything that writes.
"""
from __future__ import annotations

import enum
import functools
import typing
from datetime import datetime
from typing import Optional

import strawberry
from strawberry.types import Info

from contracts.errors import BadInput, NotFound
from gateway.schema.agenda import PageInfo
from gateway.schema.convert import plain
from gateway.schema.permissions import HasRole, IsAgent


class IsCitizen(HasRole):
    roles = frozenset({"citizen"})


# -- enums -------------------------------------------------------------------------------------------
@strawberry.enum(description="SURVEY (an enquête), CONSULTATION (a collective decision), BUDGET (participatory)")
class ConsultationKind(enum.Enum):
    SURVEY = "SURVEY"
    CONSULTATION = "CONSULTATION"
    BUDGET = "BUDGET"


@strawberry.enum(description="PUBLIC: every signed-in citizen; PANEL: the members an agent imported only")
class ConsultationAudience(enum.Enum):
    PUBLIC = "PUBLIC"
    PANEL = "PANEL"


@strawberry.enum(description="DRAFT → SCHEDULED → OPEN → CLOSED → RESULTS_PUBLISHED, and ARCHIVED; the clock opens "
                             "and closes, agents act")
class ConsultationState(enum.Enum):
    DRAFT = "DRAFT"
    SCHEDULED = "SCHEDULED"
    OPEN = "OPEN"
    CLOSED = "CLOSED"
    RESULTS_PUBLISHED = "RESULTS_PUBLISHED"
    ARCHIVED = "ARCHIVED"


@strawberry.enum(description="The whole territory, or some communes")
class ScopeKind(enum.Enum):
    TERRITORY = "TERRITORY"
    COMMUNES = "COMMUNES"


@strawberry.enum
class QuestionType(enum.Enum):
    SHORT_TEXT = "SHORT_TEXT"
    LONG_TEXT = "LONG_TEXT"
    SINGLE_CHOICE = "SINGLE_CHOICE"
    MULTIPLE_CHOICE = "MULTIPLE_CHOICE"
    RANKING = "RANKING"
    RATING = "RATING"
    MATRIX_SINGLE = "MATRIX_SINGLE"
    MATRIX_MULTIPLE = "MATRIX_MULTIPLE"
    YES_NO = "YES_NO"
    SECTION = "SECTION"


@strawberry.enum(description="EQUALS: the earlier answer includes the value; DIFFERS: it was answered and does not")
class ConditionOperator(enum.Enum):
    EQUALS = "EQUALS"
    DIFFERS = "DIFFERS"


@strawberry.enum(description="A participatory budget's phases (CONSUL's), in this order")
class BudgetPhaseKind(enum.Enum):
    INFORMING = "INFORMING"
    ACCEPTING = "ACCEPTING"
    REVIEWING = "REVIEWING"
    SELECTING = "SELECTING"
    VALUATING = "VALUATING"
    PUBLISHING_PRICES = "PUBLISHING_PRICES"
    BALLOTING = "BALLOTING"
    REVIEWING_BALLOTS = "REVIEWING_BALLOTS"
    FINISHED = "FINISHED"


@strawberry.enum(description="KNAPSACK: the projects chosen fit the heading's amount; APPROVAL: at most N projects")
class VotingRuleKind(enum.Enum):
    KNAPSACK = "KNAPSACK"
    APPROVAL = "APPROVAL"


@strawberry.enum(description="How projects with as many votes are ordered")
class TieBreak(enum.Enum):
    LOWER_PRICE = "LOWER_PRICE"
    HIGHER_PRICE = "HIGHER_PRICE"
    EARLIER_SUBMISSION = "EARLIER_SUBMISSION"
    LOT = "LOT"


@strawberry.enum
class ProjectModerationState(enum.Enum):
    SUBMITTED = "SUBMITTED"
    APPROVED = "APPROVED"
    REJECTED = "REJECTED"


@strawberry.enum
class ProjectDecision(enum.Enum):
    APPROVE = "APPROVE"
    REJECT = "REJECT"


@strawberry.enum
class Feasibility(enum.Enum):
    UNDECIDED = "UNDECIDED"
    FEASIBLE = "FEASIBLE"
    UNFEASIBLE = "UNFEASIBLE"


@strawberry.enum(description="How a voter took part: online, at a booth, by letter")
class ParticipationOrigin(enum.Enum):
    WEB = "WEB"
    BOOTH = "BOOTH"
    LETTER = "LETTER"


@strawberry.enum
class CheckInOrigin(enum.Enum):
    BOOTH = "BOOTH"
    LETTER = "LETTER"


@strawberry.enum
class ResponseStatus(enum.Enum):
    DRAFT = "DRAFT"
    SUBMITTED = "SUBMITTED"


@strawberry.enum(description="SUBMITTED: a response that may still change until closing; VOTED: final")
class ParticipationStatus(enum.Enum):
    DRAFT = "DRAFT"
    SUBMITTED = "SUBMITTED"
    VOTED = "VOTED"


@strawberry.enum(description="Double entry: a sheet counts once two agents' entries agree")
class PaperEntryStatus(enum.Enum):
    AWAITING_SECOND_ENTRY = "AWAITING_SECOND_ENTRY"
    MATCHED = "MATCHED"
    MISMATCH = "MISMATCH"


@strawberry.enum
class PaperEntryKind(enum.Enum):
    BALLOTS = "BALLOTS"
    TOTALS = "TOTALS"


@strawberry.enum
class ResultsFormat(enum.Enum):
    CSV = "CSV"
    JSON = "JSON"
    PABULIB = "PABULIB"


# -- types ---------------------------------------------------------------------------------------------
@strawberry.type(description="Whom a consultation concerns")
class ConsultationScope:
    kind: ScopeKind
    communes: list[str] = strawberry.field(description="commune slugs (kind COMMUNES)")


@strawberry.type(description="A public meeting of a consultation (shown in the agenda)")
class ConsultationMeeting:
    title: str
    starts_at: datetime
    ends_at: datetime
    place: str
    commune: str


@strawberry.type
class QuestionOption:
    id: strawberry.ID
    label: str
    free_text: bool = strawberry.field(description="'Autre, précisez': choosing it asks for a text")


@strawberry.type
class MatrixRow:
    id: strawberry.ID
    label: str


@strawberry.type
class ScaleLabel:
    value: int
    label: str


@strawberry.type(description="1–5 or 0–10, some points labelled")
class RatingScale:
    min: int
    max: int
    labels: list[ScaleLabel]


@strawberry.type
class DisplayCondition:
    question_id: strawberry.ID
    operator: ConditionOperator
    value: str


@strawberry.type(description="A question of a form (or a SECTION header)")
class Question:
    id: strawberry.ID
    type: QuestionType
    label: str
    description: str
    mandatory: bool
    position: int
    options: list[QuestionOption]
    rows: list[MatrixRow]
    max_characters: Optional[int]
    min_choices: Optional[int]
    max_choices: Optional[int]
    scale: Optional[RatingScale]
    conditions: list[DisplayCondition] = strawberry.field(description="shown only when every condition holds")


@strawberry.type
class LabelChange:
    question_id: strawberry.ID
    path: str
    before: str
    after: str


@strawberry.type(description="Label typos fixed after the first response (the only change then allowed)")
class FormRevision:
    at: datetime
    actor: Optional[str]
    changes: list[LabelChange]


@strawberry.type
class BudgetPhase:
    kind: BudgetPhaseKind
    enabled: bool
    starts_at: Optional[datetime]
    ends_at: Optional[datetime]
    summary: str
    current: bool


@strawberry.type(description="Where a voter votes: a commune, a group of communes, or the whole territory")
class BudgetHeading:
    id: strawberry.ID
    name: str
    communes: list[str]
    amount_cents: int
    max_projects: Optional[int]
    population: Optional[int]


@strawberry.type
class VotingRule:
    kind: VotingRuleKind
    min_share_percent: Optional[int]
    max_projects: Optional[int]
    min_projects: Optional[int]


@strawberry.type(description="A participatory budget's settings")
class Budget:
    phases: list[BudgetPhase]
    current_phase: Optional[BudgetPhaseKind]
    headings: list[BudgetHeading]
    rule: VotingRule
    max_headings_per_voter: int
    tie_break: TieBreak
    tie_break_seed: Optional[str]
    instance: Optional[str]


@strawberry.type(description="A survey, a public consultation or a participatory budget")
class Consultation:
    id: strawberry.ID
    title: str
    summary: str
    description: str = strawberry.field(description="Markdown")
    description_html: str = strawberry.field(description="the Markdown rendered and sanitised")
    kind: ConsultationKind
    scope: ConsultationScope
    audience: ConsultationAudience
    secret: bool = strawberry.field(description="secret ballot (a budget always is): receipts, final once cast")
    opens_at: Optional[datetime]
    closes_at: Optional[datetime]
    state: ConsultationState
    meetings: list[ConsultationMeeting]
    questions: list[Question]
    questions_locked: bool = strawberry.field(description="a response exists: only label typos may change")
    revisions: list[FormRevision]
    budget: Optional[Budget]
    participants: Optional[int] = strawberry.field(description="online, at booths and on paper; from opening on")
    results_published_at: Optional[datetime]
    created_at: datetime
    updated_at: datetime
    created_by: Optional[str] = strawberry.field(description="agents only")
    url: str


@strawberry.type
class ConsultationEdge:
    cursor: str
    node: Consultation


@strawberry.type(description="A page of consultations (Relay connection), newest first")
class ConsultationConnection:
    edges: list[ConsultationEdge]
    page_info: PageInfo
    total_count: int


@strawberry.type
class MatrixAnswer:
    row_id: strawberry.ID
    choices: list[str]


@strawberry.type
class Answer:
    question_id: strawberry.ID
    text: Optional[str]
    choices: list[str]
    other_text: Optional[str]
    rating: Optional[int]
    rows: list[MatrixAnswer]


@strawberry.type(description="The caller's answers: a draft, or what he submitted")
class ConsultationResponse:
    consultation_id: strawberry.ID
    status: ResponseStatus
    answers: list[Answer]
    saved_at: datetime
    submitted_at: Optional[datetime]
    final: bool = strawberry.field(description="a secret response is final once submitted")
    receipt_code: Optional[str] = strawberry.field(description="secret consultations: shown once, at submission")


@strawberry.type
class GeoPoint:
    lat: float
    lon: float


@strawberry.type
class ProjectVotes:
    online: int
    paper: int
    total: int


@strawberry.type(description="A project proposed for a participatory budget")
class BudgetProject:
    id: strawberry.ID
    budget_id: strawberry.ID
    heading_id: strawberry.ID
    heading_name: str
    title: str
    description: str
    estimated_cost_cents: int
    location: Optional[GeoPoint]
    address: str
    author: Optional[str] = strawberry.field(description="agents and the author only")
    mine: bool
    moderation: ProjectModerationState
    rejection_reason: Optional[str]
    feasibility: Feasibility
    unfeasibility_explanation: Optional[str]
    price_cents: Optional[int] = strawberry.field(description="public from PUBLISHING_PRICES on")
    price_explanation: Optional[str]
    selected: bool = strawberry.field(description="on the ballot")
    supports: int
    votes: Optional[ProjectVotes] = strawberry.field(description="once results are published")
    winner: Optional[bool] = strawberry.field(description="once results are published")
    submitted_at: datetime
    updated_at: datetime
    url: str


@strawberry.type
class BudgetProjectEdge:
    cursor: str
    node: BudgetProject


@strawberry.type(description="A page of a budget's projects (Relay connection), oldest proposal first")
class BudgetProjectConnection:
    edges: list[BudgetProjectEdge]
    page_info: PageInfo
    total_count: int


@strawberry.type
class HeadingBallot:
    heading_id: strawberry.ID
    project_ids: list[strawberry.ID]


@strawberry.type(description="The receipt of a budget ballot: keep its code to find the ballot in the published list")
class BallotReceipt:
    consultation_id: strawberry.ID
    receipt_code: str
    headings: list[HeadingBallot]


@strawberry.type(description="Where the caller took part, never what he chose")
class MyParticipation:
    consultation_id: strawberry.ID
    title: str
    kind: ConsultationKind
    state: ConsultationState
    origin: ParticipationOrigin
    status: ParticipationStatus
    participated_at: datetime
    closes_at: Optional[datetime]


@strawberry.type
class MyParticipationPage:
    nodes: list[MyParticipation]
    page_info: PageInfo


@strawberry.type(description="Participants: online, at booths or by letter, paper ballots (the larger of check-ins "
                             "and paper ballots counts offline voters)")
class ParticipationCounts:
    web: int
    booth: int
    letter: int
    paper_ballots: int
    blank: int
    null: int
    total: int


@strawberry.type
class OptionCount:
    option_id: str
    label: str
    count: int
    percent: Optional[float]


@strawberry.type
class RowCounts:
    row_id: str
    label: str
    answered: int
    options: list[OptionCount]


@strawberry.type
class RankingScore:
    option_id: str
    label: str
    points: int = strawberry.field(description="Borda: with n items, first place n-1 points … last 0")
    first_places: int
    mean_position: Optional[float]


@strawberry.type
class RatingCount:
    value: int
    count: int


@strawberry.type
class RatingResult:
    mean: Optional[float]
    distribution: list[RatingCount]


@strawberry.type
class QuestionResult:
    question_id: strawberry.ID
    type: QuestionType
    label: str
    answered: int
    options: list[OptionCount]
    rows: list[RowCounts]
    ranking: list[RankingScore]
    rating: Optional[RatingResult]
    other_texts: int
    charted: bool = strawberry.field(description="false for free text: counted, never charted")


@strawberry.type
class ProjectResult:
    project_id: strawberry.ID
    title: str
    price_cents: int
    votes: ProjectVotes
    winner: bool
    rank: int


@strawberry.type
class HeadingResult:
    heading_id: strawberry.ID
    name: str
    amount_cents: int
    spent_cents: int
    remaining_cents: int
    projects: list[ProjectResult]
    winners: list[strawberry.ID]


@strawberry.type(description="Results: only the participation until an agent publishes them after closing")
class ConsultationResults:
    consultation_id: strawberry.ID
    kind: ConsultationKind
    state: ConsultationState
    published_at: Optional[datetime]
    participation: ParticipationCounts
    questions: list[QuestionResult]
    headings: list[HeadingResult]
    tie_break: Optional[TieBreak]
    paper_entries_excluded: int = strawberry.field(description="paper sheets kept out (mismatch or single entry)")


@strawberry.type(description="A receipt code and the ballot counted for it (free texts are never published)")
class ReceiptEntry:
    receipt_code: str
    headings: list[HeadingBallot]
    answers: list[Answer]


@strawberry.type
class ReceiptPage:
    nodes: list[ReceiptEntry]
    page_info: PageInfo
    total_count: int


@strawberry.type
class PanelImportReport:
    added: int
    already_members: int
    removed: int
    invalid: list[str] = strawberry.field(description="lines that are not email addresses, to fix")
    members: int


@strawberry.type
class CheckInReport:
    consultation_id: strawberry.ID
    origin: ParticipationOrigin
    booth_id: Optional[str]
    checked_in_at: datetime


@strawberry.type
class EntryDifference:
    path: str
    first: Optional[str]
    second: Optional[str]


@strawberry.type(description="A paper sheet (ballots or booth totals) and its double entry")
class PaperEntry:
    id: strawberry.ID
    consultation_id: strawberry.ID
    booth_id: str
    sheet_ref: str
    kind: PaperEntryKind
    status: PaperEntryStatus
    entries: int
    agents: list[str]
    differences: list[EntryDifference]
    updated_at: datetime


@strawberry.type
class PaperEntryPage:
    nodes: list[PaperEntry]
    page_info: PageInfo
    total_count: int


@strawberry.type(description="Open data under the Licence Ouverte")
class ResultsFile:
    filename: str
    content_type: str
    content: str
    licence: str


# -- inputs -----------------------------------------------------------------------------------------------
@strawberry.input
class ScopeInput:
    kind: ScopeKind = ScopeKind.TERRITORY
    communes: list[str] = strawberry.field(default_factory=list)


@strawberry.input(description="Naive date-times are Europe/Paris wall time")
class MeetingInput:
    title: str
    starts_at: datetime
    ends_at: datetime
    commune: str
    place: str = ""


@strawberry.input
class OptionInput:
    id: strawberry.ID
    label: str
    free_text: bool = False


@strawberry.input
class MatrixRowInput:
    id: strawberry.ID
    label: str


@strawberry.input
class ScaleLabelInput:
    value: int
    label: str


@strawberry.input
class RatingScaleInput:
    min: int = 1
    max: int = 5
    labels: list[ScaleLabelInput] = strawberry.field(default_factory=list)


@strawberry.input
class DisplayConditionInput:
    question_id: strawberry.ID
    value: str
    operator: ConditionOperator = ConditionOperator.EQUALS


@strawberry.input(description="A question; `id` kept when given (required to update one), `position` 1 = first")
class QuestionInput:
    type: QuestionType
    label: str
    id: Optional[strawberry.ID] = None
    description: str = ""
    mandatory: bool = False
    position: Optional[int] = None
    options: list[OptionInput] = strawberry.field(default_factory=list)
    rows: list[MatrixRowInput] = strawberry.field(default_factory=list)
    max_characters: Optional[int] = None
    min_choices: Optional[int] = None
    max_choices: Optional[int] = None
    scale: Optional[RatingScaleInput] = None
    conditions: list[DisplayConditionInput] = strawberry.field(default_factory=list)


@strawberry.input(description="Naive date-times are Europe/Paris wall time")
class BudgetPhaseInput:
    kind: BudgetPhaseKind
    enabled: bool = True
    starts_at: Optional[datetime] = None
    ends_at: Optional[datetime] = None
    summary: str = ""


@strawberry.input
class BudgetHeadingInput:
    id: strawberry.ID
    name: str
    amount_cents: int
    communes: list[str] = strawberry.field(default_factory=list)
    max_projects: Optional[int] = None
    population: Optional[int] = None


@strawberry.input
class VotingRuleInput:
    kind: VotingRuleKind = VotingRuleKind.KNAPSACK
    min_share_percent: Optional[int] = None
    max_projects: Optional[int] = None
    min_projects: Optional[int] = None


@strawberry.input
class BudgetInput:
    phases: list[BudgetPhaseInput]
    headings: list[BudgetHeadingInput]
    rule: Optional[VotingRuleInput] = None
    max_headings_per_voter: int = 1
    tie_break: TieBreak = TieBreak.LOWER_PRICE
    tie_break_seed: Optional[str] = None
    instance: Optional[str] = None


@strawberry.input(description="A consultation; naive date-times are Europe/Paris wall time; a BUDGET's window is its "
                              "phases'")
class ConsultationInput:
    title: str
    kind: ConsultationKind
    summary: str = ""
    description: str = strawberry.field(default="", description="Markdown")
    scope: Optional[ScopeInput] = None
    audience: ConsultationAudience = ConsultationAudience.PUBLIC
    secret: bool = False
    opens_at: Optional[datetime] = None
    closes_at: Optional[datetime] = None
    meetings: list[MeetingInput] = strawberry.field(default_factory=list)
    budget: Optional[BudgetInput] = None


@strawberry.input
class ConsultationFilter:
    kinds: list[ConsultationKind] = strawberry.field(default_factory=list)
    states: list[ConsultationState] = strawberry.field(default_factory=list)
    communes: list[str] = strawberry.field(default_factory=list, description="concerning these communes (or all)")
    audience: Optional[ConsultationAudience] = None
    text: Optional[str] = None


@strawberry.input
class MatrixAnswerInput:
    row_id: strawberry.ID
    choices: list[str] = strawberry.field(default_factory=list)


@strawberry.input(description="One answer: a text, choices (option ids; yes/no: 'yes' or 'no'; a ranking: every "
                              "option, preferred first), a rating, or rows of a matrix")
class AnswerInput:
    question_id: strawberry.ID
    text: Optional[str] = None
    choices: list[str] = strawberry.field(default_factory=list)
    other_text: Optional[str] = None
    rating: Optional[int] = None
    rows: list[MatrixAnswerInput] = strawberry.field(default_factory=list)


@strawberry.input
class GeoPointInput:
    lat: float
    lon: float


@strawberry.input
class ProjectInput:
    title: str
    heading_id: strawberry.ID
    estimated_cost_cents: int
    description: str = ""
    location: Optional[GeoPointInput] = None
    address: str = ""


@strawberry.input
class ProjectFilter:
    moderation: list[ProjectModerationState] = strawberry.field(default_factory=list, description="agents")
    feasibility: list[Feasibility] = strawberry.field(default_factory=list)
    selected: Optional[bool] = None
    winners: Optional[bool] = strawberry.field(default=None, description="once results are published")
    mine: bool = False
    text: Optional[str] = None


@strawberry.input
class HeadingBallotInput:
    heading_id: strawberry.ID
    project_ids: list[strawberry.ID]


@strawberry.input(description="One paper ballot: a budget's projects, a form's answers, or blank, or null (spoiled)")
class PaperBallotInput:
    headings: list[HeadingBallotInput] = strawberry.field(default_factory=list)
    answers: list[AnswerInput] = strawberry.field(default_factory=list)
    blank: bool = False
    null: bool = False


@strawberry.input
class ProjectTotalInput:
    project_id: strawberry.ID
    votes: int


@strawberry.input
class OptionTotalInput:
    question_id: strawberry.ID
    option_id: str = strawberry.field(description="an option id, 'yes' / 'no', or a rating")
    votes: int
    row_id: Optional[str] = None


# -- replies into types ----------------------------------------------------------------------------------
@functools.lru_cache(maxsize=None)
def _hints(cls) -> dict:
    return {k: v for k, v in typing.get_type_hints(cls).items() if not k.startswith("_")}


def _value(hint, value):
    if value is None:
        return None
    origin = typing.get_origin(hint)
    if origin is typing.Union:
        inner = [a for a in typing.get_args(hint) if a is not type(None)][0]
        return _value(inner, value)
    if origin is list:
        (inner,) = typing.get_args(hint)
        return [_value(inner, v) for v in value]
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        return hint(value)
    if hasattr(hint, "__strawberry_definition__"):
        return build(hint, value)
    return value


def build(cls, data: dict):
    """A strawberry type from a reply read by its contract (field names are the contract's, in snake_case)."""
    return cls(**{name: _value(hint, data.get(name)) for name, hint in _hints(cls).items()
                  if name in data or _optional(hint)})


def _optional(hint) -> bool:
    return typing.get_origin(hint) is typing.Union and type(None) in typing.get_args(hint)


def _connection(cls, edge_cls, node_cls, page: dict):
    return cls(edges=[edge_cls(cursor=cur, node=build(node_cls, item)) for cur, item in zip(page["cursors"],
                                                                                          page["items"])],
               page_info=PageInfo(has_next_page=page["has_next"], end_cursor=page.get("end_cursor")),
               total_count=page["total"])


def _page(cls, node_cls, page: dict):
    extra = {"total_count": page["total"]} if "total_count" in _hints(cls) else {}
    return cls(nodes=[build(node_cls, i) for i in page["items"]],
               page_info=PageInfo(has_next_page=page["has_next"], end_cursor=page.get("end_cursor")), **extra)


# Calls that change no answer of consultation_results (reads), and budget ballots: a count may lag them by
# gateway/sharedreads.py's `stale` seconds. Any other call drops the shared results answers.
_KEEP_SHARED = ("get_", "list_", "export_", "verify_", "my_", "consultation_results", "cast_budget_ballot")


async def _call(info: Info, method: str, **kwargs):
    try:
        return await info.context["call"]("consultation", method, **kwargs)
    finally:
        if not method.startswith(_KEEP_SHARED) and "gateway" in info.context:
            info.context["gateway"].shared_results.forget()


async def _consultation(info: Info, method: str, **kwargs) -> Consultation:
    return build(Consultation, await _call(info, method, **kwargs))


async def _project(info: Info, method: str, **kwargs) -> BudgetProject:
    return build(BudgetProject, await _call(info, method, **kwargs))


def _question(value: QuestionInput) -> dict:
    if value.id is None:
        raise BadInput("Indiquez l'identifiant de la question à modifier (id).", "question.id")
    if value.position is None:
        raise BadInput("Indiquez la position de la question (1 = la première).", "question.position")
    return plain(value)


# -- queries ---------------------------------------------------------------------------------------------
@strawberry.type
class ConsultationQuery:
    @strawberry.field(description="Consultations the caller may see (agents see drafts), newest first")
    async def consultations(self, info: Info, filter: Optional[ConsultationFilter] = None, first: int = 20,
                            after: Optional[str] = None) -> ConsultationConnection:
        page = await _call(info, "list_consultations", filter=plain(filter) if filter else {}, first=first,
                           after=after)
        return _connection(ConsultationConnection, ConsultationEdge, Consultation, page)

    @strawberry.field(description="One consultation, if the caller may see it")
    async def consultation(self, info: Info, id: strawberry.ID) -> Optional[Consultation]:
        try:
            return await _consultation(info, "get_consultation", id=str(id))
        except NotFound:
            return None

    @strawberry.field(permission_classes=[IsCitizen], description="Where the caller took part, never what he chose")
    async def my_participations(self, info: Info, first: int = 50, after: Optional[str] = None) -> MyParticipationPage:
        return _page(MyParticipationPage, MyParticipation, await _call(info, "my_participations", first=first,
                                                                       after=after))

    @strawberry.field(permission_classes=[IsCitizen],
                      description="The caller's draft or submitted answers (a secret response, once cast, is not)")
    async def my_response(self, info: Info, consultation_id: strawberry.ID) -> ConsultationResponse:
        return build(ConsultationResponse, await _call(info, "get_my_response", consultation_id=str(consultation_id)))

    @strawberry.field(description="Results once published; until then only the participation, for everyone")
    async def consultation_results(self, info: Info, id: strawberry.ID) -> ConsultationResults:
        # Polled by every open page of a vote while ballots stream in: one call to the service at a time, its answer
        # shared for a second or two (gateway/sharedreads.py), per role (what a role may see differs).
        load = lambda: _call(info, "consultation_results", id=str(id))  # noqa: E731
        gateway = info.context.get("gateway")
        if gateway is None:
            return build(ConsultationResults, await load())
        caller = info.context["caller"]
        return build(ConsultationResults, await gateway.shared_results.get((str(id), caller.role), load))

    @strawberry.field(description="A budget's projects (the public sees approved ones), by heading and filter")
    async def projects(self, info: Info, budget_id: strawberry.ID, heading_id: Optional[strawberry.ID] = None,
                       filter: Optional[ProjectFilter] = None, first: int = 20,
                       after: Optional[str] = None) -> BudgetProjectConnection:
        page = await _call(info, "list_projects", budget_id=str(budget_id), heading_id=heading_id,
                           filter=plain(filter) if filter else {}, first=first, after=after)
        return _connection(BudgetProjectConnection, BudgetProjectEdge, BudgetProject, page)

    @strawberry.field(description="One project, if the caller may see it")
    async def project(self, info: Info, id: strawberry.ID) -> Optional[BudgetProject]:
        try:
            return await _project(info, "get_project", project_id=str(id))
        except NotFound:
            return None

    @strawberry.field(description="Once results are published: every receipt code with its ballot, by code")
    async def consultation_receipts(self, info: Info, consultation_id: strawberry.ID, first: int = 500,
                                    after: Optional[str] = None) -> ReceiptPage:
        return _page(ReceiptPage, ReceiptEntry, await _call(info, "list_receipts", consultation_id=str(consultation_id),
                                                            first=first, after=after))

    @strawberry.field(description="Once results are published: the ballot counted for a receipt code")
    async def verify_receipt(self, info: Info, consultation_id: strawberry.ID, receipt_code: str) -> ReceiptEntry:
        return build(ReceiptEntry, await _call(info, "verify_receipt", consultation_id=str(consultation_id),
                                               receipt_code=receipt_code))

    @strawberry.field(permission_classes=[IsAgent], description="Paper sheets and their double entry, mismatches first")
    async def paper_entries(self, info: Info, consultation_id: strawberry.ID,
                            statuses: Optional[list[PaperEntryStatus]] = None, first: int = 50,
                            after: Optional[str] = None) -> PaperEntryPage:
        return _page(PaperEntryPage, PaperEntry, await _call(
            info, "list_paper_entries", consultation_id=str(consultation_id),
            statuses=[s.value for s in statuses or []], first=first, after=after))

    @strawberry.field(description="Published results as CSV, JSON or Pabulib (.pb, one heading), Licence Ouverte")
    async def consultation_results_file(self, info: Info, consultation_id: strawberry.ID, format: ResultsFormat,
                                        heading_id: Optional[strawberry.ID] = None) -> ResultsFile:
        return build(ResultsFile, await _call(info, "export_results", consultation_id=str(consultation_id),
                                              format=format.value, heading_id=heading_id, timeout=60.0))


# -- mutations ---------------------------------------------------------------------------------------------
@strawberry.type
class ConsultationMutation:
    @strawberry.mutation(permission_classes=[IsAgent], description="Draft a survey, consultation or budget")
    async def create_consultation(self, info: Info, consultation: ConsultationInput,
                                  questions: Optional[list[QuestionInput]] = None) -> Consultation:
        return await _consultation(info, "create_consultation", consultation=plain(consultation),
                                   questions=plain(questions or []))

    @strawberry.mutation(permission_classes=[IsAgent],
                         description="Change a consultation (once open: texts, meetings, closing time, phases to come)")
    async def update_consultation(self, info: Info, id: strawberry.ID, consultation: ConsultationInput) -> Consultation:
        return await _consultation(info, "update_consultation", id=str(id),
                                   consultation=plain(consultation))

    @strawberry.mutation(permission_classes=[IsAgent], description="Schedule a draft: it opens by itself at opensAt")
    async def schedule_consultation(self, info: Info, id: strawberry.ID) -> Consultation:
        return await _consultation(info, "schedule_consultation", id=str(id))

    @strawberry.mutation(permission_classes=[IsAgent], description="Back to draft before it opens")
    async def unschedule_consultation(self, info: Info, id: strawberry.ID) -> Consultation:
        return await _consultation(info, "unschedule_consultation", id=str(id))

    @strawberry.mutation(permission_classes=[IsAgent], description="Open a scheduled consultation now")
    async def open_consultation(self, info: Info, id: strawberry.ID) -> Consultation:
        return await _consultation(info, "open_consultation", id=str(id))

    @strawberry.mutation(permission_classes=[IsAgent], description="Close an open consultation now")
    async def close_consultation(self, info: Info, id: strawberry.ID, reason: Optional[str] = None) -> Consultation:
        return await _consultation(info, "close_consultation", id=str(id), reason=reason)

    @strawberry.mutation(permission_classes=[IsAgent], description="Publish a closed consultation's results")
    async def publish_consultation_results(self, info: Info, id: strawberry.ID) -> Consultation:
        return await _consultation(info, "publish_results", id=str(id))

    @strawberry.mutation(permission_classes=[IsAgent], description="Archive a consultation that is not open")
    async def archive_consultation(self, info: Info, id: strawberry.ID) -> Consultation:
        return await _consultation(info, "archive_consultation", id=str(id))

    @strawberry.mutation(permission_classes=[IsAgent],
                         description="End a budget's current phase now and start the next enabled one")
    async def advance_budget_phase(self, info: Info, budget_id: strawberry.ID, to: BudgetPhaseKind) -> Consultation:
        return await _consultation(info, "advance_budget_phase", budget_id=str(budget_id), to=to.value)

    @strawberry.mutation(permission_classes=[IsAgent], description="Add a question to a form without responses")
    async def add_question(self, info: Info, consultation_id: strawberry.ID, question: QuestionInput) -> Consultation:
        return await _consultation(info, "add_question", consultation_id=str(consultation_id), question=plain(question))

    @strawberry.mutation(permission_classes=[IsAgent],
                         description="Change a question (id and position required); once answered, label typos only")
    async def update_question(self, info: Info, consultation_id: strawberry.ID,
                              question: QuestionInput) -> Consultation:
        return await _consultation(info, "update_question", consultation_id=str(consultation_id),
                                   question=_question(question))

    @strawberry.mutation(permission_classes=[IsAgent], description="Remove a question from a form without responses")
    async def remove_question(self, info: Info, consultation_id: strawberry.ID,
                              question_id: strawberry.ID) -> Consultation:
        return await _consultation(info, "remove_question", consultation_id=str(consultation_id),
                                   question_id=str(question_id))

    @strawberry.mutation(permission_classes=[IsAgent], description="Reorder a form without responses (every id once)")
    async def reorder_questions(self, info: Info, consultation_id: strawberry.ID,
                                question_ids: list[strawberry.ID]) -> Consultation:
        return await _consultation(info, "reorder_questions", consultation_id=str(consultation_id),
                                   question_ids=[str(q) for q in question_ids])

    @strawberry.mutation(permission_classes=[IsCitizen], description="Save the caller's draft answers")
    async def save_response(self, info: Info, consultation_id: strawberry.ID,
                            answers: list[AnswerInput]) -> ConsultationResponse:
        return build(ConsultationResponse, await _call(info, "save_response", consultation_id=str(consultation_id),
                                                       answers=plain(answers)))

    @strawberry.mutation(permission_classes=[IsCitizen],
                         description="Submit the caller's answers (a secret one is final and gets a receipt code)")
    async def submit_response(self, info: Info, consultation_id: strawberry.ID,
                              answers: list[AnswerInput]) -> ConsultationResponse:
        return build(ConsultationResponse, await _call(info, "submit_response", consultation_id=str(consultation_id),
                                                       answers=plain(answers), timeout=30.0))

    @strawberry.mutation(permission_classes=[IsCitizen], description="Propose a project while proposals are open")
    async def propose_project(self, info: Info, budget_id: strawberry.ID, project: ProjectInput) -> BudgetProject:
        return await _project(info, "propose_project", budget_id=str(budget_id), project=plain(project))

    @strawberry.mutation(permission_classes=[IsCitizen],
                         description="Its author changes a project while proposals are open (back to moderation)")
    async def update_project(self, info: Info, id: strawberry.ID, project: ProjectInput) -> BudgetProject:
        return await _project(info, "update_project", project_id=str(id), project=plain(project))

    @strawberry.mutation(permission_classes=[IsAgent], description="Approve, or reject with a reason for its author")
    async def moderate_project(self, info: Info, id: strawberry.ID, decision: ProjectDecision,
                               reason: Optional[str] = None) -> BudgetProject:
        return await _project(info, "moderate_project", project_id=str(id), decision=decision.value, reason=reason)

    @strawberry.mutation(permission_classes=[IsCitizen], description="Support a project (once) while supports are open")
    async def support_project(self, info: Info, id: strawberry.ID) -> BudgetProject:
        return await _project(info, "support_project", project_id=str(id))

    @strawberry.mutation(permission_classes=[IsAgent],
                         description="Feasible (with its price, now or later) or unfeasible (with an explanation)")
    async def assess_project(self, info: Info, id: strawberry.ID, feasibility: Feasibility,
                             explanation: Optional[str] = None, price_cents: Optional[int] = None) -> BudgetProject:
        return await _project(info, "assess_project", project_id=str(id), feasibility=feasibility.value,
                              explanation=explanation, price_cents=price_cents)

    @strawberry.mutation(permission_classes=[IsAgent], description="Set a feasible project's price")
    async def price_project(self, info: Info, id: strawberry.ID, price_cents: int,
                            price_explanation: str = "") -> BudgetProject:
        return await _project(info, "price_project", project_id=str(id), price_cents=price_cents,
                              price_explanation=price_explanation)

    @strawberry.mutation(permission_classes=[IsAgent], description="Put projects on the ballot (or take them off)")
    async def select_projects(self, info: Info, budget_id: strawberry.ID, project_ids: list[strawberry.ID],
                              selected: bool = True) -> list[BudgetProject]:
        rows = await _call(info, "select_projects", budget_id=str(budget_id), project_ids=[str(p) for p in project_ids],
                           selected=selected)
        return [build(BudgetProject, r) for r in rows]

    @strawberry.mutation(permission_classes=[IsCitizen],
                         description="Cast the caller's secret, final budget ballot; keep its receipt code")
    async def cast_budget_ballot(self, info: Info, budget_id: strawberry.ID,
                                 headings: list[HeadingBallotInput]) -> BallotReceipt:
        return build(BallotReceipt, await _call(info, "cast_budget_ballot", budget_id=str(budget_id),
                                                headings=plain(headings), timeout=30.0))

    @strawberry.mutation(permission_classes=[IsAgent],
                         description="Set a PANEL consultation's members from email addresses (kept as keyed hashes)")
    async def import_panel_members(self, info: Info, consultation_id: strawberry.ID, emails: list[str],
                                   replace: bool = False) -> PanelImportReport:
        return build(PanelImportReport, await _call(info, "import_panel_members", consultation_id=str(consultation_id),
                                                    emails=emails, replace=replace, timeout=60.0))

    @strawberry.mutation(permission_classes=[IsAgent],
                         description="Record that a person voted at a booth or by letter: an online vote is refused")
    async def check_in_voter(self, info: Info, consultation_id: strawberry.ID, booth_id: Optional[str] = None,
                             email: Optional[str] = None, phone: Optional[str] = None,
                             origin: CheckInOrigin = CheckInOrigin.BOOTH) -> CheckInReport:
        return build(CheckInReport, await _call(info, "check_in_voter", consultation_id=str(consultation_id),
                                                booth_id=booth_id, email=email, phone=phone, origin=origin.value))

    @strawberry.mutation(permission_classes=[IsAgent],
                         description="Enter a paper ballot sheet, one ballot at a time; counted once two agents agree")
    async def enter_paper_ballots(self, info: Info, consultation_id: strawberry.ID, booth_id: str, sheet_ref: str,
                                  ballots: list[PaperBallotInput]) -> PaperEntry:
        return build(PaperEntry, await _call(info, "enter_paper_ballots", consultation_id=str(consultation_id),
                                             booth_id=booth_id, sheet_ref=sheet_ref, ballots=plain(ballots)))

    @strawberry.mutation(permission_classes=[IsAgent],
                         description="Enter a booth's totals per project or option; counted once two agents agree")
    async def enter_paper_totals(self, info: Info, consultation_id: strawberry.ID, booth_id: str, sheet_ref: str,
                                 ballots: int, blank: int = 0, null: int = 0,
                                 projects: Optional[list[ProjectTotalInput]] = None,
                                 options: Optional[list[OptionTotalInput]] = None) -> PaperEntry:
        return build(PaperEntry, await _call(info, "enter_paper_totals", consultation_id=str(consultation_id),
                                             booth_id=booth_id, sheet_ref=sheet_ref, ballots=ballots, blank=blank,
                                             null=null, projects=plain(projects or []),
                                             options=plain(options or [])))


@strawberry.type
class ConsultationSubscription:
    pass
