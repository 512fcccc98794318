"""A consultation's life as agents run it: drafting it (with its form or its budget), changing it as its state allows,
the agents' actions (schedule, open, close, publish, archive), a budget's next phase, its form's questions (typo fixes
once answered), its panel; and what each caller may see of it (one, or a keyset-paged list)."""
from __future__ import annotations

import uuid
from datetime import datetime

from contracts import consultation as c
from contracts.agenda_public import normalise, text_terms
from contracts.errors import BadInput, Conflict, NotFound
from services.agenda.domain import render_markdown
from services.common import identity
from services.consultation import budget, clock, domain, phases, questions, records, revisions, views

BUDGET_ACTIONS_REFUSED = {"open": "ouvre", "close": "clôt"}


class Consultations:
    """Takes the store, the event builder, the caller, the communes (a container: loaded only when a commune is
    named), the platform's secret (panel members' ids) and the instant of the request."""

    def __init__(self, store, build, caller, communes, secret: str, now: datetime):
        self.store, self.build, self.caller, self.communes, self.secret, self.now = (
            store, build, caller, communes, secret, now)

    # -- reading ---------------------------------------------------------------------------------------
    def doc(self, consultation_id: str) -> dict:
        """The consultation if the caller may see it (drafts are the agents'), else NotFound."""
        doc = self.store.get_consultation(consultation_id)
        if doc is None or doc["state"] not in domain.visible_states(self.caller.role):
            raise NotFound("Consultation introuvable.", "id")
        return doc

    def view(self, doc: dict) -> dict:
        locked = records.state_now(doc, self.now) not in ("DRAFT", "SCHEDULED") and self.store.has_answers(doc["_id"])
        return views.consultation(doc, self.store.counters(doc["_id"]), self.caller.role, self.now, locked)

    def get(self, consultation_id: str) -> dict:
        return self.view(self.doc(consultation_id))

    def page(self, req: c.ListConsultations) -> dict:
        f = req.filter
        states = domain.visible_states(self.caller.role)
        if f.states:
            states = states & set(f.states)
        clauses: list[dict] = [{"state": {"$in": sorted(states)}}]
        if f.kinds:
            clauses.append({"kind": {"$in": list(f.kinds)}})
        if f.audience:
            clauses.append({"audience": f.audience})
        if f.communes:
            clauses.append({"$or": [{"scope.kind": "TERRITORY"}, {"scope.communes": {"$in": list(f.communes)}}]})
        for term in text_terms(f.text):
            clauses.append({"search": {"$regex": term}})
        query = {"$and": clauses}
        total = self.store.count_consultations(query)
        after = domain.decode_cursor(req.after, 2)
        if after is not None:
            clauses = clauses + [{"$or": [{"created_ts": {"$lt": after[0]}},
                                          {"created_ts": after[0], "_id": {"$lt": after[1]}}]}]
        docs = self.store.list_consultations({"$and": clauses}, req.first + 1)
        has_next, docs = len(docs) > req.first, docs[: req.first]
        counters = self.store.counters_of(d["_id"] for d in docs)
        items = [views.consultation(d, counters.get(d["_id"]), self.caller.role, self.now) for d in docs]
        cursors = [domain.encode_cursor(d["created_ts"], d["_id"]) for d in docs]
        return {"items": items, "cursors": cursors, "total": total, "has_next": has_next,
                "end_cursor": cursors[-1] if cursors else None}

    # -- drafting and changing ---------------------------------------------------------------------------
    def _fields(self, data: c.ConsultationInput) -> dict:
        fields = domain.validate_consultation(data, self.communes)
        fields["budget"] = None
        if data.kind == "BUDGET":
            settings = budget.validate_budget(data.budget, self.communes)
            fields["budget"] = settings.model_dump()
            fields["opens_at"], fields["closes_at"] = phases.budget_window(settings.phases)
        return to_millisecond(fields)

    def create(self, req: c.CreateConsultation) -> dict:
        caller = self.caller.require({"agent"})
        fields = self._fields(req.consultation)
        if req.consultation.kind == "BUDGET" and req.questions:
            raise BadInput("Un budget participatif n'a pas de questionnaire : ses projets sont le bulletin.",
                           "questions")
        form: list[c.Question] = []
        for q in req.questions:
            form = questions.insert_question(form, q, new_question_id())
        cid = f"cons-{uuid.uuid4().hex[:12]}"
        doc = {"_id": cid, "version": 1, **fields, "state": "DRAFT", "questions": [q.model_dump() for q in form],
               "revisions": [], "created_at": self.now, "updated_at": self.now, "created_ts": self.now.timestamp(),
               "created_by": caller.subject}
        doc = with_derived(doc)
        self.store.insert_consultation(doc, [])
        return self.view(doc)

    def update(self, req: c.UpdateConsultation) -> dict:
        self.caller.require({"agent"})
        doc, events = self._current(req.id)
        state = doc["state"]
        new = self._fields(req.consultation)
        old = {k: doc.get(k) for k in new}
        if doc["kind"] == "BUDGET" and state not in ("DRAFT", "SCHEDULED"):
            # A running budget keeps its headings and rule; only its phases' dates to come may move.
            old_settings, new_settings = records.budget_settings(doc), c.BudgetSettings.model_validate(new["budget"])
            if old_settings.model_copy(update={"phases": []}) != new_settings.model_copy(update={"phases": []}):
                raise Conflict("Le budget a commencé : ses sections et sa règle de vote ne changent plus.", "budget")
            phases.check_phase_edit(old_settings.phases, new_settings.phases, self.now)
            for key in ("budget", "opens_at", "closes_at"):
                old[key] = new[key]
        domain.check_update(state, old, new, self.now)
        doc = with_derived({**doc, **new})
        doc, more = clock.catch_up(self.store, self.build, doc, self.now)
        return self.view(clock.write(self.store, doc, events + more, self.now))

    def _current(self, consultation_id: str) -> tuple[dict, list[dict]]:
        """The consultation as the clock has it now (moved on, with the events of the moves), for an agent."""
        doc = self.store.get_consultation(consultation_id)
        if doc is None:
            raise NotFound("Consultation introuvable.", "id")
        return clock.catch_up(self.store, self.build, doc, self.now)

    # -- agents' actions -------------------------------------------------------------------------------
    def act(self, consultation_id: str, action: str) -> dict:
        caller = self.caller.require({"agent"})
        doc, events = self._current(consultation_id)
        if doc["kind"] == "BUDGET" and action in BUDGET_ACTIONS_REFUSED:
            raise Conflict(f"Un budget participatif s'{BUDGET_ACTIONS_REFUSED[action]} avec ses phases : passez à la "
                           "phase suivante (advanceBudgetPhase) ou changez leurs dates.", "state")
        if action == "schedule" and doc["kind"] != "BUDGET":
            questions.check_form_ready(records.form(doc))
        acted = domain.apply_action(doc["state"], action, doc.get("opens_at"), doc.get("closes_at"), self.now)
        doc.update(state=acted.state, opens_at=acted.opens_at, closes_at=acted.closes_at)
        if action == "publish_results":
            doc["results_published_at"] = self.now
        if acted.transition.event_type:
            events.append(self.build(*clock.state_event(doc, acted.transition, self.store.counters(doc["_id"]),
                                                        caller.subject)))
        doc, more = clock.catch_up(self.store, self.build, doc, self.now, caller.subject)
        return self.view(clock.write(self.store, doc, events + more, self.now))

    def advance_phase(self, req: c.AdvanceBudgetPhase) -> dict:
        caller = self.caller.require({"agent"})
        doc, events = self._current(req.budget_id)
        settings = records.budget_settings(doc)
        if settings is None:
            raise BadInput("Cette consultation n'est pas un budget participatif.", "budget_id")
        if doc["state"] in ("DRAFT", "ARCHIVED"):
            raise Conflict(f"Le budget est « {domain.STATE_LABELS[doc['state']]} » : programmez-le d'abord.", "state")
        moved = phases.advance_phase(settings.phases, req.to, self.now)
        doc["budget"] = settings.model_copy(update={"phases": moved}).model_dump()
        doc["opens_at"], doc["closes_at"] = phases.budget_window(moved)
        doc, more = clock.catch_up(self.store, self.build, doc, self.now, caller.subject)
        return self.view(clock.write(self.store, doc, events + more, self.now))

    # -- the form ---------------------------------------------------------------------------------------
    def _form_doc(self, consultation_id: str) -> tuple[dict, list[dict], list[c.Question], bool]:
        self.caller.require({"agent"})
        doc, events = self._current(consultation_id)
        if doc["kind"] == "BUDGET":
            raise BadInput("Un budget participatif n'a pas de questionnaire.", "consultation_id")
        if doc["state"] not in ("DRAFT", "SCHEDULED", "OPEN"):
            raise Conflict(f"La consultation est « {domain.STATE_LABELS[doc['state']]} » : son questionnaire ne "
                           "change plus.", "state")
        locked = doc["state"] == "OPEN" and self.store.has_answers(doc["_id"])
        return doc, events, records.form(doc), locked

    def _save_form(self, doc: dict, events: list[dict], form: list[c.Question]) -> dict:
        doc["questions"] = [q.model_dump() for q in form]
        return self.view(clock.write(self.store, doc, events, self.now))

    def add_question(self, req: c.AddQuestion) -> dict:
        doc, events, form, locked = self._form_doc(req.consultation_id)
        _unlocked(locked)
        return self._save_form(doc, events, questions.insert_question(form, req.question, new_question_id()))

    def update_question(self, req: c.UpdateQuestion) -> dict:
        doc, events, form, locked = self._form_doc(req.consultation_id)
        if not locked:
            return self._save_form(doc, events, questions.replace_question(form, req.question))
        revision = revisions.typo_revision(form, req.question, at=self.now, actor=self.caller.subject)
        if revision.changes:
            doc["revisions"] = (doc.get("revisions") or []) + [revision.model_dump()]
        return self._save_form(doc, events, revisions.apply_revision(form, revision))

    def remove_question(self, req: c.RemoveQuestion) -> dict:
        doc, events, form, locked = self._form_doc(req.consultation_id)
        _unlocked(locked)
        return self._save_form(doc, events, questions.remove_question(form, req.question_id))

    def reorder(self, req: c.ReorderQuestions) -> dict:
        doc, events, form, locked = self._form_doc(req.consultation_id)
        _unlocked(locked)
        return self._save_form(doc, events, questions.reorder_questions(form, req.question_ids))

    # -- a panel -------------------------------------------------------------------------------------------
    def import_panel(self, req: c.ImportPanelMembers) -> dict:
        """Members are kept as citizen ids (services/common/identity.py): the id the member's token will carry when
        he signs in with that address; the addresses themselves are not stored."""
        self.caller.require({"agent"})
        doc = self.store.get_consultation(req.consultation_id)
        if doc is None:
            raise NotFound("Consultation introuvable.", "consultation_id")
        if doc["audience"] != "PANEL":
            raise BadInput("Cette consultation est ouverte à tous : elle n'a pas de panel.", "consultation_id")
        if records.state_now(doc, self.now) in ("CLOSED", "RESULTS_PUBLISHED", "ARCHIVED"):
            raise Conflict("La consultation est close : son panel ne change plus.", "state")
        valid, invalid = domain.parse_panel_emails(req.emails)
        ids: dict[str, None] = {}
        for email in valid:
            normalised = identity.normalise_email(email)
            if normalised is None:
                invalid.append(email)
            else:
                ids[identity.citizen_id(self.secret, normalised)] = None
        current = self.store.panel_members(doc["_id"])
        add = [m for m in ids if m not in current]
        remove = [m for m in current if m not in ids] if req.replace else []
        self.store.set_panel(doc["_id"], add, remove)
        return {"added": len(add), "already_members": len(ids) - len(add), "removed": len(remove),
                "invalid": invalid, "members": len(current) + len(add) - len(remove)}


def _unlocked(locked: bool) -> None:
    if locked:
        raise Conflict("Des réponses existent déjà : les questions ne s'ajoutent, ne se retirent ni ne se déplacent "
                       "plus ; seules les fautes de frappe des libellés peuvent être corrigées.", "questions")


def new_question_id() -> str:
    return f"q-{uuid.uuid4().hex[:8]}"


def to_millisecond(value):
    """Datetimes cut to the millisecond, as the database keeps them: a value read back then equals the one given."""
    if isinstance(value, datetime):
        return value.replace(microsecond=value.microsecond // 1000 * 1000)
    if isinstance(value, dict):
        return {k: to_millisecond(v) for k, v in value.items()}
    if isinstance(value, list):
        return [to_millisecond(v) for v in value]
    return value


def with_derived(doc: dict) -> dict:
    """What the service derives from a consultation's own fields: its sanitised description and its search text."""
    doc["description_html"] = render_markdown(doc.get("description") or "")
    doc["search"] = normalise(" ".join(x for x in (doc["title"], doc.get("summary") or "") if x))
    return doc
