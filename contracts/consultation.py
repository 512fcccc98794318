"""Consultation service contracts: surveys, consultations and participatory budgets, their forms, responses,
ballots (online and on paper), results, and the events announcing their life.

Shapes only: the rules (what a state allows, what a valid answer or ballot is, who wins) live in
services/consultation/. Bounds here are anti-abuse limits; the precise limits, with French messages a person can
act on, are the domain's. Money is in integer cents; times are UTC (a naive input is Europe/Paris wall time).
Ids of questions, options, rows, headings and projects are short [A-Za-z0-9_-] strings: they become parts of
counter keys.

A BUDGET is a consultation of kind BUDGET: its id is the `budget_id` of the budget requests.
"""
from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import Field

from contracts.base import EventContract, Model, RpcContract
from contracts.platform import batch_of, declare_ping

SERVICE = "consultation"

ItemId = Field(pattern=r"^[A-Za-z0-9_-]{1,40}$")
RefId = Field(pattern=r"^[A-Za-z0-9_-]{1,80}$")
Slug = r"^[a-z0-9]+(?:-[a-z0-9]+)*$"
Cursor = Field(default=None, max_length=200)

Kind = Literal["SURVEY", "CONSULTATION", "BUDGET"]
Audience = Literal["PUBLIC", "PANEL"]
State = Literal["DRAFT", "SCHEDULED", "OPEN", "CLOSED", "RESULTS_PUBLISHED", "ARCHIVED"]
ScopeKind = Literal["TERRITORY", "COMMUNES"]
Origin = Literal["WEB", "BOOTH", "LETTER"]


# -- the consultation -----------------------------------------------------------------------------
class Scope(Model):
    """Who the consultation concerns: the whole territory (the 36 communes), or some communes."""

    kind: ScopeKind = "TERRITORY"
    communes: list[str] = Field(default_factory=list, max_length=36, description="commune slugs, kind COMMUNES only")


class Meeting(Model):
    """A public meeting of the consultation (the agenda may show it as an event)."""

    title: str = Field(max_length=500)
    starts_at: datetime = Field(description="Europe/Paris wall time when naive; stored as UTC")
    ends_at: datetime
    place: str = Field(default="", max_length=200)
    commune: str = Field(pattern=Slug, max_length=80)


# -- forms ------------------------------------------------------------------------------------------
QuestionType = Literal["SHORT_TEXT", "LONG_TEXT", "SINGLE_CHOICE", "MULTIPLE_CHOICE", "RANKING", "RATING",
                       "MATRIX_SINGLE", "MATRIX_MULTIPLE", "YES_NO", "SECTION"]
ConditionOperator = Literal["EQUALS", "DIFFERS"]


class Option(Model):
    id: str = ItemId
    label: str = Field(max_length=500)
    free_text: bool = Field(default=False, description="'other, please say': choosing it asks for a text")


class MatrixRow(Model):
    id: str = ItemId
    label: str = Field(max_length=500)


class ScaleLabel(Model):
    value: int
    label: str = Field(max_length=100)


class RatingScale(Model):
    """1-5 or 0-10; labels name some points (e.g. 1 'Pas du tout satisfait', 5 'Très satisfait')."""

    min: Literal[0, 1] = 1
    max: Literal[5, 10] = 5
    labels: list[ScaleLabel] = Field(default_factory=list, max_length=11)


class DisplayCondition(Model):
    """Show the question only when an earlier question's answer EQUALS (includes) or DIFFERS from `value`.

    `value` is an option id (single or multiple choice), `yes` or `no` (yes/no), or a number (rating). DIFFERS
    holds only when the earlier question was answered (as Decidim's not_equal). All conditions must hold."""

    question_id: str = ItemId
    operator: ConditionOperator = "EQUALS"
    value: str = Field(max_length=40)


class QuestionInput(Model):
    id: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_-]{1,40}$",
                           description="kept when given; the service makes one otherwise")
    type: QuestionType
    label: str = Field(max_length=1000)
    description: str = Field(default="", max_length=5000)
    mandatory: bool = False
    position: int | None = Field(default=None, ge=1, le=1000, description="1 = first; at the end when absent")
    options: list[Option] = Field(default_factory=list, max_length=100,
                                  description="choices, ranking items, matrix columns; yes/no has its own")
    rows: list[MatrixRow] = Field(default_factory=list, max_length=100, description="matrix rows")
    max_characters: int | None = Field(default=None, ge=1, le=100_000, description="text questions")
    min_choices: int | None = Field(default=None, ge=0, le=100, description="multiple choice (per row in a matrix)")
    max_choices: int | None = Field(default=None, ge=1, le=100, description="multiple choice (per row in a matrix)")
    scale: RatingScale | None = Field(default=None, description="rating questions")
    conditions: list[DisplayCondition] = Field(default_factory=list, max_length=10)


class Question(QuestionInput):
    id: str = ItemId
    position: int = Field(ge=1)


class LabelChange(Model):
    question_id: str
    path: str = Field(description="'label', 'description', 'options.<id>', 'rows.<id>' or 'scale.<value>'")
    before: str
    after: str


class Revision(Model):
    """A label typo fixed after the first response (the only change then allowed)."""

    at: datetime
    actor: str | None = None
    changes: list[LabelChange]


class MatrixAnswer(Model):
    row_id: str = ItemId
    choices: list[str] = Field(default_factory=list, max_length=100, description="option ids")


class Answer(Model):
    question_id: str = ItemId
    text: str | None = Field(default=None, max_length=100_000, description="text questions")
    choices: list[str] = Field(default_factory=list, max_length=100,
                               description="option ids; yes/no: 'yes' or 'no'; ranking: all options, preferred first")
    other_text: str | None = Field(default=None, max_length=5000, description="the text of the free-text option chosen")
    rating: int | None = Field(default=None, ge=-1000, le=1000,
                               description="rating questions; the service checks the scale's bounds (in French)")
    rows: list[MatrixAnswer] = Field(default_factory=list, max_length=100, description="matrix answers per row")


ResponseStatus = Literal["DRAFT", "SUBMITTED"]


# -- participatory budget ---------------------------------------------------------------------------
PhaseKind = Literal["INFORMING", "ACCEPTING", "REVIEWING", "SELECTING", "VALUATING", "PUBLISHING_PRICES",
                    "BALLOTING", "REVIEWING_BALLOTS", "FINISHED"]
VotingRuleKind = Literal["KNAPSACK", "APPROVAL"]
TieBreak = Literal["LOWER_PRICE", "HIGHER_PRICE", "EARLIER_SUBMISSION", "LOT"]
ModerationState = Literal["SUBMITTED", "APPROVED", "REJECTED"]
Feasibility = Literal["UNDECIDED", "FEASIBLE", "UNFEASIBLE"]


class BudgetPhase(Model):
    """One of CONSUL's phases. Enabled phases follow each other without gap in this order; FINISHED may have no
    end. Disabled phases are skipped."""

    kind: PhaseKind
    enabled: bool = True
    starts_at: datetime | None = Field(default=None, description="Europe/Paris wall time when naive")
    ends_at: datetime | None = None
    summary: str = Field(default="", max_length=1000)


class Heading(Model):
    """Where a voter votes: a commune, a group of communes, or the whole territory (no communes)."""

    id: str = ItemId
    name: str = Field(max_length=200)
    communes: list[str] = Field(default_factory=list, max_length=36, description="commune slugs; none: the territory")
    amount_cents: int = Field(ge=1, le=10**13)
    max_projects: int | None = Field(default=None, ge=1, le=200, description="approval rule: overrides the budget's N")
    population: int | None = Field(default=None, ge=0)


class VotingRule(Model):
    """KNAPSACK: the chosen projects' prices fit the heading's amount, and reach `min_share_percent` of it when set
    (Decidim's 70 %). APPROVAL: at most `max_projects` projects (each counts 1), at least `min_projects`."""

    kind: VotingRuleKind = "KNAPSACK"
    min_share_percent: int | None = Field(default=None, ge=1, le=100)
    max_projects: int | None = Field(default=None, ge=1, le=200)
    min_projects: int | None = Field(default=None, ge=1, le=200)


class BudgetSettings(Model):
    phases: list[BudgetPhase] = Field(max_length=9)
    headings: list[Heading] = Field(min_length=1, max_length=50)
    rule: VotingRule = Field(default_factory=VotingRule)
    max_headings_per_voter: int = Field(default=1, ge=1, le=50, description="a voter votes in one heading unless more")
    tie_break: TieBreak = Field(default="LOWER_PRICE", description="how projects with as many votes are ordered")
    tie_break_seed: str | None = Field(default=None, max_length=200,
                                       description="LOT: the public seed of the draw, stated before the vote")
    instance: str | None = Field(default=None, max_length=40, description="edition, e.g. '2026' (Pabulib 'instance')")


class GeoPoint(Model):
    lat: float = Field(ge=-90, le=90)
    lon: float = Field(ge=-180, le=180)


class ProjectInput(Model):
    title: str = Field(max_length=500)
    description: str = Field(default="", max_length=50_000)
    heading_id: str = ItemId
    estimated_cost_cents: int = Field(ge=0, le=10**13)
    location: GeoPoint | None = None
    address: str = Field(default="", max_length=300)


class ProjectVotes(Model):
    online: int
    paper: int
    total: int


class ProjectView(Model):
    id: str
    budget_id: str
    heading_id: str
    heading_name: str
    title: str
    description: str
    estimated_cost_cents: int
    location: GeoPoint | None = None
    address: str = ""
    author: str | None = Field(default=None, description="subject of the author: agents and the author only")
    mine: bool = False
    moderation: ModerationState
    rejection_reason: str | None = None
    feasibility: Feasibility = "UNDECIDED"
    unfeasibility_explanation: str | None = None
    price_cents: int | None = Field(default=None, description="public from PUBLISHING_PRICES on")
    price_explanation: str | None = None
    selected: bool = Field(default=False, description="on the ballot")
    supports: int = 0
    votes: ProjectVotes | None = Field(default=None, description="only once results are published")
    winner: bool | None = Field(default=None, description="only once results are published")
    submitted_at: datetime
    updated_at: datetime
    url: str


class HeadingBallot(Model):
    heading_id: str = ItemId
    project_ids: list[str] = Field(default_factory=list, max_length=200)


# -- views of a consultation ------------------------------------------------------------------------
class PhaseView(BudgetPhase):
    current: bool = False


class BudgetView(Model):
    phases: list[PhaseView]
    current_phase: PhaseKind | None = None
    headings: list[Heading]
    rule: VotingRule
    max_headings_per_voter: int
    tie_break: TieBreak
    tie_break_seed: str | None = None
    instance: str | None = None


class ConsultationInput(Model):
    title: str = Field(max_length=500)
    summary: str = Field(default="", max_length=2000)
    description: str = Field(default="", max_length=50_000,
                             description="Markdown (HTML is shown as text); the service renders it, sanitised")
    kind: Kind
    scope: Scope = Field(default_factory=Scope)
    audience: Audience = "PUBLIC"
    secret: bool = Field(default=False, description="secret ballot; a BUDGET always is")
    opens_at: datetime | None = Field(default=None, description="Europe/Paris wall time when naive; a BUDGET's "
                                                                 "window is its phases'")
    closes_at: datetime | None = None
    meetings: list[Meeting] = Field(default_factory=list, max_length=50)
    budget: BudgetSettings | None = Field(default=None, description="kind BUDGET only")


class ConsultationView(Model):
    id: str
    title: str
    summary: str
    description: str
    description_html: str = ""
    kind: Kind
    scope: Scope
    audience: Audience
    secret: bool
    opens_at: datetime | None = None
    closes_at: datetime | None = None
    state: State
    meetings: list[Meeting] = []
    questions: list[Question] = []
    questions_locked: bool = Field(default=False, description="a response exists: only label typos may change")
    revisions: list[Revision] = []
    budget: BudgetView | None = None
    participants: int | None = Field(default=None, description="visible from opening on")
    results_published_at: datetime | None = None
    created_at: datetime
    updated_at: datetime
    created_by: str | None = None
    url: str


class ConsultationFilter(Model):
    kinds: list[Kind] = Field(default_factory=list, max_length=3)
    states: list[State] = Field(default_factory=list, max_length=6, description="the public sees non-draft states")
    communes: list[str] = Field(default_factory=list, max_length=36, description="concerning these communes (or all)")
    audience: Audience | None = None
    text: str | None = Field(default=None, max_length=200)


class ListConsultations(Model):
    filter: ConsultationFilter = Field(default_factory=ConsultationFilter)
    first: int = Field(default=20, ge=1, le=100)
    after: str | None = Cursor


class ConsultationPage(Model):
    items: list[ConsultationView]
    cursors: list[str] = Field(default_factory=list, description="opaque keyset cursor of each item")
    total: int
    end_cursor: str | None = None
    has_next: bool = False


class ConsultationRef(Model):
    id: str = RefId


class CreateConsultation(Model):
    consultation: ConsultationInput
    questions: list[QuestionInput] = Field(default_factory=list, max_length=300)


class UpdateConsultation(Model):
    id: str = RefId
    consultation: ConsultationInput


class CloseConsultation(Model):
    id: str = RefId
    reason: str | None = Field(default=None, max_length=2000)


# -- form acts --------------------------------------------------------------------------------------
class AddQuestion(Model):
    consultation_id: str = RefId
    question: QuestionInput


class UpdateQuestion(Model):
    """Before the first response anything may change; after it only label typos (recorded as a revision)."""

    consultation_id: str = RefId
    question: Question


class RemoveQuestion(Model):
    consultation_id: str = RefId
    question_id: str = ItemId


class ReorderQuestions(Model):
    consultation_id: str = RefId
    question_ids: list[str] = Field(max_length=300, description="every question id, in the new order")


# -- responses --------------------------------------------------------------------------------------
class SaveResponse(Model):
    consultation_id: str = RefId
    answers: list[Answer] = Field(default_factory=list, max_length=300)


class ResponseView(Model):
    consultation_id: str
    status: ResponseStatus
    answers: list[Answer]
    saved_at: datetime
    submitted_at: datetime | None = None
    final: bool = Field(default=False, description="a secret response is final once submitted")
    receipt_code: str | None = Field(default=None, description="secret consultations: given once, at submission")


class GetMyResponse(Model):
    consultation_id: str = RefId


# -- budget acts ------------------------------------------------------------------------------------
class AdvanceBudgetPhase(Model):
    budget_id: str = RefId
    to: PhaseKind = Field(description="the next enabled phase: the current one ends now")


class ProposeProject(Model):
    budget_id: str = RefId
    project: ProjectInput


class UpdateProject(Model):
    project_id: str = RefId
    project: ProjectInput


class ProjectRef(Model):
    project_id: str = RefId


class ModerateProject(Model):
    project_id: str = RefId
    decision: Literal["APPROVE", "REJECT"]
    reason: str | None = Field(default=None, max_length=2000, description="required to reject")


class AssessProject(Model):
    """VALUATING: feasible (with its price, now or by price_project) or unfeasible (with an explanation)."""

    project_id: str = RefId
    feasibility: Feasibility
    explanation: str | None = Field(default=None, max_length=5000)
    price_cents: int | None = Field(default=None, ge=1, le=10**13)


class PriceProject(Model):
    project_id: str = RefId
    price_cents: int = Field(ge=1, le=10**13)
    price_explanation: str = Field(default="", max_length=5000)


class SelectProjects(Model):
    """Put feasible, priced, approved projects on the ballot (or take them off) before BALLOTING."""

    budget_id: str = RefId
    project_ids: list[str] = Field(min_length=1, max_length=500)
    selected: bool = True


class CastBudgetBallot(Model):
    budget_id: str = RefId
    headings: list[HeadingBallot] = Field(min_length=1, max_length=50)


class BallotReceipt(Model):
    consultation_id: str
    receipt_code: str = Field(description="shown once; with it the voter finds his ballot in the published list")
    headings: list[HeadingBallot] = []


class ProjectFilter(Model):
    moderation: list[ModerationState] = Field(default_factory=list, max_length=3,
                                              description="agents; the public sees approved projects")
    feasibility: list[Feasibility] = Field(default_factory=list, max_length=3)
    selected: bool | None = None
    winners: bool | None = Field(default=None, description="once results are published")
    mine: bool = False
    text: str | None = Field(default=None, max_length=200)


class ListProjects(Model):
    budget_id: str = RefId
    heading_id: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_-]{1,40}$")
    filter: ProjectFilter = Field(default_factory=ProjectFilter)
    first: int = Field(default=20, ge=1, le=200)
    after: str | None = Cursor


class ProjectPage(Model):
    items: list[ProjectView]
    cursors: list[str] = Field(default_factory=list)
    total: int
    end_cursor: str | None = None
    has_next: bool = False


# -- panel, booths, paper ---------------------------------------------------------------------------
class ImportPanelMembers(Model):
    """Agents paste the panel's email addresses; only their keyed hashes are stored."""

    consultation_id: str = RefId
    emails: list[str] = Field(min_length=1, max_length=10_000)
    replace: bool = Field(default=False, description="the list replaces the current members")


class PanelImportReport(Model):
    added: int
    already_members: int
    removed: int
    invalid: list[str] = Field(default_factory=list, description="lines that are not email addresses, to fix")
    members: int


class CheckInVoter(Model):
    """An agent records that a citizen voted at a booth (or by letter): an online ballot is then refused."""

    consultation_id: str = RefId
    booth_id: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_-]{1,80}$", description="required for BOOTH")
    email: str | None = Field(default=None, max_length=254)
    phone: str | None = Field(default=None, max_length=32)
    origin: Literal["BOOTH", "LETTER"] = "BOOTH"


class CheckInReport(Model):
    consultation_id: str
    origin: Origin
    booth_id: str | None = None
    checked_in_at: datetime


class PaperBallot(Model):
    """One ballot of a sheet: a budget ballot, a survey's answers, or a blank or spoiled (null) paper."""

    headings: list[HeadingBallot] = Field(default_factory=list, max_length=50)
    answers: list[Answer] = Field(default_factory=list, max_length=300)
    blank: bool = False
    null: bool = Field(default=False, description="spoiled: counted as participation, not as a vote")


class EnterPaperBallots(Model):
    """A ballot sheet, entered one ballot at a time (CONSUL's ballot sheet). Two agents enter the same sheet:
    it counts once both entries agree."""

    consultation_id: str = RefId
    booth_id: str = Field(pattern=r"^[A-Za-z0-9_-]{1,80}$")
    sheet_ref: str = Field(pattern=r"^[A-Za-z0-9_-]{1,40}$", description="the number written on the sheet")
    ballots: list[PaperBallot] = Field(min_length=1, max_length=2000)


class ProjectTotal(Model):
    project_id: str = RefId
    votes: int = Field(ge=0, le=10**7)


class OptionTotal(Model):
    question_id: str = ItemId
    option_id: str = Field(pattern=r"^[A-Za-z0-9_-]{1,40}$", description="an option id, 'yes' / 'no', or a rating")
    row_id: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_-]{1,40}$", description="matrix row")
    votes: int = Field(ge=0, le=10**7)


class EnterPaperTotals(Model):
    """A booth's count: totals per project or option (Decidim's paper ballot results), with blank, null and the
    number of ballots in the box (CONSUL's recount). Entered twice, like ballot sheets."""

    consultation_id: str = RefId
    booth_id: str = Field(pattern=r"^[A-Za-z0-9_-]{1,80}$")
    sheet_ref: str = Field(pattern=r"^[A-Za-z0-9_-]{1,40}$", description="the tally sheet's number")
    ballots: int = Field(ge=0, le=10**7, description="papers in the box, blank and null included")
    blank: int = Field(default=0, ge=0, le=10**7)
    null: int = Field(default=0, ge=0, le=10**7)
    projects: list[ProjectTotal] = Field(default_factory=list, max_length=500)
    options: list[OptionTotal] = Field(default_factory=list, max_length=5000)


PaperEntryStatus = Literal["AWAITING_SECOND_ENTRY", "MATCHED", "MISMATCH"]


class EntryDifference(Model):
    path: str = Field(description="what differs, e.g. 'ballots.3.headings.labege' or 'projects.p12'")
    first: str | None = None
    second: str | None = None


class PaperEntryView(Model):
    id: str
    consultation_id: str
    booth_id: str
    sheet_ref: str
    kind: Literal["BALLOTS", "TOTALS"]
    status: PaperEntryStatus
    entries: int
    agents: list[str] = Field(default_factory=list, description="subjects of the agents who entered it")
    differences: list[EntryDifference] = Field(default_factory=list)
    updated_at: datetime


class ListPaperEntries(Model):
    consultation_id: str = RefId
    statuses: list[PaperEntryStatus] = Field(default_factory=list, max_length=3)
    first: int = Field(default=50, ge=1, le=500)
    after: str | None = Cursor


class PaperEntryPage(Model):
    items: list[PaperEntryView]
    total: int
    end_cursor: str | None = None
    has_next: bool = False


# -- participations, results, receipts, exports -----------------------------------------------------
class MyParticipations(Model):
    first: int = Field(default=50, ge=1, le=200)
    after: str | None = Cursor


class ParticipationView(Model):
    """That the caller took part, never what he chose (a secret ballot cannot be joined to its voter)."""

    consultation_id: str
    title: str
    kind: Kind
    state: State
    origin: Origin
    status: Literal["DRAFT", "SUBMITTED", "VOTED"]
    participated_at: datetime
    closes_at: datetime | None = None


class ParticipationPage(Model):
    items: list[ParticipationView]
    end_cursor: str | None = None
    has_next: bool = False


class Participation(Model):
    web: int = 0
    booth: int = Field(default=0, description="voters checked in at a booth")
    letter: int = 0
    paper_ballots: int = Field(default=0, description="paper ballots counted (agreed entries), blank and null included")
    blank: int = 0
    null: int = 0
    total: int = 0


class OptionCount(Model):
    option_id: str
    label: str
    count: int
    percent: float | None = Field(default=None, description="of the question's respondents (of the row's in a matrix)")


class RowCounts(Model):
    row_id: str
    label: str
    answered: int
    options: list[OptionCount]


class RankingScore(Model):
    option_id: str
    label: str
    points: int = Field(description="Borda: with n items, first place n-1 points ... last 0")
    first_places: int
    mean_position: float | None = Field(default=None, description="1 = first")


class RatingCount(Model):
    value: int
    count: int


class RatingResult(Model):
    mean: float | None = None
    distribution: list[RatingCount]


class QuestionResult(Model):
    question_id: str
    type: QuestionType
    label: str
    answered: int
    options: list[OptionCount] = []
    rows: list[RowCounts] = []
    ranking: list[RankingScore] = []
    rating: RatingResult | None = None
    other_texts: int = Field(default=0, description="'other' texts given (not charted)")
    charted: bool = Field(default=True, description="false for free text: counted, never charted")


class ProjectResult(Model):
    project_id: str
    title: str
    price_cents: int
    votes: ProjectVotes
    winner: bool
    rank: int


class HeadingResult(Model):
    heading_id: str
    name: str
    amount_cents: int
    spent_cents: int
    remaining_cents: int
    projects: list[ProjectResult]
    winners: list[str]


class ConsultationResults(Model):
    consultation_id: str
    kind: Kind
    state: State
    published_at: datetime | None = None
    participation: Participation
    questions: list[QuestionResult] = []
    headings: list[HeadingResult] = []
    tie_break: TieBreak | None = None
    paper_entries_excluded: int = Field(default=0,
                                        description="sheets kept out of the count (mismatch or single entry)")


class ListReceipts(Model):
    consultation_id: str = RefId
    first: int = Field(default=500, ge=1, le=2000)
    after: str | None = Cursor


class ReceiptEntry(Model):
    """A receipt code and the ballot it was given for, as counted; free texts are never published."""

    receipt_code: str
    headings: list[HeadingBallot] = []
    answers: list[Answer] = []


class ReceiptPage(Model):
    items: list[ReceiptEntry]
    total: int
    end_cursor: str | None = None
    has_next: bool = False


class VerifyReceipt(Model):
    consultation_id: str = RefId
    receipt_code: str = Field(max_length=40)


class ExportResults(Model):
    consultation_id: str = RefId
    format: Literal["CSV", "JSON", "PABULIB"]
    heading_id: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_-]{1,40}$",
                                   description="PABULIB: one file per heading (the format holds one budget)")


class ExportFile(Model):
    filename: str
    content_type: str
    content: str
    licence: str = "Licence Ouverte / Open Licence 2.0 (Etalab)"


# -- events -----------------------------------------------------------------------------------------
class ConsultationFacts(EventContract):
    """Fields every consultation event carries (base, not an event itself)."""

    id: str = Field(description="the consultation id")
    title: str
    kind: Kind
    audience: Audience
    scope: Scope
    secret: bool
    opens_at: datetime | None = None
    closes_at: datetime | None = None
    url: str = Field(description="public URL path, e.g. /consultations/<id>")
    actor: str | None = Field(default=None, description="subject of the agent who acted; none for the clock")
    meetings: list[Meeting] = Field(default_factory=list, description="its public meetings (the agenda shows them)")


class ConsultationScheduled(ConsultationFacts):
    event_type = "consultation.scheduled"
    summary = "An agent scheduled a consultation: it opens at opens_at by itself"


class ConsultationOpened(ConsultationFacts):
    event_type = "consultation.opened"
    summary = "A consultation opened (by the clock or by an agent): citizens may answer or vote"


class ConsultationClosed(ConsultationFacts):
    event_type = "consultation.closed"
    summary = "A consultation closed (by the clock or by an agent); results stay hidden until published"
    participants: int


class ResultsPublished(ConsultationFacts):
    event_type = "consultation.results_published"
    summary = "An agent published a closed consultation's results"
    participants: int
    results_url: str


class ConsultationArchived(ConsultationFacts):
    event_type = "consultation.archived"
    summary = "A consultation was archived: no longer listed with the current ones"


class BudgetPhaseChanged(EventContract):
    event_type = "consultation.budget_phase_changed"
    summary = "A participatory budget entered another phase (by its dates or by an agent)"
    budget_id: str
    title: str
    scope: Scope
    previous: PhaseKind | None = None
    phase: PhaseKind
    starts_at: datetime | None = None
    ends_at: datetime | None = None
    url: str
    actor: str | None = None


class ProjectFacts(EventContract):
    """Fields every project event carries (base, not an event itself)."""

    project_id: str
    budget_id: str
    heading_id: str
    title: str
    author: str = Field(description="subject of the citizen who proposed it")
    url: str


class ProjectSubmitted(ProjectFacts):
    event_type = "consultation.project_submitted"
    summary = "A citizen proposed a project for a participatory budget: it awaits moderation"


class ProjectModerated(ProjectFacts):
    event_type = "consultation.project_moderated"
    summary = "An agent approved or rejected a proposed project (with a reason for its author)"
    decision: Literal["APPROVE", "REJECT"]
    reason: str | None = None
    actor: str | None = None


class ProjectAssessed(ProjectFacts):
    event_type = "consultation.project_assessed"
    summary = "Agents found a project feasible (with its price) or unfeasible (with an explanation)"
    feasibility: Feasibility
    explanation: str | None = None
    price_cents: int | None = None
    actor: str | None = None


# -- RPC --------------------------------------------------------------------------------------------
PING = declare_ping(SERVICE)
CREATE_CONSULTATION = RpcContract(SERVICE, "create_consultation", CreateConsultation, ConsultationView,
                                  "An agent drafts a consultation, survey or budget (with its questions)")
UPDATE_CONSULTATION = RpcContract(SERVICE, "update_consultation", UpdateConsultation, ConsultationView,
                                  "Change a consultation; once open only texts and its closing time (agent)")
SCHEDULE_CONSULTATION = RpcContract(SERVICE, "schedule_consultation", ConsultationRef, ConsultationView,
                                    "A draft with a valid form and window: it opens by itself at opens_at (agent)")
UNSCHEDULE_CONSULTATION = RpcContract(SERVICE, "unschedule_consultation", ConsultationRef, ConsultationView,
                                      "Back to draft before it opens (agent)")
OPEN_CONSULTATION = RpcContract(SERVICE, "open_consultation", ConsultationRef, ConsultationView,
                                "Open a scheduled consultation now (agent)")
CLOSE_CONSULTATION = RpcContract(SERVICE, "close_consultation", CloseConsultation, ConsultationView,
                                 "Close an open consultation now (agent)")
PUBLISH_RESULTS = RpcContract(SERVICE, "publish_results", ConsultationRef, ConsultationView,
                              "Publish a closed consultation's results (agent); until then nobody sees counts")
ARCHIVE_CONSULTATION = RpcContract(SERVICE, "archive_consultation", ConsultationRef, ConsultationView,
                                   "Archive a consultation that is not open (agent)")
ADD_QUESTION = RpcContract(SERVICE, "add_question", AddQuestion, ConsultationView,
                           "Add a question to a form without responses (agent)")
UPDATE_QUESTION = RpcContract(SERVICE, "update_question", UpdateQuestion, ConsultationView,
                              "Change a question; after the first response only label typos, recorded (agent)")
REMOVE_QUESTION = RpcContract(SERVICE, "remove_question", RemoveQuestion, ConsultationView,
                              "Remove a question from a form without responses (agent)")
REORDER_QUESTIONS = RpcContract(SERVICE, "reorder_questions", ReorderQuestions, ConsultationView,
                                "Reorder a form without responses (agent)")
SAVE_RESPONSE = RpcContract(SERVICE, "save_response", SaveResponse, ResponseView,
                            "Save the caller's draft answers (citizen)")
SUBMIT_RESPONSE = RpcContract(SERVICE, "submit_response", SaveResponse, ResponseView,
                              "Submit the caller's answers, validated against the form (citizen)")
GET_MY_RESPONSE = RpcContract(SERVICE, "get_my_response", GetMyResponse, ResponseView,
                              "The caller's draft or submitted answers (not for secret consultations once cast)")
ADVANCE_BUDGET_PHASE = RpcContract(SERVICE, "advance_budget_phase", AdvanceBudgetPhase, ConsultationView,
                                   "End the current phase now and start the next enabled one (agent)")
PROPOSE_PROJECT = RpcContract(SERVICE, "propose_project", ProposeProject, ProjectView,
                              "A citizen proposes a project during ACCEPTING")
UPDATE_PROJECT = RpcContract(SERVICE, "update_project", UpdateProject, ProjectView,
                             "Its author changes a project during ACCEPTING (it goes back to moderation)")
MODERATE_PROJECT = RpcContract(SERVICE, "moderate_project", ModerateProject, ProjectView,
                               "Approve or reject a proposed project, with a reason (agent)")
SUPPORT_PROJECT = RpcContract(SERVICE, "support_project", ProjectRef, ProjectView,
                              "Support a project during SELECTING, once per citizen and project (citizen)")
ASSESS_PROJECT = RpcContract(SERVICE, "assess_project", AssessProject, ProjectView,
                             "Feasible or unfeasible, with explanation, during VALUATING (agent)")
PRICE_PROJECT = RpcContract(SERVICE, "price_project", PriceProject, ProjectView,
                            "Set a feasible project's price during VALUATING (agent)")
SELECT_PROJECTS = RpcContract(SERVICE, "select_projects", SelectProjects, list[ProjectView],
                              "Put projects on the ballot, or take them off, before BALLOTING (agent)")
CAST_BUDGET_BALLOT = RpcContract(SERVICE, "cast_budget_ballot", CastBudgetBallot, BallotReceipt,
                                 "Cast the caller's secret, final budget ballot during BALLOTING (citizen)")
CAST_BUDGET_BALLOTS = batch_of(CAST_BUDGET_BALLOT, "cast_budget_ballots")
IMPORT_PANEL_MEMBERS = RpcContract(SERVICE, "import_panel_members", ImportPanelMembers, PanelImportReport,
                                   "Set a PANEL consultation's members from email addresses (agent)")
CHECK_IN_VOTER = RpcContract(SERVICE, "check_in_voter", CheckInVoter, CheckInReport,
                             "Record that a citizen voted at a booth or by letter (agent)")
ENTER_PAPER_BALLOTS = RpcContract(SERVICE, "enter_paper_ballots", EnterPaperBallots, PaperEntryView,
                                  "Enter a paper ballot sheet, one ballot at a time; double entry (agent)")
ENTER_PAPER_TOTALS = RpcContract(SERVICE, "enter_paper_totals", EnterPaperTotals, PaperEntryView,
                                 "Enter a booth's totals per project or option; double entry (agent)")
LIST_PAPER_ENTRIES = RpcContract(SERVICE, "list_paper_entries", ListPaperEntries, PaperEntryPage,
                                 "Paper entries and their double-entry status, mismatches first (agent)")
LIST_CONSULTATIONS = RpcContract(SERVICE, "list_consultations", ListConsultations, ConsultationPage,
                                 "Consultations the caller may see, filtered, keyset-paged")
GET_CONSULTATION = RpcContract(SERVICE, "get_consultation", ConsultationRef, ConsultationView,
                               "One consultation, as the caller may see it")
MY_PARTICIPATIONS = RpcContract(SERVICE, "my_participations", MyParticipations, ParticipationPage,
                                "Where the caller took part (never what he chose)")
CONSULTATION_RESULTS = RpcContract(SERVICE, "consultation_results", ConsultationRef, ConsultationResults,
                                   "Published results; before publication only participation, for everyone")
LIST_PROJECTS = RpcContract(SERVICE, "list_projects", ListProjects, ProjectPage,
                            "A budget's projects, by heading and filter, keyset-paged")
GET_PROJECT = RpcContract(SERVICE, "get_project", ProjectRef, ProjectView, "One project, as the caller may see it")
LIST_RECEIPTS = RpcContract(SERVICE, "list_receipts", ListReceipts, ReceiptPage,
                            "After closing: every receipt code with its ballot, by code")
VERIFY_RECEIPT = RpcContract(SERVICE, "verify_receipt", VerifyReceipt, ReceiptEntry,
                             "After closing: the ballot counted for a receipt code")
EXPORT_RESULTS = RpcContract(SERVICE, "export_results", ExportResults, ExportFile,
                             "Published results as CSV, JSON or Pabulib (.pb), under Licence Ouverte")
