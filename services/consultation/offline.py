"""Taking part offline: voters checked in at a booth (or by letter) by an agent, and paper ballots entered by agents
from ballot sheets (one ballot at a time, CONSUL's ballot sheets) or booth totals (Decidim's paper ballot results),
each sheet entered twice and counted only once two agents agree (ballots.double_entry).

A check-in is a participation under the same unique key as an online ballot: the citizen checked in cannot vote
online, and a citizen who voted online cannot be checked in. A person is named by email (the id his sign-in token
carries, derived from the address: services/common/identity.py) or, for people without an address (who cannot
vote online anyway: online voting needs a code sent by email), by phone (a keyed hash of the number).

A sheet's counts follow its status: when it becomes agreed, what it adds is applied; when a later entry breaks the
agreement, it is taken back (the difference, like a replaced survey response), with the sheet's write and by its
marker (see store.py).
"""
from __future__ import annotations

from collections import Counter
from datetime import datetime

from contracts import consultation as c
from contracts.errors import BadInput, Conflict, NotFound
from services.common import identity
from services.consultation import ballots, budget, domain, questions, records, results, views
from services.consultation.metrics import PAPER_MISMATCHES, PARTICIPATIONS
from services.consultation.publication import published

STATUS_ORDER = {"MISMATCH": 0, "AWAITING_SECOND_ENTRY": 1, "MATCHED": 2}


class Offline:
    def __init__(self, store, caller, secret: str, now: datetime):
        self.store, self.caller, self.secret, self.now = store, caller, secret, now

    def _doc(self, consultation_id: str) -> dict:
        self.caller.require({"agent"})
        doc = self.store.get_consultation(consultation_id)
        if doc is None:
            raise NotFound("Consultation introuvable.", "consultation_id")
        return doc

    # -- check-ins ---------------------------------------------------------------------------------------
    def check_in(self, req: c.CheckInVoter) -> dict:
        doc = self._doc(req.consultation_id)
        state = records.state_now(doc, self.now)
        if state != "OPEN" or (doc["kind"] == "BUDGET" and records.phase_now(doc, self.now) != "BALLOTING"):
            raise Conflict("On enregistre un votant pendant le vote seulement.", "state")
        if req.origin == "BOOTH" and not req.booth_id:
            raise BadInput("Bureau de vote : indiquez-le (boothId).", "booth_id")
        keys = []
        if req.email:
            email = identity.normalise_email(req.email)
            if email is None:
                raise BadInput(f"Adresse électronique invalide : « {req.email} ».", "email")
            keys.append(identity.citizen_id(self.secret, email))
            if doc["audience"] == "PANEL" and not self.store.is_panel_member(doc["_id"], keys[0]):
                raise Conflict("Cette personne n'est pas membre du panel de cette consultation.", "email")
        if req.phone:
            phone = domain.normalise_phone(req.phone)
            if phone is None:
                raise BadInput(f"Numéro de téléphone invalide : « {req.phone} ».", "phone")
            keys.append("tel-" + domain.identity_key(self.secret.encode(), "phone", phone)[:24])
        if not keys:
            raise BadInput("Indiquez l'adresse électronique (ou, à défaut, le téléphone) du votant.", "email")
        base = {"consultation_id": doc["_id"], "origin": req.origin, "at": self.now, "at_ts": self.now.timestamp()}
        if req.booth_id:
            base["booth_id"] = req.booth_id
        # The phone, when the email is given too, is claimed first and counts nothing: it only stops a second
        # check-in under the number. The person counts once, under the first key of `keys`.
        claimed = []
        for i, key in enumerate(reversed(keys)):
            counted = i == len(keys) - 1
            doc_p = {"_id": f"{doc['_id']}:{key}", "voter": key, **base}
            if counted:
                doc_p.update(self.store.pending_count(doc["_id"], {f"p:{req.origin.lower()}": 1}))
            else:
                doc_p["alias"] = True
            existing = self.store.insert_participation(doc_p)
            if existing is not None:
                for done in claimed:
                    self.store.delete_participation(done)
                domain.check_participation(existing.get("origin", "WEB"), req.origin, final=True)
            claimed.append(doc_p["_id"])
            if counted:
                self.store.finish_count("participations", doc_p)
        PARTICIPATIONS.labels("ballot" if doc["kind"] == "BUDGET" or doc["secret"] else "response",
                              req.origin.lower()).inc()
        return {"consultation_id": doc["_id"], "origin": req.origin, "booth_id": req.booth_id,
                "checked_in_at": self.now}

    # -- paper ---------------------------------------------------------------------------------------------
    def enter_ballots(self, req: c.EnterPaperBallots) -> dict:
        doc = self._open_to_paper(req.consultation_id)
        if doc["kind"] == "BUDGET":
            settings = records.budget_settings(doc)
            projects = {p["_id"]: records.project(p) for p in self.store.projects_of(doc["_id"])}

            def check(b: c.PaperBallot) -> dict:
                if b.answers:
                    raise BadInput("un bulletin de budget porte des projets, pas des réponses.", "answers")
                lines = budget.validate_ballot(settings, projects, b.headings, phase=None)
                return {"headings": [hb.model_dump() for hb in lines]}
        else:
            form = records.form(doc)

            def check(b: c.PaperBallot) -> dict:
                if b.headings:
                    raise BadInput("un questionnaire porte des réponses, pas des projets.", "headings")
                answers = questions.validate_response(form, b.answers, submit=True)
                return {"answers": [a.model_dump(exclude_none=True, exclude_defaults=True) for a in answers]}
        content = ballots.sheet_content(req.ballots, check)
        return self._enter(doc, req.booth_id, req.sheet_ref, "BALLOTS", content)

    def enter_totals(self, req: c.EnterPaperTotals) -> dict:
        doc = self._open_to_paper(req.consultation_id)
        if doc["kind"] == "BUDGET":
            projects = {p["_id"]: records.project(p) for p in self.store.projects_of(doc["_id"])}
            budget.validate_project_totals(records.budget_settings(doc), projects, req)
        else:
            if req.projects:
                raise BadInput("Questionnaire : saisissez des totaux par option, pas par projet.", "projects")
            if req.blank + req.null > req.ballots:
                raise BadInput(f"Blancs et nuls ({req.blank + req.null}) : plus que de bulletins dans l'urne "
                               f"({req.ballots}).", "ballots")
            results.totals_increments(records.form(doc), req.options, req.ballots - req.blank - req.null)
        return self._enter(doc, req.booth_id, req.sheet_ref, "TOTALS", ballots.totals_content(req))

    def _open_to_paper(self, consultation_id: str) -> dict:
        doc = self._doc(consultation_id)
        ballots.check_paper_entry_allowed(records.state_now(doc, self.now), published(doc, self.now))
        return doc

    def increments(self, doc: dict, kind: str, agreed) -> dict[str, int]:
        """What an agreed sheet adds to the counters: its papers (blank and null included), and its votes."""
        inc: Counter = Counter()
        if agreed is None:
            return {}
        if kind == "TOTALS":
            inc.update({"p:paper": agreed["ballots"], "p:blank": agreed["blank"], "p:null": agreed["null"]})
            if doc["kind"] == "BUDGET":
                inc.update({f"pv:{pid}": n for pid, n in agreed["projects"].items()})
            else:
                totals = [c.OptionTotal(question_id=k.split(":")[0], option_id=k.split(":")[-1],
                                        row_id=k.split(":")[1] if k.count(":") == 2 else None, votes=n)
                          for k, n in agreed["options"].items()]
                inc.update(results.totals_increments(records.form(doc), totals,
                                                     agreed["ballots"] - agreed["blank"] - agreed["null"]))
        else:
            form = None if doc["kind"] == "BUDGET" else records.form(doc)
            for b in agreed:
                inc["p:paper"] += 1
                if b.get("blank"):
                    inc["p:blank"] += 1
                elif b.get("null"):
                    inc["p:null"] += 1
                elif form is None:
                    inc.update({f"pv:{pid}": 1 for hb in b["headings"] for pid in hb["project_ids"]})
                else:
                    inc.update(results.response_increments(form, [c.Answer.model_validate(a) for a in b["answers"]]))
        return {k: v for k, v in inc.items() if v}

    def _enter(self, doc: dict, booth_id: str, sheet_ref: str, kind: str, content) -> dict:
        entry_id = f"{doc['_id']}:{booth_id}:{sheet_ref}"
        agent = self.caller.subject or "agent"
        for _ in range(5):
            current = self.store.get_paper_entry(entry_id)
            if current is not None and current.get("count_token"):
                self.store.finish_count("paper_entries", current)
                continue
            if current is not None and current["kind"] != kind:
                raise Conflict(f"La feuille {sheet_ref} du bureau {booth_id} est déjà saisie en "
                               f"{'totaux' if current['kind'] == 'TOTALS' else 'bulletins'}.", "sheet_ref")
            entries = (current or {}).get("entries", []) + [{"agent": agent, "content": content,
                                                             "at_ts": self.now.timestamp()}]
            state = ballots.double_entry([(e["agent"], e["content"]) for e in entries])
            applied = self.increments(doc, kind, state.agreed if state.status == "MATCHED" else None)
            before = (current or {}).get("applied") or {}
            delta = Counter(applied)
            delta.subtract(before)
            delta = {k: v for k, v in delta.items() if v}
            new = {"_id": entry_id, "consultation_id": doc["_id"], "booth_id": booth_id, "sheet_ref": sheet_ref,
                   "kind": kind, "entries": entries, "status": state.status, "agreed": state.agreed,
                   "differences": [d.__dict__ for d in state.differences], "applied": applied,
                   "version": ((current or {}).get("version") or 0) + 1, "updated_ts": self.now.timestamp()}
            if state.status == "MISMATCH":
                new["mismatch"] = doc["_id"]
            if delta:
                new.update(self.store.pending_count(doc["_id"], delta))
            if self.store.write_paper_entry(new, current["version"] if current else None):
                self.store.finish_count("paper_entries", new)
                counted = delta.get("p:paper", 0)
                if counted:
                    PARTICIPATIONS.labels("ballot" if doc["kind"] == "BUDGET" else "response", "paper").inc(
                        max(0, counted))
                PAPER_MISMATCHES.set(self.store.open_mismatches())
                return views.paper_entry(new)
        raise Conflict("Cette feuille est saisie en ce moment par un autre agent : rechargez-la.", "sheet_ref")

    def page(self, req: c.ListPaperEntries) -> dict:
        doc = self._doc(req.consultation_id)
        docs = sorted(self.store.paper_entries(doc["_id"], list(req.statuses)),
                      key=lambda d: (STATUS_ORDER[d["status"]], d["_id"]))
        after = domain.decode_cursor(req.after, 2)
        total = len(docs)
        if after is not None:
            docs = [d for d in docs if (STATUS_ORDER[d["status"]], d["_id"]) > (after[0], after[1])]
        page = docs[: req.first]
        end = domain.encode_cursor(STATUS_ORDER[page[-1]["status"]], page[-1]["_id"]) if page else None
        return {"items": [views.paper_entry(d) for d in page], "total": total, "end_cursor": end,
                "has_next": len(docs) > req.first}
