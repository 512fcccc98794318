"""Pure participatory budget rules (its phases are in phases.py): headings and the two voting rules, projects'
moderation, supports and assessment, ballot validation with CONSUL's refusal reasons in French, paper totals'
sanity, and the winners of each heading computed from vote counters; no I/O.

Winners (CONSUL's Budget::Result): per heading, the projects on the ballot sorted by votes (online + paper), each a
winner while its price fits what is left of the heading's amount — a project that does not fit is skipped and the
next ones still get their chance. CONSUL breaks ties by database id, newest first, without saying so; here the
budget states its rule (TieBreak), and the last resort (submission time, then id) is written down too.
"""
from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Iterable, Mapping

from contracts.consultation import BudgetSettings, EnterPaperTotals, Heading, HeadingBallot, ProjectInput
from contracts.errors import BadInput, Conflict
from services.consultation.domain import format_euros
from services.consultation.phases import phase_label, validate_phases

# Agents moderate proposals until the ballot is drawn up; prices are public from PUBLISHING_PRICES on (CONSUL).
MODERATION_PHASES = frozenset({"ACCEPTING", "REVIEWING", "SELECTING", "VALUATING"})
SELECTION_PHASES = frozenset({"SELECTING", "VALUATING", "PUBLISHING_PRICES"})
PRICES_PUBLIC_PHASES = frozenset({"PUBLISHING_PRICES", "BALLOTING", "REVIEWING_BALLOTS", "FINISHED"})
MIN_TITLE, MAX_TITLE, MAX_DESCRIPTION = 4, 160, 10_000


# -- the budget -------------------------------------------------------------------------------------
def validate_budget(settings: BudgetSettings, communes: set[str]) -> BudgetSettings:
    """Phases, headings and voting rule, checked and normalised; BadInput naming the first fault."""
    phases = validate_phases(settings.phases)
    seen: set[str] = set()
    placed: dict[str, str] = {}
    headings = []
    for h in settings.headings:
        where = f"headings.{h.id}"
        if h.id in seen:
            raise BadInput(f"Deux sections portent l'identifiant « {h.id} ».", where)
        seen.add(h.id)
        name = h.name.strip()
        if not name:
            raise BadInput("Chaque section a un nom.", where)
        if h.amount_cents < 100:
            raise BadInput(f"Section « {name} » : montant d'un euro au moins.", where)
        for slug in h.communes:
            if slug not in communes:
                raise BadInput(f"Section « {name} » : « {slug} » n'est pas une commune du Sicoval.", where)
            if slug in placed and placed[slug] != h.id:
                raise BadInput(f"La commune « {slug} » est dans deux sections : un habitant vote dans une seule.",
                               where)
            placed[slug] = h.id
        if h.max_projects is not None and settings.rule.kind != "APPROVAL":
            raise BadInput(f"Section « {name} » : un nombre maximal de projets ne vaut que pour le vote par "
                           "approbation.", where)
        headings.append(h.model_copy(update={"name": name, "communes": sorted(set(h.communes))}))
    rule = settings.rule
    if rule.kind == "KNAPSACK" and (rule.max_projects is not None or rule.min_projects is not None):
        raise BadInput("Vote par enveloppe : c'est le montant de la section qui limite les choix, pas un nombre "
                       "de projets.", "rule")
    if rule.kind == "APPROVAL":
        if rule.min_share_percent is not None:
            raise BadInput("Vote par approbation : pas de part minimale du montant (c'est une règle d'enveloppe).",
                           "rule")
        if rule.max_projects is None and any(h.max_projects is None for h in headings):
            raise BadInput("Vote par approbation : indiquez combien de projets chacun peut choisir.", "rule")
        for h in headings:
            high = h.max_projects or rule.max_projects
            if rule.min_projects is not None and rule.min_projects > high:
                raise BadInput(f"Section « {h.name} » : au moins {rule.min_projects} projets et au plus {high}, "
                               "c'est impossible.", "rule")
    if settings.max_headings_per_voter > len(headings):
        raise BadInput(f"On ne peut voter que dans {len(headings)} section(s) au plus.", "max_headings_per_voter")
    if settings.tie_break == "LOT" and not (settings.tie_break_seed or "").strip():
        raise BadInput("Tirage au sort : donnez la graine publique du tirage avant le vote.", "tie_break_seed")
    return settings.model_copy(update={"phases": phases, "headings": headings})


def heading_max_projects(settings: BudgetSettings, heading: Heading) -> int | None:
    return heading.max_projects or settings.rule.max_projects


def min_share_cents(settings: BudgetSettings, heading: Heading) -> int | None:
    """The least a knapsack ballot must spend in a heading (rounded up to the cent), when the budget sets a share."""
    pct = settings.rule.min_share_percent
    if settings.rule.kind != "KNAPSACK" or pct is None:
        return None
    return -(-heading.amount_cents * pct // 100)


def heading_of_commune(settings: BudgetSettings, commune: str) -> str | None:
    """The heading a commune's residents vote in: the commune's own, else one covering the whole territory."""
    for h in settings.headings:
        if commune in h.communes:
            return h.id
    return next((h.id for h in settings.headings if not h.communes), None)


# -- projects ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Project:
    """What the rules need to know of a project (the service builds it from its document)."""

    id: str
    heading_id: str
    title: str
    moderation: str = "SUBMITTED"
    feasibility: str = "UNDECIDED"
    price_cents: int | None = None
    selected: bool = False
    submitted_at: datetime | None = None

    @property
    def on_ballot(self) -> bool:
        """CONSUL's `selected` scope: approved, feasible, priced and chosen for the vote."""
        return (self.moderation == "APPROVED" and self.feasibility == "FEASIBLE" and self.price_cents is not None
                and self.selected)


def validate_project(data: ProjectInput, settings: BudgetSettings) -> dict:
    """A proposal's fields to store; BadInput naming the first bad field."""
    title = data.title.strip()
    if len(title) < MIN_TITLE:
        raise BadInput(f"Titre : {MIN_TITLE} caractères au moins.", "title")
    if len(title) > MAX_TITLE:
        raise BadInput(f"Titre : {MAX_TITLE} caractères au plus ({len(title)} reçus).", "title")
    description = data.description.strip()
    if not description:
        raise BadInput("Description : dites en quelques lignes ce que le projet ferait et pour qui.", "description")
    if len(description) > MAX_DESCRIPTION:
        raise BadInput(f"Description : {MAX_DESCRIPTION} caractères au plus ({len(description)} reçus).",
                       "description")
    heading = next((h for h in settings.headings if h.id == data.heading_id), None)
    if heading is None:
        raise BadInput(f"Section inconnue : « {data.heading_id} ».", "heading_id")
    if data.estimated_cost_cents < 100:
        raise BadInput("Coût estimé : un euro au moins (une estimation suffit, les services la vérifieront).",
                       "estimated_cost_cents")
    if data.estimated_cost_cents > heading.amount_cents:
        raise BadInput(f"Coût estimé ({format_euros(data.estimated_cost_cents)}) : plus que le budget de la section "
                       f"« {heading.name} » ({format_euros(heading.amount_cents)}).", "estimated_cost_cents")
    return {"title": title, "description": description, "heading_id": heading.id,
            "estimated_cost_cents": data.estimated_cost_cents,
            "location": data.location.model_dump() if data.location else None, "address": data.address.strip()}


def check_proposing(phase: str | None) -> None:
    if phase != "ACCEPTING":
        raise Conflict(f"Le dépôt de projets n'est pas ouvert (phase « {phase_label(phase)} »).", "phase")


def check_author_edit(phase: str | None, is_author: bool) -> None:
    """Its author may change a proposal while proposals are open; it then goes back to moderation."""
    if not is_author:
        raise Conflict("Seul l'auteur d'un projet peut le modifier.", "author")
    check_proposing(phase)


MODERATION: dict[tuple[str, str], str] = {
    ("SUBMITTED", "APPROVE"): "APPROVED",
    ("SUBMITTED", "REJECT"): "REJECTED",
    ("REJECTED", "APPROVE"): "APPROVED",  # an agent may change his mind while moderation is open
    ("APPROVED", "REJECT"): "REJECTED",
}
MODERATION_LABELS = {"SUBMITTED": "soumis", "APPROVED": "accepté", "REJECTED": "refusé"}


def moderate(project: Project, decision: str, reason: str | None, phase: str | None) -> str:
    """The project's moderation state after an agent's decision; a rejection carries a reason for its author."""
    if phase not in MODERATION_PHASES:
        raise Conflict(f"La modération est close (phase « {phase_label(phase)} »).", "phase")
    new = MODERATION.get((project.moderation, decision))
    if new is None:
        raise Conflict(f"Le projet est déjà « {MODERATION_LABELS[project.moderation]} ».", "decision")
    if decision == "REJECT" and not (reason or "").strip():
        raise BadInput("Refus : donnez la raison à l'auteur du projet.", "reason")
    if decision == "REJECT" and project.selected:
        raise Conflict("Ce projet est retenu pour le vote : retirez-le d'abord du bulletin.", "decision")
    return new


def check_support(project: Project, phase: str | None, supported_headings: set[str], max_headings: int) -> None:
    """A citizen supports approved, not unfeasible projects during SELECTING, in as many headings as he may vote in
    (CONSUL's different_heading_assigned). Once per citizen and project is the store's unique key."""
    if phase != "SELECTING":
        raise Conflict(f"Les soutiens ne sont pas ouverts (phase « {phase_label(phase)} »).", "phase")
    if project.moderation != "APPROVED" or project.feasibility == "UNFEASIBLE":
        raise Conflict(f"Le projet « {project.title} » ne peut pas être soutenu.", "project_id")
    if project.heading_id not in supported_headings and len(supported_headings) >= max_headings:
        raise BadInput("Vous soutenez déjà des projets d'une autre section : on soutient et on vote dans "
                       + ("une seule section." if max_headings == 1 else f"{max_headings} sections au plus."),
                       "project_id")


ALREADY_SUPPORTED = "Vous soutenez déjà ce projet."


def assess(project: Project, feasibility: str, explanation: str | None, price_cents: int | None,
           heading: Heading, phase: str | None) -> dict:
    """The assessment fields to store (CONSUL's valuation): an unfeasible project needs an explanation (and leaves
    the ballot); a feasible one may get its price now or through price_project."""
    if phase != "VALUATING":
        raise Conflict(f"L'étude de faisabilité n'a pas lieu maintenant (phase « {phase_label(phase)} »).", "phase")
    if project.moderation != "APPROVED":
        raise Conflict("Seul un projet accepté à la modération est étudié.", "project_id")
    explanation = (explanation or "").strip() or None
    if feasibility == "UNFEASIBLE":
        if explanation is None:
            raise BadInput("Infaisable : expliquez pourquoi à l'auteur et au public.", "explanation")
        if price_cents is not None:
            raise BadInput("Un projet infaisable n'a pas de prix.", "price_cents")
        return {"feasibility": "UNFEASIBLE", "unfeasibility_explanation": explanation, "price_cents": None,
                "selected": False}
    if feasibility == "UNDECIDED":
        if project.selected:
            raise Conflict("Ce projet est retenu pour le vote : retirez-le d'abord du bulletin.", "feasibility")
        return {"feasibility": "UNDECIDED", "unfeasibility_explanation": None, "price_cents": None}
    out = {"feasibility": "FEASIBLE", "unfeasibility_explanation": None}
    if price_cents is not None:
        _check_price(price_cents, heading)
        out["price_cents"] = price_cents
    return out


def check_price(project: Project, price_cents: int, heading: Heading, phase: str | None) -> None:
    if phase != "VALUATING":
        raise Conflict(f"Les prix se fixent pendant l'étude de faisabilité (phase « {phase_label(phase)} »).", "phase")
    if project.feasibility != "FEASIBLE":
        raise Conflict("Seul un projet faisable reçoit un prix.", "project_id")
    _check_price(price_cents, heading)


def _check_price(price_cents: int, heading: Heading) -> None:
    # A project dearer than its heading could never win (CONSUL's results skip it; Pabulib's checker flags it).
    if price_cents > heading.amount_cents:
        raise BadInput(f"Prix ({format_euros(price_cents)}) : plus que le budget de la section « {heading.name} » "
                       f"({format_euros(heading.amount_cents)}).", "price_cents")


def check_selection(project: Project, selected: bool, phase: str | None) -> None:
    """Agents draw up the ballot before BALLOTING: only approved, feasible, priced projects go on it."""
    if phase not in SELECTION_PHASES:
        raise Conflict(f"Le bulletin ne change plus (phase « {phase_label(phase)} »).", "phase")
    if selected and not (project.moderation == "APPROVED" and project.feasibility == "FEASIBLE"
                         and project.price_cents is not None):
        raise BadInput(f"« {project.title} » : seul un projet accepté, faisable et chiffré va au vote.", project.id)


# -- ballots ----------------------------------------------------------------------------------------
def validate_ballot(settings: BudgetSettings, projects: Mapping[str, Project], ballot: list[HeadingBallot],
                    *, phase: str | None, voter_headings: set[str] | None = None) -> list[HeadingBallot]:
    """A budget ballot, normalised (headings in the budget's order, project ids sorted), or the refusal CONSUL would
    give, in French: no_ballots_allowed, different_heading_assigned, not_selected, not_enough_money (knapsack),
    not_enough_available_votes (approval). `voter_headings`, when known, are the headings the voter may vote in
    (his commune's); `phase=None` skips the phase check (paper ballots entered after the vote)."""
    if phase is not None and phase != "BALLOTING":
        raise Conflict(f"Le vote n'est pas ouvert : le budget est en phase « {phase_label(phase)} ».", "phase")
    headings = {h.id: h for h in settings.headings}
    if not ballot:
        raise BadInput("Choisissez au moins un projet.", "headings")
    chosen: dict[str, list[str]] = {}
    for hb in ballot:
        h = headings.get(hb.heading_id)
        where = f"headings.{hb.heading_id}"
        if h is None:
            raise BadInput(f"Section inconnue : « {hb.heading_id} ».", where)
        if hb.heading_id in chosen:
            raise BadInput(f"La section « {h.name} » figure deux fois dans le bulletin.", where)
        if voter_headings is not None and h.id not in voter_headings:
            raise BadInput(f"Vous ne pouvez pas voter dans la section « {h.name} » : on vote dans celle de sa "
                           "commune.", where)
        chosen[h.id] = _check_heading_lines(settings, h, projects, hb.project_ids)
    limit = settings.max_headings_per_voter
    if len(chosen) > limit:
        raise BadInput("On vote dans " + ("une seule section." if limit == 1 else f"{limit} sections au plus.")
                       + f" Votre bulletin en compte {len(chosen)}.", "headings")
    return [HeadingBallot(heading_id=h.id, project_ids=chosen[h.id]) for h in settings.headings if h.id in chosen]


def _check_heading_lines(settings: BudgetSettings, h: Heading, projects: Mapping[str, Project],
                         project_ids: list[str]) -> list[str]:
    where = f"headings.{h.id}"
    if not project_ids:
        raise BadInput(f"Choisissez au moins un projet dans la section « {h.name} ».", where)
    if len(set(project_ids)) != len(project_ids):
        raise BadInput(f"Un même projet figure deux fois dans la section « {h.name} ».", where)
    total = 0
    for pid in project_ids:
        p = projects.get(pid)
        if p is None:
            raise BadInput(f"Projet inconnu : « {pid} ».", f"{where}.{pid}")
        if p.heading_id != h.id:
            other = next((x.name for x in settings.headings if x.id == p.heading_id), p.heading_id)
            raise BadInput(f"Le projet « {p.title} » est dans la section « {other} », pas dans « {h.name} ».",
                           f"{where}.{pid}")
        if not p.on_ballot:
            raise BadInput(f"Le projet « {p.title} » n'est pas soumis au vote.", f"{where}.{pid}")
        total += p.price_cents
    n = len(project_ids)
    if settings.rule.kind == "KNAPSACK":
        if total > h.amount_cents:
            raise BadInput(f"Votre sélection dans « {h.name} » coûte {format_euros(total)} : plus que les "
                           f"{format_euros(h.amount_cents)} de la section. Retirez un projet.", where)
        least = min_share_cents(settings, h)
        if least is not None and total < least:
            raise BadInput(f"Votre sélection dans « {h.name} » doit atteindre au moins "
                           f"{settings.rule.min_share_percent} % du budget de la section, soit {format_euros(least)} "
                           f"(elle fait {format_euros(total)}). Ajoutez un projet.", where)
    else:
        high = heading_max_projects(settings, h)
        if n > high:
            raise BadInput(f"Vous pouvez choisir au plus {high} projet{'s' if high > 1 else ''} dans « {h.name} » "
                           f"({n} choisis).", where)
        low = settings.rule.min_projects
        if low is not None and n < low:
            raise BadInput(f"Choisissez au moins {low} projets dans « {h.name} » ({n} choisi{'s' if n > 1 else ''}).",
                           where)
    return sorted(project_ids)


def ballot_increments(ballot: Iterable[HeadingBallot]) -> dict[str, int]:
    """The vote counters a ballot adds to: one per project chosen (both rules count each project once)."""
    return {pid: 1 for hb in ballot for pid in hb.project_ids}


def tally_ballots(ballots: Iterable[Iterable[HeadingBallot]]) -> Counter:
    """Votes per project over many ballots (a recount, a paper sheet); the service keeps the same as counters."""
    votes: Counter = Counter()
    for ballot in ballots:
        for hb in ballot:
            votes.update(hb.project_ids)
    return votes


def validate_project_totals(settings: BudgetSettings, projects: Mapping[str, Project],
                            entry: EnterPaperTotals) -> dict[str, int]:
    """A booth's totals per project, checked for what cannot be (catching a mistyped figure before the second entry
    does): more blank and null papers than papers, a project with more votes than valid ballots, a heading whose
    votes would spend more than its valid ballots could (knapsack) or hold more lines (approval)."""
    if entry.options:
        raise BadInput("Budget participatif : saisissez des totaux par projet, pas par option.", "options")
    if entry.blank + entry.null > entry.ballots:
        raise BadInput(f"Blancs et nuls ({entry.blank + entry.null}) : plus que de bulletins dans l'urne "
                       f"({entry.ballots}).", "ballots")
    valid = entry.ballots - entry.blank - entry.null
    totals: dict[str, int] = {}
    for t in entry.projects:
        p = projects.get(t.project_id)
        if p is None or not p.on_ballot:
            raise BadInput(f"Projet « {t.project_id} » : il n'est pas sur le bulletin.", f"projects.{t.project_id}")
        if t.project_id in totals:
            raise BadInput(f"Le projet « {p.title} » est saisi deux fois.", f"projects.{t.project_id}")
        if t.votes > valid:
            raise BadInput(f"« {p.title} » : {t.votes} voix pour {valid} bulletins exprimés, c'est impossible.",
                           f"projects.{t.project_id}")
        totals[t.project_id] = t.votes
    for h in settings.headings:
        mine = [(projects[pid], n) for pid, n in totals.items() if projects[pid].heading_id == h.id]
        if settings.rule.kind == "KNAPSACK":
            spent = sum(p.price_cents * n for p, n in mine)
            if spent > valid * h.amount_cents:
                raise BadInput(f"Section « {h.name} » : ces voix dépenseraient {format_euros(spent)}, plus que "
                               f"{valid} bulletins ne le peuvent. Vérifiez les chiffres.", f"headings.{h.id}")
        else:
            lines = sum(n for _, n in mine)
            if lines > valid * heading_max_projects(settings, h):
                raise BadInput(f"Section « {h.name} » : {lines} voix, plus que {valid} bulletins n'en portent. "
                               "Vérifiez les chiffres.", f"headings.{h.id}")
    return totals


# -- winners ----------------------------------------------------------------------------------------
TIE_BREAK_LABELS = {"LOWER_PRICE": "à égalité de voix, le projet le moins cher passe devant",
                    "HIGHER_PRICE": "à égalité de voix, le projet le plus cher passe devant",
                    "EARLIER_SUBMISSION": "à égalité de voix, le projet déposé le premier passe devant",
                    "LOT": "à égalité de voix, un tirage au sort à graine publique départage"}


@dataclass(frozen=True)
class RankedProject:
    project_id: str
    title: str
    price_cents: int
    online: int
    paper: int
    winner: bool
    rank: int

    @property
    def total(self) -> int:
        return self.online + self.paper


@dataclass(frozen=True)
class HeadingOutcome:
    heading_id: str
    name: str
    amount_cents: int
    projects: tuple[RankedProject, ...]
    ties: tuple[tuple[str, ...], ...] = field(default=())

    @property
    def winners(self) -> list[str]:
        return [p.project_id for p in self.projects if p.winner]

    @property
    def spent_cents(self) -> int:
        return sum(p.price_cents for p in self.projects if p.winner)

    @property
    def remaining_cents(self) -> int:
        return self.amount_cents - self.spent_cents


def lot_key(seed: str, project_id: str) -> str:
    """A project's place in a draw anyone can redo: SHA-256 of the public seed and the project id."""
    return hashlib.sha256(f"{seed}\n{project_id}".encode()).hexdigest()


def _order_key(p: Project, votes: int, tie_break: str, seed: str | None):
    if tie_break == "LOWER_PRICE":
        tie = p.price_cents
    elif tie_break == "HIGHER_PRICE":
        tie = -p.price_cents
    elif tie_break == "LOT":
        tie = lot_key(seed or "", p.id)
    else:
        tie = 0  # EARLIER_SUBMISSION: the last resort below is exactly that
    submitted = p.submitted_at.timestamp() if p.submitted_at else float("inf")
    return (-votes, tie, submitted, p.id)


def heading_outcome(heading: Heading, projects: Iterable[Project], online: Mapping[str, int],
                    paper: Mapping[str, int], tie_break: str, seed: str | None = None) -> HeadingOutcome:
    """The heading's ballot projects ranked by votes (online + paper) and its winners by CONSUL's rule. Works
    from vote counters, so it costs the number of projects, not of ballots."""
    mine = [p for p in projects if p.heading_id == heading.id and p.on_ballot]
    mine.sort(key=lambda p: _order_key(p, online.get(p.id, 0) + paper.get(p.id, 0), tie_break, seed))
    left = heading.amount_cents
    ranked = []
    for rank, p in enumerate(mine, start=1):
        winner = p.price_cents <= left
        if winner:
            left -= p.price_cents
        ranked.append(RankedProject(p.id, p.title, p.price_cents, online.get(p.id, 0), paper.get(p.id, 0), winner,
                                    rank))
    by_votes: dict[int, list[str]] = {}
    for r in ranked:
        by_votes.setdefault(r.total, []).append(r.project_id)
    ties = tuple(tuple(ids) for ids in by_votes.values() if len(ids) > 1)
    return HeadingOutcome(heading.id, heading.name, heading.amount_cents, tuple(ranked), ties)


def budget_outcome(settings: BudgetSettings, projects: Iterable[Project], online: Mapping[str, int],
                   paper: Mapping[str, int]) -> list[HeadingOutcome]:
    projects = list(projects)
    return [heading_outcome(h, projects, online, paper, settings.tie_break, settings.tie_break_seed)
            for h in settings.headings]
