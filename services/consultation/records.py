"""The service's stored documents read as the domain's values: a consultation's form, its budget's settings, its state
and phase at an instant, the next instant its clock owes it something; a project as the rules see it. No I/O."""
from __future__ import annotations

from datetime import datetime, timezone

from contracts.consultation import BudgetSettings, Question
from services.consultation import domain, phases
from services.consultation.budget import Project

UTC = timezone.utc


def form(doc: dict) -> list[Question]:
    return [Question.model_validate(q) for q in doc.get("questions") or []]


_SETTINGS: dict[int, tuple[dict, BudgetSettings]] = {}  # id(budget part) -> (that part, its settings): see below


def budget_settings(doc: dict) -> BudgetSettings | None:
    """A budget's settings, read from its document. Each ballot needs them several times, and a ballot's document is
    the store's recent copy (the same object for seconds): they are read once per object, kept while the object is
    (the entry holds it, so its id is not reused meanwhile), for the last few objects met."""
    part = doc.get("budget")
    if not part:
        return None
    hit = _SETTINGS.get(id(part))
    if hit is not None and hit[0] is part:
        return hit[1]
    settings = BudgetSettings.model_validate(part)
    if len(_SETTINGS) >= 16:
        _SETTINGS.pop(next(iter(_SETTINGS)))
    _SETTINGS[id(part)] = (part, settings)
    return settings


def state_now(doc: dict, now: datetime) -> str:
    """The stored state moved on by the clock (the timer may not have run yet)."""
    return domain.state_at(doc["state"], doc.get("opens_at"), doc.get("closes_at"), now)


def phase_now(doc: dict, now: datetime) -> str | None:
    """A budget's phase at `now` (None before its first phase, or for another kind, or while it is a draft)."""
    if not doc.get("budget") or doc["state"] == "DRAFT":
        return None
    return phases.current_phase(budget_settings(doc).phases, now)


def cast_refusal(doc: dict, now: datetime, kind: str) -> str | None:
    """Why a ballot (`kind` ballot: a budget's; response: a secret consultation's) may not be cast now, or None."""
    state = state_now(doc, now)
    if state != "OPEN":
        return f"La consultation n'est pas ouverte (elle est « {domain.STATE_LABELS.get(state, state)} »)."
    if kind == "ballot":
        phase = phase_now(doc, now)
        if phase != "BALLOTING":
            return f"Le vote n'est pas ouvert : le budget est en phase « {phases.phase_label(phase)} »."
    return None


def next_due(doc: dict, now: datetime) -> float | None:
    """Epoch seconds of the next instant the clock owes this consultation something (a state to move to, a phase
    to announce), now if it owes it already; None when nothing is to come (a draft, archived, finished)."""
    state = doc["state"]
    if state in ("DRAFT", "ARCHIVED"):
        return None
    due: list[datetime] = []
    if state == "SCHEDULED" and doc.get("opens_at"):
        due.append(doc["opens_at"])
    if state in ("SCHEDULED", "OPEN") and doc.get("closes_at"):
        due.append(doc["closes_at"])
    settings = budget_settings(doc)
    if settings is not None:
        current = phases.current_phase(settings.phases, now)
        if current != doc.get("announced_phase") and current is not None:
            due.append(now)
        due += [p.starts_at for p in phases.enabled_phases(settings.phases) if p.starts_at and p.starts_at > now]
    return min(due).timestamp() if due else None


def project(doc: dict) -> Project:
    return Project(id=doc["_id"], heading_id=doc["heading_id"], title=doc["title"], moderation=doc["moderation"],
                   feasibility=doc.get("feasibility", "UNDECIDED"), price_cents=doc.get("price_cents"),
                   selected=bool(doc.get("selected")), submitted_at=doc.get("submitted_at"))


def from_ts(ts: float | None) -> datetime | None:
    return datetime.fromtimestamp(ts, UTC) if ts is not None else None
