"""People's accounts: the roles granted to email addresses (agent, operator, organiser of an organisation), the
sessions that signing in opens, and their end when a role is taken away or changed.

Signing in is the same for everybody (a code by email, `verify_login_code`); the address's account, when it has
one, says which role its token gets. Each session's token id is recorded: taking the role away (or changing it)
revokes the address's live tokens through the one revocation list every gateway already follows (refused within
5 s everywhere, fail closed), rather than a second mechanism (a per-account "valid after" stamp) that every
gateway would have to load and check as well.
"""
from __future__ import annotations

from datetime import datetime, timedelta

from contracts import notification as c
from contracts.errors import BadInput, Forbidden, NotFound
from services.notification import domain

# Who may give or take away each role: operators for agents and operators, agents too for organisers.
GRANTORS = {"agent": {"operator"}, "operator": {"operator"}, "organizer": {"agent", "operator"}}
ROLE_LABELS = {"agent": "agent", "operator": "opérateur", "organizer": "organisateur"}


def role_of(store, email: str) -> tuple[str, str | None]:
    """The role signing in with `email` gives (citizen without an account), and its organisation."""
    account = store.account(email)
    if account is None:
        return "citizen", None
    return account["role"], account.get("org")


def open_session(store, token_id: str | None, email: str, role: str, org: str | None, now: datetime) -> datetime:
    """Record the session the gateway is about to issue; returns when it ends."""
    expires_at = now + timedelta(seconds=c.SESSION_TTL[role])
    if token_id:
        store.open_session({"_id": token_id, "email": email, "role": role, "org": org, "created_at": now,
                            "expires_at": expires_at})
    return expires_at


def _may_change(caller, role: str, existing: dict | None) -> None:
    allowed = GRANTORS[role]
    if existing is not None:
        allowed = allowed & GRANTORS[existing["role"]]
    if caller.role not in allowed:
        if existing is not None and caller.role == "agent":
            raise Forbidden(f"Cette adresse a le rôle {ROLE_LABELS[existing['role']]} : seul un opérateur peut le "
                            "changer.", "email")
        raise Forbidden("Seul un opérateur peut donner ou retirer ce rôle.", "role")


def _not_oneself(caller, secret: str, email: str) -> None:
    if caller.subject and caller.subject == domain.citizen_id(secret, email):
        raise Forbidden("Vous ne pouvez pas changer votre propre rôle : demandez-le à un autre opérateur.", "email")


def end_sessions(store, email: str, now: datetime, reason: str) -> list[str]:
    """Revoke every live session of `email`; their token ids."""
    ended = []
    for session in store.live_sessions(now, email):
        store.revoke(session["_id"], datetime.fromtimestamp(session["expires_ts"], now.tzinfo), reason)
        ended.append(session["_id"])
    return ended


def grant(store, caller, secret: str, req: c.GrantRole, now: datetime) -> dict:
    email = domain.normalise_email(req.email)
    existing = store.account(email)
    _may_change(caller, req.role, existing)
    _not_oneself(caller, secret, email)
    org_name = None
    if req.role == "organizer":
        if not req.org:
            raise BadInput("Indiquez l'organisation dont l'adresse sera organisatrice.", "org")
        contact = store.organization_contact(req.org)
        if contact is None:
            raise BadInput(f"Organisation inconnue : {req.org}.", "org")
        org_name = contact["name"]
    elif req.org:
        raise BadInput("Seul un organisateur est rattaché à une organisation.", "org")
    doc = {"_id": email, "role": req.role, "org": req.org if req.role == "organizer" else None, "org_name": org_name,
           "granted_by": caller.subject, "granted_at": now}
    changed = existing is not None and (existing["role"], existing.get("org")) != (doc["role"], doc["org"])
    store.save_account(doc)
    ended = end_sessions(store, email, now, "rôle changé") if changed else []
    return _account(doc, ended)


def revoke(store, caller, secret: str, req: c.AccountRef, now: datetime) -> dict:
    email = domain.normalise_email(req.email)
    existing = store.account(email)
    if existing is None:
        raise NotFound("Cette adresse n'a aucun rôle.", "email")
    _may_change(caller, existing["role"], existing)
    _not_oneself(caller, secret, email)
    store.delete_account(email)
    return _account(existing, end_sessions(store, email, now, "rôle retiré"))


def list_accounts(store, caller, req: c.ListAccounts) -> list[dict]:
    role = req.role
    if caller.role == "agent":  # agents manage organisers only, and see only them
        if role not in (None, "organizer"):
            raise Forbidden("Seuls les opérateurs voient les agents et les opérateurs.", "role")
        role = "organizer"
    return [_account(d) for d in store.accounts(role, req.org)]


def sessions(store, req: c.ListSessions, now: datetime) -> list[dict]:
    email = domain.normalise_email(req.email) if req.email else None
    return [{"token_id": s["_id"], "email": s["email"], "role": s["role"], "org": s.get("org"),
             "created_at": s["created_at"], "expires_at": datetime.fromtimestamp(s["expires_ts"], now.tzinfo)}
            for s in store.live_sessions(now, email, req.limit)]


def _account(doc: dict, ended: list[str] | None = None) -> dict:
    return {"email": doc["_id"], "role": doc["role"], "org": doc.get("org"), "org_name": doc.get("org_name"),
            "granted_by": doc.get("granted_by"), "granted_at": doc["granted_at"], "ended_sessions": ended or []}
