"""A participatory budget's projects: proposed by citizens while proposals are open, moderated (approved, or rejected
with a reason), supported (once per citizen and project: a unique key), assessed and priced by agents, put on the
ballot; and what each caller may see of them (authors to agents and themselves, prices once public, votes and
winners once results are published)."""
from __future__ import annotations

import uuid
from datetime import datetime

from contracts import consultation as c
from contracts.agenda_public import normalise, text_terms
from contracts.errors import BadInput, Conflict, NotFound
from services.consultation import budget, domain, records, views
from services.consultation.metrics import REFUSED


class Projects:
    def __init__(self, store, build, caller, now: datetime, outcome=None):
        """`outcome(doc)`: the published results of a budget, {project id: (online, paper, winner)}, or None while
        they are hidden (publication.py)."""
        self.store, self.build, self.caller, self.now, self.outcome = store, build, caller, now, outcome

    # -- reading -------------------------------------------------------------------------------------------
    def _budget(self, budget_id: str, field: str = "budget_id") -> dict:
        doc = self.store.get_consultation(budget_id)
        if doc is None or doc["kind"] != "BUDGET" or doc["state"] not in domain.visible_states(self.caller.role):
            raise NotFound("Budget participatif introuvable.", field)
        return doc

    def _project(self, project_id: str) -> tuple[dict, dict]:
        doc = self.store.get_project(project_id)
        if doc is None:
            raise NotFound("Projet introuvable.", "project_id")
        budget_doc = self._budget(doc["budget_id"], "project_id")
        if not self._visible(doc):
            raise NotFound("Projet introuvable.", "project_id")
        return doc, budget_doc

    def _visible(self, doc: dict) -> bool:
        """The public sees approved projects; an author his own; agents all."""
        return (self.caller.role in domain.STAFF or doc["moderation"] == "APPROVED"
                or (self.caller.role == "citizen" and self.caller.subject == doc.get("author")))

    def view(self, doc: dict, budget_doc: dict, counters: dict | None = None, outcome=None) -> dict:
        if counters is None:
            counters = self.store.counters(budget_doc["_id"])
        if outcome is None and self.outcome is not None:
            outcome = self.outcome(budget_doc)
        return views.project(doc, budget_doc, self.caller, counters, self.now, outcome)

    def get(self, req: c.ProjectRef) -> dict:
        return self.view(*self._project(req.project_id))

    def page(self, req: c.ListProjects) -> dict:
        budget_doc = self._budget(req.budget_id)
        f = req.filter
        outcome = self.outcome(budget_doc) if self.outcome is not None else None
        if f.winners is not None and outcome is None:
            raise Conflict("Les lauréats sont connus à la publication des résultats.", "filter.winners")
        if f.moderation and self.caller.role not in domain.STAFF:
            raise BadInput("Seuls les agents filtrent par modération : le public voit les projets acceptés.",
                           "filter.moderation")
        terms = text_terms(f.text)
        docs = []
        for d in self.store.projects_of(budget_doc["_id"], req.heading_id):
            mine = self.caller.role == "citizen" and d.get("author") == self.caller.subject
            if not self._visible(d) or (f.mine and not mine):
                continue
            if (f.moderation and d["moderation"] not in f.moderation) or (
                    f.feasibility and d.get("feasibility", "UNDECIDED") not in f.feasibility):
                continue
            if f.selected is not None and bool(d.get("selected")) != f.selected:
                continue
            if f.winners is not None and (outcome.get(d["_id"], (0, 0, False))[2] != f.winners):
                continue
            if terms and not all(t in d.get("search", "") for t in terms):
                continue
            docs.append(d)
        docs.sort(key=lambda d: (d["submitted_at"], d["_id"]))
        total = len(docs)
        after = domain.decode_cursor(req.after, 2)
        if after is not None:
            docs = [d for d in docs if (d["submitted_at"].timestamp(), d["_id"]) > (after[0], after[1])]
        page, has_next = docs[: req.first], len(docs) > req.first
        counters = self.store.counters(budget_doc["_id"])
        cursors = [domain.encode_cursor(d["submitted_at"].timestamp(), d["_id"]) for d in page]
        return {"items": [self.view(d, budget_doc, counters, outcome) for d in page], "cursors": cursors,
                "total": total, "has_next": has_next,
                "end_cursor": cursors[-1] if cursors else None}

    # -- citizens ------------------------------------------------------------------------------------------
    def _citizen(self) -> str:
        caller = self.caller.require({"citizen"})
        if not caller.subject:
            raise BadInput("Jeton sans sujet : reconnectez-vous.", "token")
        return caller.subject

    def _member(self, budget_doc: dict, citizen: str) -> None:
        if budget_doc["audience"] == "PANEL" and not self.store.is_panel_member(budget_doc["_id"], citizen):
            raise Conflict("Ce budget est réservé aux membres de son panel.", "budget_id")

    def propose(self, req: c.ProposeProject) -> dict:
        citizen = self._citizen()
        budget_doc = self._budget(req.budget_id)
        self._member(budget_doc, citizen)
        budget.check_proposing(records.phase_now(budget_doc, self.now))
        fields = budget.validate_project(req.project, records.budget_settings(budget_doc))
        doc = {"_id": f"prj-{uuid.uuid4().hex[:12]}", "version": 1, "budget_id": budget_doc["_id"], **fields,
               "author": citizen, "moderation": "SUBMITTED", "feasibility": "UNDECIDED", "selected": False,
               "submitted_at": self.now, "updated_at": self.now}
        doc["search"] = _search(doc)
        self.store.insert_project(doc, [self.build("consultation.project_submitted", views.project_facts(doc))])
        return self.view(doc, budget_doc)

    def update(self, req: c.UpdateProject) -> dict:
        citizen = self._citizen()
        doc, budget_doc = self._project(req.project_id)
        budget.check_author_edit(records.phase_now(budget_doc, self.now), doc.get("author") == citizen)
        fields = budget.validate_project(req.project, records.budget_settings(budget_doc))
        doc = {**doc, **fields, "moderation": "SUBMITTED", "rejection_reason": None, "updated_at": self.now}
        doc["search"] = _search(doc)
        # Back to moderation: agents are told again, as for a new proposal.
        written = self.store.replace_project(doc, [self.build("consultation.project_submitted",
                                                              views.project_facts(doc))])
        return self.view(written, budget_doc)

    def support(self, req: c.ProjectRef) -> dict:
        citizen = self._citizen()
        doc, budget_doc = self._project(req.project_id)
        self._member(budget_doc, citizen)
        settings = records.budget_settings(budget_doc)
        budget.check_support(records.project(doc), records.phase_now(budget_doc, self.now),
                             self.store.supported_headings(budget_doc["_id"], citizen), settings.max_headings_per_voter)
        support = {"_id": f"{doc['_id']}:{citizen}", "budget_id": budget_doc["_id"], "project_id": doc["_id"],
                   "heading_id": doc["heading_id"], "citizen": citizen, "at_ts": self.now.timestamp(),
                   **self.store.pending_count(budget_doc["_id"], {f"s:{doc['_id']}": 1})}
        if not self.store.insert_support(support):
            REFUSED.labels("already_voted").inc()
            raise Conflict(budget.ALREADY_SUPPORTED, "project_id")
        self.store.finish_count("supports", support)
        return self.view(doc, budget_doc)

    # -- agents --------------------------------------------------------------------------------------------
    def _agent_project(self, project_id: str) -> tuple[dict, dict, str | None]:
        self.caller.require({"agent"})
        doc, budget_doc = self._project(project_id)
        return doc, budget_doc, records.phase_now(budget_doc, self.now)

    def moderate(self, req: c.ModerateProject) -> dict:
        doc, budget_doc, phase = self._agent_project(req.project_id)
        state = budget.moderate(records.project(doc), req.decision, req.reason, phase)
        reason = (req.reason or "").strip() or None if req.decision == "REJECT" else None
        doc = {**doc, "moderation": state, "rejection_reason": reason, "updated_at": self.now}
        event = self.build("consultation.project_moderated", {**views.project_facts(doc), "decision": req.decision,
                                                              "reason": reason, "actor": self.caller.subject})
        return self.view(self.store.replace_project(doc, [event]), budget_doc)

    def assess(self, req: c.AssessProject) -> dict:
        doc, budget_doc, phase = self._agent_project(req.project_id)
        heading = _heading(budget_doc, doc)
        fields = budget.assess(records.project(doc), req.feasibility, req.explanation, req.price_cents, heading, phase)
        return self._assessed(doc, budget_doc, fields)

    def price(self, req: c.PriceProject) -> dict:
        doc, budget_doc, phase = self._agent_project(req.project_id)
        budget.check_price(records.project(doc), req.price_cents, _heading(budget_doc, doc), phase)
        return self._assessed(doc, budget_doc, {"price_cents": req.price_cents,
                                                "price_explanation": req.price_explanation.strip() or None})

    def _assessed(self, doc: dict, budget_doc: dict, fields: dict) -> dict:
        doc = {**doc, **fields, "updated_at": self.now}
        event = self.build("consultation.project_assessed", {
            **views.project_facts(doc), "feasibility": doc.get("feasibility", "UNDECIDED"),
            "explanation": doc.get("unfeasibility_explanation"), "price_cents": doc.get("price_cents"),
            "actor": self.caller.subject})
        return self.view(self.store.replace_project(doc, [event]), budget_doc)

    def select(self, req: c.SelectProjects) -> list[dict]:
        self.caller.require({"agent"})
        budget_doc = self._budget(req.budget_id)
        phase = records.phase_now(budget_doc, self.now)
        docs = []
        for pid in dict.fromkeys(req.project_ids):
            doc = self.store.get_project(pid)
            if doc is None or doc["budget_id"] != budget_doc["_id"]:
                raise NotFound(f"Projet introuvable : « {pid} ».", "project_ids")
            budget.check_selection(records.project(doc), req.selected, phase)
            docs.append(doc)
        written = [self.store.replace_project({**d, "selected": req.selected, "updated_at": self.now}, [])
                   for d in docs if bool(d.get("selected")) != req.selected]
        changed = {d["_id"]: d for d in written}
        counters = self.store.counters(budget_doc["_id"])
        return [self.view(changed.get(d["_id"], d), budget_doc, counters) for d in docs]


def _heading(budget_doc: dict, doc: dict) -> c.Heading:
    return next(h for h in records.budget_settings(budget_doc).headings if h.id == doc["heading_id"])


def _search(doc: dict) -> str:
    return normalise(" ".join((doc["title"], doc.get("address") or "", doc["description"][:2000])))
