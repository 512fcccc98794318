"""What the consultation service announces, as messages: a consultation that opens to the subscribers of
`consultation:new`, a budget's phases and results to the subscribers of `consultation:budget:<budget>`, and the
decisions on a project to its author (by email when his address is known, and in the application).

A PANEL consultation's opening is not announced to everyone: only its members may take part, and the agent who
imported them tells them (their addresses are not kept by anyone)."""
from __future__ import annotations

import logging

from services.common.mongo import utcnow
from services.notification import domain
from services.notification.dispatch import NOTIFICATIONS, new_notification

log = logging.getLogger(__name__)

NEW = "consultation:new"
HEADLINES = {"SURVEY": "Nouvelle enquête", "CONSULTATION": "Nouvelle consultation",
             "BUDGET": "Nouveau budget participatif"}
PHASES = {  # (short name, what happens), French
    "INFORMING": ("présentation", "la présentation du budget commence"),
    "ACCEPTING": ("dépôt des projets", "le dépôt des projets est ouvert"),
    "REVIEWING": ("examen des projets", "les projets déposés sont examinés"),
    "SELECTING": ("soutiens", "vous pouvez soutenir les projets que vous préférez"),
    "VALUATING": ("étude des projets", "les services étudient la faisabilité et le coût des projets"),
    "PUBLISHING_PRICES": ("coûts publiés", "le coût des projets retenus est publié"),
    "BALLOTING": ("vote", "le vote est ouvert"),
    "REVIEWING_BALLOTS": ("dépouillement", "le vote est clos ; les bulletins, dont ceux sur papier, sont dépouillés"),
    "FINISHED": ("résultats", "les résultats vont être publiés"),
}


def budget_topic(budget_id: str) -> str:
    return f"consultation:budget:{budget_id}"


class ConsultationNews:
    """Takes the notification store and the service's Composer (its fan-out and its links)."""

    def __init__(self, store, compose):
        self.store, self.compose = store, compose

    def opened(self, envelope, data) -> int:
        if data.audience == "PANEL":
            log.info("consultation %s opened for its panel: not announced to %s", data.id, NEW)
            return 0
        until = f"Ouverte jusqu'au {domain.french_datetime(data.closes_at)}." if data.closes_at else ""
        return self.compose.fan_out(envelope, [NEW], "consultation_opened", {
            "headline": HEADLINES[data.kind], "title": data.title, "summary": "", "until": until,
            "url": self.compose.event_url(data)})

    def results(self, envelope, data) -> int:
        topics = [NEW] + ([budget_topic(data.id)] if data.kind == "BUDGET" else [])
        participants = f"{data.participants} participant{'s' if data.participants > 1 else ''}"
        return self.compose.fan_out(envelope, topics, "consultation_results", {
            "title": data.title, "participants": participants,
            "url": self.compose.settings.public_url + data.results_url})

    def phase(self, envelope, data) -> int:
        name, detail = PHASES[data.phase]
        if data.ends_at is not None and data.phase not in ("REVIEWING_BALLOTS", "FINISHED"):
            detail += f" jusqu'au {domain.french_datetime(data.ends_at)}"
        return self.compose.fan_out(envelope, [budget_topic(data.budget_id)], "budget_phase", {
            "title": data.title, "phase": name, "detail": detail + ".", "url": self.compose.event_url(data)})

    def moderated(self, envelope, data) -> int:
        if data.decision == "APPROVE":
            return self._tell_author(envelope, data, "accepté", "Il est publié avec les autres projets du budget.")
        return self._tell_author(envelope, data, "non retenu", f"Motif : {data.reason or 'non précisé'}")

    def assessed(self, envelope, data) -> int:
        if data.feasibility == "UNFEASIBLE":
            return self._tell_author(envelope, data, "jugé infaisable", data.explanation or "")
        if data.feasibility == "FEASIBLE":
            price = "" if data.price_cents is None else f" Coût retenu : {_euros(data.price_cents)}."
            return self._tell_author(envelope, data, "jugé faisable", "Les services l'ont étudié." + price)
        return 0

    def _tell_author(self, envelope, data, headline: str, detail: str) -> int:
        tpl = domain.template("project_decision")
        personalisation = {"title": data.title, "headline": headline, "detail": detail,
                           "url": self.compose.event_url(data)}
        now = utcnow()
        docs = [new_notification(event_id=envelope.event_id, event_type=envelope.type, template=tpl, channel="in_app",
                                 recipient=data.author, address=data.author,
                                 parts=domain.render(tpl, "in_app", personalisation), now=now)]
        citizen = self.store.citizen(data.author)
        if citizen and citizen.get("email"):
            docs.append(new_notification(event_id=envelope.event_id, event_type=envelope.type, template=tpl,
                                         channel="email", recipient=data.author, address=citizen["email"],
                                         parts=domain.render(tpl, "email", personalisation), now=now))
        created = self.store.insert_notifications(docs)
        NOTIFICATIONS.labels("all", domain.CREATED).inc(created)
        return created


def _euros(cents: int) -> str:
    euros, rest = divmod(cents, 100)
    whole = f"{euros:,}".replace(",", "\u202f")
    return f"{whole},{rest:02d}\u00a0€" if rest else f"{whole}\u00a0€"
