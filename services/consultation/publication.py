"""Results, receipts and exports: read from the counters (the size of the form or of the ballot, never of the votes),
hidden from everyone, agents included, until an agent publishes them after closing; only the participation shows
from opening on.

The list of receipt codes with their ballots is published with the results: after closing, as the issue asks, but
not before the results are, since the list of ballots is the results (anyone could count them).
"""
from __future__ import annotations

import json
from datetime import datetime

from contracts import consultation as c
from contracts.errors import BadInput, Conflict, NotFound
from services.consultation import ballots, budget, domain, records, results, views
from services.consultation.pabulib import PbBallot, export_heading

LICENCE = "Licence Ouverte / Open Licence 2.0 (Etalab)"


def published(doc: dict, now: datetime) -> bool:
    return domain.results_visible(records.state_now(doc, now), doc.get("results_published_at"))


class Publication:
    def __init__(self, store, caller, now: datetime):
        self.store, self.caller, self.now = store, caller, now

    def _doc(self, consultation_id: str, field: str = "consultation_id") -> dict:
        doc = self.store.get_consultation(consultation_id)
        if doc is None or doc["state"] not in domain.visible_states(self.caller.role):
            raise NotFound("Consultation introuvable.", field)
        return doc

    def _published(self, doc: dict) -> None:
        if not published(doc, self.now):
            raise Conflict("Les résultats ne sont pas encore publiés : ils le sont après la clôture, par un agent.",
                           "state")

    # -- results ---------------------------------------------------------------------------------------------
    def outcome(self, doc: dict) -> dict[str, tuple[int, int, bool]] | None:
        """A published budget's projects: {id: (online votes, paper votes, winner)}; None while unpublished."""
        if not published(doc, self.now):
            return None
        return {p.project_id: (p.online, p.paper, p.winner) for h in self._headings(doc) for p in h.projects}

    def _headings(self, doc: dict, counters: dict | None = None):
        counters = self.store.counters(doc["_id"]) if counters is None else counters
        projects = [records.project(p) for p in self.store.projects_of(doc["_id"])]
        online = {k[2:]: int(v) for k, v in counters.items() if k.startswith("v:")}
        paper = {k[3:]: int(v) for k, v in counters.items() if k.startswith("pv:")}
        return budget.budget_outcome(records.budget_settings(doc), projects, online, paper)

    def results(self, consultation_id: str, doc: dict | None = None) -> dict:
        if doc is None:  # read often while a vote runs (the participation count): a recent copy will do
            doc = self.store.recent_consultation(consultation_id)
            if doc is None or doc["state"] not in domain.visible_states(self.caller.role):
                raise NotFound("Consultation introuvable.", "id")
        state = records.state_now(doc, self.now)
        counters = self.store.counters(doc["_id"])
        out = {"consultation_id": doc["_id"], "kind": doc["kind"], "state": state,
               "participation": views.participation(counters) if domain.participation_visible(state)
               else views.participation({})}
        if not published(doc, self.now):
            return out
        out["published_at"] = doc.get("results_published_at")
        out["paper_entries_excluded"] = self.store.excluded_paper_entries(doc["_id"])
        if doc["kind"] == "BUDGET":
            settings = records.budget_settings(doc)
            out["tie_break"] = settings.tie_break
            out["headings"] = [{"heading_id": h.heading_id, "name": h.name, "amount_cents": h.amount_cents,
                                "spent_cents": h.spent_cents, "remaining_cents": h.remaining_cents,
                                "winners": h.winners,
                                "projects": [{"project_id": p.project_id, "title": p.title, "price_cents": p.price_cents,
                                              "votes": {"online": p.online, "paper": p.paper, "total": p.total},
                                              "winner": p.winner, "rank": p.rank} for p in h.projects]}
                               for h in self._headings(doc, counters)]
        else:
            out["questions"] = [q.model_dump() for q in results.question_results(records.form(doc), counters)]
        return out

    # -- receipts ---------------------------------------------------------------------------------------------
    def _receipt_entry(self, ballot: dict) -> dict:
        answers = [c.Answer.model_validate(a) for a in ballot.get("answers") or []]
        return {"receipt_code": ballot["receipt"], "headings": ballot.get("headings") or [],
                "answers": [a.model_dump() for a in ballots.public_content(answers)]}

    def receipts(self, req: c.ListReceipts) -> dict:
        doc = self._doc(req.consultation_id)
        if not doc["secret"]:
            raise BadInput("Cette consultation n'est pas à bulletin secret : elle n'a pas de reçus.", "consultation_id")
        self._published(doc)
        after = None
        if req.after:
            after = ballots.normalise_receipt_code(domain.decode_cursor(req.after, 1)[0]) or ""
        rows = self.store.ballots(doc["_id"], after, req.first + 1)
        has_next, rows = len(rows) > req.first, rows[: req.first]
        end = domain.encode_cursor(rows[-1]["receipt"]) if rows else None
        return {"items": [self._receipt_entry(b) for b in rows], "has_next": has_next, "end_cursor": end,
                "total": int(self.store.counters(doc["_id"]).get("p:web", 0))}

    def verify(self, req: c.VerifyReceipt) -> dict:
        doc = self._doc(req.consultation_id)
        self._published(doc)
        code = ballots.parse_receipt_code(req.receipt_code)
        ballot = self.store.ballot_by_receipt(doc["_id"], code)
        if ballot is None:
            raise NotFound("Aucun bulletin ne porte ce code de reçu dans cette consultation.", "receipt_code")
        return self._receipt_entry(ballot)

    # -- exports ------------------------------------------------------------------------------------------------
    def export(self, req: c.ExportResults) -> dict:
        doc = self._doc(req.consultation_id)
        self._published(doc)
        name = f"{doc['_id']}-resultats"
        if req.format == "JSON":
            data = c.ConsultationResults.model_validate(self.results(doc["_id"], doc)).model_dump(mode="json")
            data = {"licence": LICENCE, "title": doc["title"], **data}
            return {"filename": f"{name}.json", "content_type": "application/json; charset=utf-8",
                    "content": json.dumps(data, ensure_ascii=False, indent=1)}
        if req.format == "CSV":
            content = results.results_csv(c.ConsultationResults.model_validate(self.results(doc["_id"], doc)))
            return {"filename": f"{name}.csv", "content_type": "text/csv; charset=utf-8", "content": content}
        if doc["kind"] != "BUDGET":
            raise BadInput("Le format Pabulib est celui des budgets participatifs.", "format")
        return self._pabulib(doc, req.heading_id)

    def _pabulib(self, doc: dict, heading_id: str | None) -> dict:
        settings = records.budget_settings(doc)
        if heading_id is None and len(settings.headings) == 1:
            heading_id = settings.headings[0].id
        heading = next((h for h in settings.headings if h.id == heading_id), None)
        if heading is None:
            raise BadInput("Pabulib : un fichier par section ; indiquez la section (headingId) parmi "
                           + ", ".join(h.id for h in settings.headings) + ".", "heading_id")
        outcome = next(h for h in self._headings(doc) if h.heading_id == heading.id)
        pb_ballots = []
        for b in self.store.ballots(doc["_id"]):
            lines = [tuple(hb["project_ids"]) for hb in b.get("headings") or [] if hb["heading_id"] == heading.id]
            if lines:
                pb_ballots.append(PbBallot(lines[0]))
        for entry in self.store.matched_paper_ballots(doc["_id"]):
            for b in entry.get("agreed") or []:
                lines = [tuple(hb["project_ids"]) for hb in b.get("headings") or [] if hb["heading_id"] == heading.id]
                if lines:
                    pb_ballots.append(PbBallot(lines[0], paper=True))
        locations = {p["_id"]: c.GeoPoint.model_validate(p["location"]) if p.get("location") else None
                     for p in self.store.projects_of(doc["_id"], heading.id)}
        balloting = next(p for p in settings.phases if p.kind == "BALLOTING")
        instance = settings.instance or f"{domain.to_paris(balloting.starts_at):%Y}"
        content = export_heading(settings, heading, outcome, pb_ballots, description=doc["title"], instance=instance,
                                 locations=locations)
        return {"filename": f"{doc['_id']}-{heading.id}.pb", "content_type": "text/plain; charset=utf-8",
                "content": content}
