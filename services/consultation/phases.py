"""Pure rules of a participatory budget's phases, as CONSUL names them: which phase is current at an instant
(enabled phases only, joined end to start), the budget's window, the change the timer owes, an agent moving on to
the next phase, and what may still change once a budget runs; no I/O."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Iterable

from contracts.consultation import BudgetPhase
from contracts.errors import BadInput, Conflict
from services.consultation.domain import french_datetime, to_utc

PHASES = ("INFORMING", "ACCEPTING", "REVIEWING", "SELECTING", "VALUATING", "PUBLISHING_PRICES", "BALLOTING",
          "REVIEWING_BALLOTS", "FINISHED")
PHASE_LABELS = {"INFORMING": "information", "ACCEPTING": "dépôt des projets", "REVIEWING": "examen des projets",
                "SELECTING": "soutiens", "VALUATING": "étude de faisabilité",
                "PUBLISHING_PRICES": "publication des coûts",
                "BALLOTING": "vote", "REVIEWING_BALLOTS": "dépouillement", "FINISHED": "résultats"}


def phase_label(kind: str | None) -> str:
    """A phase as a person reads it; before the first phase, 'avant l'ouverture'."""
    return PHASE_LABELS.get(kind, "avant l'ouverture") if kind else "avant l'ouverture"


def normalise_phases(phases: Iterable[BudgetPhase]) -> list[BudgetPhase]:
    """All nine phases in CONSUL's order, times in UTC; a phase not given is disabled."""
    given: dict[str, BudgetPhase] = {}
    for p in phases:
        if p.kind in given:
            raise BadInput(f"La phase « {PHASE_LABELS[p.kind]} » est donnée deux fois.", f"phases.{p.kind}")
        given[p.kind] = p
    out = []
    for kind in PHASES:
        p = given.get(kind) or BudgetPhase(kind=kind, enabled=False)
        out.append(p.model_copy(update={"starts_at": to_utc(p.starts_at) if p.starts_at else None,
                                        "ends_at": to_utc(p.ends_at) if p.ends_at else None,
                                        "summary": p.summary.strip()}))
    return out


def enabled_phases(phases: Iterable[BudgetPhase]) -> list[BudgetPhase]:
    return [p for p in phases if p.enabled]


def validate_phases(phases: Iterable[BudgetPhase]) -> list[BudgetPhase]:
    """Enabled phases, in order, each ending when the next begins (CONSUL keeps them joined the same way), so that
    at any instant of the budget there is exactly one current phase. Voting and results are never skipped."""
    out = normalise_phases(phases)
    enabled = enabled_phases(out)
    for kind in ("BALLOTING", "FINISHED"):
        if not any(p.kind == kind for p in enabled):
            raise BadInput(f"La phase « {PHASE_LABELS[kind]} » est obligatoire.", f"phases.{kind}")
    previous: BudgetPhase | None = None
    for p in enabled:
        where = f"phases.{p.kind}"
        if p.starts_at is None:
            raise BadInput(f"Phase « {PHASE_LABELS[p.kind]} » : date de début obligatoire.", where)
        if p.ends_at is None and p.kind != "FINISHED":
            raise BadInput(f"Phase « {PHASE_LABELS[p.kind]} » : date de fin obligatoire.", where)
        if p.ends_at is not None and p.ends_at <= p.starts_at:
            raise BadInput(f"Phase « {PHASE_LABELS[p.kind]} » : la fin doit suivre le début.", where)
        if previous is not None and p.starts_at != previous.ends_at:
            raise BadInput(f"La phase « {PHASE_LABELS[p.kind]} » doit commencer quand « "
                           f"{PHASE_LABELS[previous.kind]} » finit ({french_datetime(previous.ends_at)}).", where)
        previous = p
    return out


def current_phase(phases: Iterable[BudgetPhase], t: datetime) -> str | None:
    """The enabled phase at instant `t`: None before the first; the last one (FINISHED) stays once reached."""
    current = None
    for p in enabled_phases(phases):
        if p.starts_at is not None and p.starts_at <= t:
            current = p.kind
    return current


def budget_window(phases: Iterable[BudgetPhase]) -> tuple[datetime | None, datetime | None]:
    """A budget consultation is open from its first enabled phase to the end of its vote; it is then closed (the
    ballots are reviewed) until an agent publishes its results."""
    enabled = enabled_phases(phases)
    balloting = next((p for p in enabled if p.kind == "BALLOTING"), None)
    return (enabled[0].starts_at if enabled else None), (balloting.ends_at if balloting else None)


@dataclass(frozen=True)
class PhaseChange:
    previous: str | None
    phase: str
    starts_at: datetime | None
    ends_at: datetime | None


def due_phase_change(announced: str | None, phases: list[BudgetPhase], now: datetime) -> PhaseChange | None:
    """The phase change the timer owes at `now`, given the last phase announced. Phases a stopped timer missed are
    not announced one by one: only the phase the budget is in now (nobody needs 'selecting has started' once it
    is over)."""
    phase = current_phase(phases, now)
    if phase is None or phase == announced:
        return None
    p = next(x for x in phases if x.kind == phase)
    return PhaseChange(announced, phase, p.starts_at, p.ends_at)


def advance_phase(phases: list[BudgetPhase], to: str, now: datetime) -> list[BudgetPhase]:
    """An agent ends the current phase now and starts the next enabled one now (its end unchanged). Only the next
    enabled phase: skipping one is done by disabling it."""
    enabled = enabled_phases(phases)
    current = current_phase(phases, now)
    kinds = [p.kind for p in enabled]
    expected = kinds[0] if current is None else (kinds[kinds.index(current) + 1]
                                                 if kinds.index(current) + 1 < len(kinds) else None)
    if expected is None:
        raise Conflict("Le budget est dans sa dernière phase.", "to")
    if to != expected:
        raise Conflict(f"La phase suivante est « {PHASE_LABELS[expected]} », pas « {PHASE_LABELS[to]} ».", "to")
    target = next(p for p in enabled if p.kind == to)
    if target.ends_at is not None and target.ends_at <= now:
        raise Conflict(f"La phase « {PHASE_LABELS[to]} » finirait avant de commencer : changez d'abord sa fin.",
                       "to")
    out = []
    for p in phases:
        if p.kind == current:
            p = p.model_copy(update={"ends_at": now})
        elif p.kind == to:
            p = p.model_copy(update={"starts_at": now})
        out.append(p)
    return out


def check_phase_edit(old: list[BudgetPhase], new: list[BudgetPhase], now: datetime) -> None:
    """Once a budget runs, what has happened stays written: a phase that began keeps its start (and stays
    enabled), one that ended keeps its end; the current one may end at another time to come."""
    by_kind = {p.kind: p for p in new}
    for p in old:
        n = by_kind[p.kind]
        where = f"phases.{p.kind}"
        if p.enabled and p.starts_at is not None and p.starts_at <= now:
            if not n.enabled or n.starts_at != p.starts_at:
                raise Conflict(f"La phase « {PHASE_LABELS[p.kind]} » a commencé : son début ne change plus.", where)
            if p.ends_at is not None and p.ends_at <= now and n.ends_at != p.ends_at:
                raise Conflict(f"La phase « {PHASE_LABELS[p.kind]} » est finie : sa fin ne change plus.", where)
            if n.ends_at is not None and n.ends_at != p.ends_at and n.ends_at <= now:
                raise BadInput(f"La phase « {PHASE_LABELS[p.kind]} » : sa nouvelle fin doit être à venir.", where)
        elif (n.enabled and n.starts_at is not None and n.starts_at < now
              and (not p.enabled or n.starts_at != p.starts_at)):
            raise BadInput(f"La phase « {PHASE_LABELS[p.kind]} » ne peut pas commencer dans le passé.", where)
