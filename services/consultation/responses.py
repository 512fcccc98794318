"""A citizen taking part online: a draft, a submitted response (replaced until closing, the last one counting, its
counters moved by the difference), a secret response or a budget ballot (cast once, in a round: casting.py), and
what he may read back of it.

A response that is not secret is written with the counts it adds (`count_*`, see store.py) and those are applied
by their marker: a crash in between is finished by the recovery, never counted twice. Its participation is recorded
first, under the unique key a booth check-in uses too, so that a citizen checked in at a booth cannot answer online
(and the other way round).
"""
from __future__ import annotations

import time
from datetime import datetime

from contracts import consultation as c
from contracts.errors import BadInput, Conflict, NotFound, ServiceUnavailable
from services.consultation import ballots, budget, domain, questions, records, results, views
from services.consultation.casting import Cast, UrnState, cast
from services.consultation.metrics import PARTICIPATIONS, REFUSED, TIME_TO_VOTE


class Responses:
    def __init__(self, store, urn: UrnState, caller, now: datetime):
        self.store, self.urn, self.caller, self.now = store, urn, caller, now
        self.started = time.monotonic()

    # -- who may take part -----------------------------------------------------------------------------
    def _consultation(self, consultation_id: str, cached: bool = False) -> dict:
        """The consultation; `cached` (secret ballots, whose round reads it again before writing): a copy at most
        a couple of seconds old."""
        doc = (self.store.recent_consultation(consultation_id) if cached
               else self.store.get_consultation(consultation_id))
        if doc is None or doc["state"] == "DRAFT":
            raise NotFound("Consultation introuvable.", "consultation_id")
        return doc

    def _may_take_part(self, doc: dict) -> str:
        state = records.state_now(doc, self.now)
        member = doc["audience"] != "PANEL" or (self.caller.role == "citizen" and self.store.is_panel_member(
            doc["_id"], self.caller.subject or ""))
        try:
            domain.check_can_take_part(self.caller.role, state, doc["audience"], member)
        except Conflict:
            REFUSED.labels("closed").inc()
            raise
        if not self.caller.subject:
            raise BadInput("Jeton sans sujet : reconnectez-vous.", "token")
        return f"{doc['_id']}:{self.caller.subject}"

    # -- responses -------------------------------------------------------------------------------------------
    def save_draft(self, req: c.SaveResponse) -> dict:
        doc = self._consultation(req.consultation_id)
        key = self._may_take_part(doc)
        if doc["kind"] == "BUDGET":
            raise BadInput("Un budget participatif se vote avec castBudgetBallot.", "consultation_id")
        answers = _invalid_counted(lambda: questions.validate_response(records.form(doc), req.answers, submit=False))
        existing = self.store.get_participation(key)
        if existing is not None and (doc["secret"] or existing["origin"] != "WEB"):
            domain.check_participation(existing["origin"], "WEB", final=doc["secret"])
        saved = self.store.save_draft({"_id": key, "consultation_id": doc["_id"], "voter": self.caller.subject,
                                       "draft": [a.model_dump() for a in answers], "saved_ts": self.now.timestamp()})
        return views.response(saved, doc["_id"], doc["secret"], existing is not None)

    def submit(self, req: c.SaveResponse) -> dict:
        doc = self._consultation(req.consultation_id)
        key = self._may_take_part(doc)
        if doc["kind"] == "BUDGET":
            raise BadInput("Un budget participatif se vote avec castBudgetBallot.", "consultation_id")
        form = records.form(doc)
        answers = _invalid_counted(lambda: questions.validate_response(form, req.answers, submit=True))
        if doc["secret"]:
            receipt = ballots.new_receipt_code()
            ballot = ballots.secret_ballot(doc["_id"], receipt, answers=answers)
            ballot.pop("_id")
            cast(self.store, self.urn, Cast(ballot, self.caller.subject, dict(results.response_increments(form, answers)),
                                            "response", draft=True))
            return {"consultation_id": doc["_id"], "status": "SUBMITTED", "answers": answers, "saved_at": self.now,
                    "submitted_at": self.now, "final": True, "receipt_code": receipt}
        return self._submit_open(doc, key, form, answers)

    def _submit_open(self, doc: dict, key: str, form, answers) -> dict:
        existing = self.store.insert_participation({"_id": key, "consultation_id": doc["_id"],
                                                    "voter": self.caller.subject, "origin": "WEB", "at": self.now,
                                                    "at_ts": self.now.timestamp()})
        if existing is not None:
            if existing.get("round") and self.store.open_rounds([existing["round"]]):
                raise ServiceUnavailable("Votre réponse précédente est en cours d'enregistrement : réessayez.")
            try:
                domain.check_participation(existing["origin"], "WEB", final=False)
            except Conflict:
                REFUSED.labels("already_voted").inc()
                raise
        stored = [a.model_dump() for a in answers]
        for _ in range(5):
            current = self.store.get_response(key)
            if current is not None and current.get("count_token"):
                self.store.finish_count("responses", current)  # an earlier submission's counts, first
                continue
            before = current.get("answers") if current else None
            delta = results.response_delta(form, [c.Answer.model_validate(a) for a in before or []], answers)
            if before is None:
                delta["p:web"] = delta.get("p:web", 0) + 1
            fields = {"consultation_id": doc["_id"], "voter": self.caller.subject, "answers": stored,
                      "submitted_ts": self.now.timestamp(), "saved_ts": self.now.timestamp(),
                      **self.store.pending_count(doc["_id"], delta)}
            written = self.store.submit_response(key, current.get("v", 0) if current else None, fields)
            if written is not None:
                self.store.finish_count("responses", written)
                if before is None:
                    PARTICIPATIONS.labels("response", "online").inc()
                TIME_TO_VOTE.labels("response").observe(time.monotonic() - self.started)
                return views.response({**written, "draft": None}, doc["_id"], False, True)
        raise ServiceUnavailable("Votre réponse change en ce moment depuis un autre appareil : réessayez.")

    def mine(self, req: c.GetMyResponse) -> dict:
        doc = self._consultation(req.consultation_id)
        if self.caller.role != "citizen" or not self.caller.subject:
            raise BadInput("Seul un citoyen connecté a des réponses.", "consultation_id")
        key = f"{doc['_id']}:{self.caller.subject}"
        voted = self.store.get_participation(key) is not None
        return views.response(self.store.get_response(key), doc["_id"], doc["secret"], voted)

    # -- budget ballots -------------------------------------------------------------------------------------
    def cast_ballot(self, req: c.CastBudgetBallot) -> dict:
        job, reply = self.ballot(req)
        cast(self.store, self.urn, job)
        return reply

    def ballot(self, req: c.CastBudgetBallot) -> tuple[Cast, dict]:
        """The caller's budget ballot checked against the budget's rules, ready for its round, and its answer once
        written: BadInput, Forbidden, Conflict raised here (nothing is written for a refused ballot)."""
        doc = self._consultation(req.budget_id, cached=True)
        if doc["kind"] != "BUDGET":
            raise BadInput("Cette consultation n'est pas un budget participatif.", "budget_id")
        self._may_take_part(doc)
        refusal = records.cast_refusal(doc, self.now, "ballot")
        if refusal:
            REFUSED.labels("closed").inc()
            raise Conflict(refusal, "phase")
        settings = records.budget_settings(doc)
        projects = self.store.recent("projects", doc["_id"], lambda: {
            p["_id"]: records.project(p) for p in self.store.projects_of(doc["_id"])})
        lines = _invalid_counted(lambda: budget.validate_ballot(settings, projects, req.headings,
                                                                phase=records.phase_now(doc, self.now)))
        receipt = ballots.new_receipt_code()
        ballot = ballots.secret_ballot(doc["_id"], receipt, headings=lines)
        ballot.pop("_id")
        inc = {f"v:{pid}": n for pid, n in budget.ballot_increments(lines).items()}
        return (Cast(ballot, self.caller.subject, inc, "ballot"),
                {"consultation_id": doc["_id"], "receipt_code": receipt, "headings": lines})

    # -- where the caller took part ---------------------------------------------------------------------------
    def participations(self, req: c.MyParticipations) -> dict:
        if self.caller.role != "citizen" or not self.caller.subject:
            raise BadInput("Seul un citoyen connecté a des participations.", "after")
        after = domain.decode_cursor(req.after, 2)
        rows = self.store.participations_of(self.caller.subject, after, req.first + 1)
        has_next, rows = len(rows) > req.first, rows[: req.first]
        docs = self.store.consultations_by_id(p["consultation_id"] for p in rows)
        items = [views.participation_item(p, docs[p["consultation_id"]], self.now)
                 for p in rows if p["consultation_id"] in docs and docs[p["consultation_id"]]["state"] != "DRAFT"]
        end = domain.encode_cursor(rows[-1]["at_ts"], rows[-1]["_id"]) if rows else None
        return {"items": items, "end_cursor": end, "has_next": has_next}


def _invalid_counted(check):
    try:
        return check()
    except BadInput:
        REFUSED.labels("invalid").inc()
        raise
