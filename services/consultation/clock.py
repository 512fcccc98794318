"""A consultation's clock: the states its window moves it to (scheduled → open → closed) and the phases of a budget,
each announced by its event, written by a conditional update so that with several replicas (or an agent acting at
the same instant) the change is made, and announced, once.

`catch_up` brings a stored consultation up to an instant (the timer runs every few seconds; an agent's action first
catches up, so that it acts on the state the consultation is really in). `tick` is the timer's round.
"""
from __future__ import annotations

import logging
from datetime import datetime

from contracts.errors import Conflict
from services.consultation import domain, phases, records, views
from services.consultation.metrics import OPEN, PAPER_MISMATCHES

log = logging.getLogger(__name__)
KINDS = ("SURVEY", "CONSULTATION", "BUDGET")


def state_event(doc: dict, transition: domain.Transition, counters: dict, actor: str | None) -> tuple[str, dict]:
    data = views.facts(doc, actor)
    if transition.after in ("CLOSED", "RESULTS_PUBLISHED"):
        data["participants"] = views.participants(counters)
    if transition.after == "RESULTS_PUBLISHED":
        data["results_url"] = domain.RESULTS_PATH.format(id=doc["_id"])
    return transition.event_type, data


def catch_up(store, build, doc: dict, now: datetime, actor: str | None = None) -> tuple[dict, list[dict]]:
    """The consultation moved on to `now` by its clock (states, then the budget's phase), with the events that
    announce each move, in order, and its next due instant. Nothing is written here."""
    doc = dict(doc)
    events: list[dict] = []
    counters = None
    for t in domain.clock_transitions(doc["state"], doc.get("opens_at"), doc.get("closes_at"), now):
        doc["state"] = t.after
        if counters is None:
            counters = store.counters(doc["_id"])
        events.append(build(*state_event(doc, t, counters, None)))
    settings = records.budget_settings(doc)
    if settings is not None and doc["state"] not in ("DRAFT", "ARCHIVED"):
        change = phases.due_phase_change(doc.get("announced_phase"), settings.phases, now)
        if change is not None:
            doc["announced_phase"] = change.phase
            events.append(build("consultation.budget_phase_changed", views.phase_facts(doc, change, actor)))
    doc["due_ts"] = records.next_due(doc, now)
    return doc, events


def write(store, doc: dict, events: list[dict], now: datetime) -> dict:
    """Write a consultation moved on (by the clock or an agent); a closing drops the ballot box's empty slots."""
    doc["updated_at"] = now
    written = store.replace_consultation(doc, events)
    if written["state"] in ("CLOSED", "RESULTS_PUBLISHED", "ARCHIVED"):
        store.drop_free_slots(doc["_id"])
    return written


def tick(store, build, now: datetime) -> int:
    """The consultations whose time has come, each moved on once (a replica that loses the race skips it), and the
    gauges of open consultations and open paper mismatches. Returns the number of events announced."""
    announced = 0
    for doc in store.due_consultations(now.timestamp()):
        new, events = catch_up(store, build, doc, now)
        try:
            write(store, new, events, now)
        except Conflict:
            continue  # changed meanwhile (another replica, an agent): its next due instant is its writer's
        for env in events:
            log.info("%s: %s", doc["_id"], env["type"])
        announced += len(events)
    kinds = store.open_kinds()
    for kind in KINDS:
        OPEN.labels(kind).set(kinds.count(kind))
    PAPER_MISMATCHES.set(store.open_mismatches())
    return announced
