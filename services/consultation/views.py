"""What the consultation service answers about its documents, as the contracts shape it, and as the caller may see
it (drafts and authors for agents, counts once published, prices once public)."""
from __future__ import annotations

from datetime import datetime

from services.common.mongo import utcnow
from services.consultation import budget, domain, phases, records

PROJECT_PATH = "/consultations/{budget}/projects/{id}"


def participants(counters: dict) -> int:
    return domain.participation_total(int(counters.get("p:web", 0)), int(counters.get("p:booth", 0)),
                                      int(counters.get("p:letter", 0)), int(counters.get("p:paper", 0)))


def participation(counters: dict) -> dict:
    return {"web": int(counters.get("p:web", 0)), "booth": int(counters.get("p:booth", 0)),
            "letter": int(counters.get("p:letter", 0)), "paper_ballots": int(counters.get("p:paper", 0)),
            "blank": int(counters.get("p:blank", 0)), "null": int(counters.get("p:null", 0)),
            "total": participants(counters)}


def budget_view(doc: dict, now: datetime) -> dict | None:
    settings = records.budget_settings(doc)
    if settings is None:
        return None
    current = records.phase_now(doc, now)
    return {"phases": [{**p.model_dump(), "current": p.kind == current} for p in settings.phases],
            "current_phase": current, "headings": [h.model_dump() for h in settings.headings],
            "rule": settings.rule.model_dump(), "max_headings_per_voter": settings.max_headings_per_voter,
            "tie_break": settings.tie_break, "tie_break_seed": settings.tie_break_seed, "instance": settings.instance}


def consultation(doc: dict, counters: dict | None, role: str, now: datetime, locked: bool = False) -> dict:
    state = records.state_now(doc, now)
    return {
        "id": doc["_id"], "title": doc["title"], "summary": doc.get("summary", ""),
        "description": doc.get("description", ""), "description_html": doc.get("description_html", ""),
        "kind": doc["kind"], "scope": doc["scope"], "audience": doc["audience"], "secret": doc["secret"],
        "opens_at": doc.get("opens_at"), "closes_at": doc.get("closes_at"), "state": state,
        "meetings": doc.get("meetings") or [], "questions": doc.get("questions") or [], "questions_locked": locked,
        "revisions": doc.get("revisions") or [], "budget": budget_view(doc, now),
        "participants": participants(counters or {}) if domain.participation_visible(state) else None,
        "results_published_at": doc.get("results_published_at"), "created_at": doc["created_at"],
        "updated_at": doc["updated_at"], "created_by": doc.get("created_by") if role in domain.STAFF else None,
        "url": domain.PUBLIC_PATH.format(id=doc["_id"]),
    }


def facts(doc: dict, actor: str | None) -> dict:
    """The fields every consultation event carries."""
    return {"id": doc["_id"], "title": doc["title"], "kind": doc["kind"], "audience": doc["audience"],
            "scope": doc["scope"], "secret": doc["secret"], "opens_at": doc.get("opens_at"),
            "closes_at": doc.get("closes_at"), "url": domain.PUBLIC_PATH.format(id=doc["_id"]), "actor": actor,
            "meetings": doc.get("meetings") or []}


def project(doc: dict, consultation_doc: dict, caller, counters: dict | None, now: datetime,
            results: dict[str, tuple[int, int, bool]] | None = None) -> dict:
    """A project as the caller may see it: its author for agents and himself, its price once prices are public (to
    agents always), its votes and whether it won once results are published."""
    settings = records.budget_settings(consultation_doc)
    heading = next((h for h in settings.headings if h.id == doc["heading_id"]), None)
    staff = caller.role in domain.STAFF
    mine = caller.role == "citizen" and caller.subject == doc.get("author")
    phase = records.phase_now(consultation_doc, now)
    price_public = staff or phase in budget.PRICES_PUBLIC_PHASES
    out = {
        "id": doc["_id"], "budget_id": doc["budget_id"], "heading_id": doc["heading_id"],
        "heading_name": heading.name if heading else doc["heading_id"], "title": doc["title"],
        "description": doc["description"], "estimated_cost_cents": doc["estimated_cost_cents"],
        "location": doc.get("location"), "address": doc.get("address", ""),
        "author": doc.get("author") if staff or mine else None, "mine": mine, "moderation": doc["moderation"],
        "rejection_reason": doc.get("rejection_reason") if staff or mine else None,
        "feasibility": doc.get("feasibility", "UNDECIDED"),
        "unfeasibility_explanation": doc.get("unfeasibility_explanation"),
        "price_cents": doc.get("price_cents") if price_public else None,
        "price_explanation": doc.get("price_explanation") if price_public else None,
        "selected": bool(doc.get("selected")), "supports": int((counters or {}).get(f"s:{doc['_id']}", 0)),
        "submitted_at": doc["submitted_at"], "updated_at": doc["updated_at"],
        "url": PROJECT_PATH.format(budget=doc["budget_id"], id=doc["_id"]),
    }
    if results is not None and doc["_id"] in results:
        online, paper, winner = results[doc["_id"]]
        out["votes"] = {"online": online, "paper": paper, "total": online + paper}
        out["winner"] = winner
    return out


def project_facts(doc: dict) -> dict:
    return {"project_id": doc["_id"], "budget_id": doc["budget_id"], "heading_id": doc["heading_id"],
            "title": doc["title"], "author": doc["author"],
            "url": PROJECT_PATH.format(budget=doc["budget_id"], id=doc["_id"])}


def response(doc: dict | None, consultation_id: str, secret: bool, voted: bool) -> dict:
    """The caller's answers: his draft when he has one, else what he submitted. A secret response, once cast, is
    in the ballot box and no longer his to read: only that it was cast. (Its draft is deleted with the round's
    document, which under load is after the answer, in the next round's first write: casting.py; meanwhile that
    draft is not his answer any more.)"""
    if secret and voted:
        return {"consultation_id": consultation_id, "status": "SUBMITTED", "answers": [], "final": True,
                "saved_at": utcnow(), "submitted_at": None}
    if doc is None or (doc.get("draft") is None and doc.get("answers") is None):
        if voted:
            return {"consultation_id": consultation_id, "status": "SUBMITTED", "answers": [], "final": secret,
                    "saved_at": utcnow(), "submitted_at": None}
        return {"consultation_id": consultation_id, "status": "DRAFT", "answers": [],
                "saved_at": utcnow(), "submitted_at": None}
    draft = doc.get("draft")
    return {"consultation_id": consultation_id, "status": "DRAFT" if draft is not None else "SUBMITTED",
            "answers": draft if draft is not None else doc.get("answers") or [],
            "saved_at": records.from_ts(doc.get("saved_ts")), "submitted_at": records.from_ts(doc.get("submitted_ts")),
            "final": False}


def participation_item(p: dict, doc: dict, now: datetime) -> dict:
    """That the caller took part, how and when: a response that is not secret was SUBMITTED (and may still change
    until closing); a secret one, a budget ballot or a vote at a booth VOTED."""
    status = "VOTED" if doc.get("secret") or doc["kind"] == "BUDGET" or p["origin"] != "WEB" else "SUBMITTED"
    return {"consultation_id": doc["_id"], "title": doc["title"], "kind": doc["kind"],
            "state": records.state_now(doc, now), "origin": p["origin"], "status": status,
            "participated_at": records.from_ts(p["at_ts"]), "closes_at": doc.get("closes_at")}


def paper_entry(doc: dict) -> dict:
    return {"id": doc["_id"], "consultation_id": doc["consultation_id"], "booth_id": doc["booth_id"],
            "sheet_ref": doc["sheet_ref"], "kind": doc["kind"], "status": doc["status"],
            "entries": len(doc.get("entries") or []), "agents": [e["agent"] for e in doc.get("entries") or []],
            "differences": doc.get("differences") or [], "updated_at": records.from_ts(doc["updated_ts"])}


def phase_facts(doc: dict, change: phases.PhaseChange, actor: str | None) -> dict:
    return {"budget_id": doc["_id"], "title": doc["title"], "scope": doc["scope"], "previous": change.previous,
            "phase": change.phase, "starts_at": change.starts_at, "ends_at": change.ends_at,
            "url": domain.PUBLIC_PATH.format(id=doc["_id"]), "actor": actor}
