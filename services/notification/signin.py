"""Sign-in by a code sent by email: asking for a code, checking it, and the session it opens (accounts.py says which
role). The answers never tell whether an address is known; only the limits (per address, per connection, over
time) can refuse."""
from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from contracts import notification as c
from contracts.errors import BadInput
from services.notification import accounts, domain
from services.notification.dispatch import new_notification


def request_code(store, settings, req: c.RequestLoginCode, now: datetime) -> dict:
    email = domain.normalise_email(req.email)
    hour = timedelta(hours=1)
    # The same answer whether the address is known or not: only the limits can refuse. The limit per address
    # counts per connection, so that somebody else asking codes for your address does not lock you out; a
    # higher one for the address overall stops mail bombing from many connections.
    limits = settings
    if req.client_ip and store.hit_rate_limit(f"ip:{req.client_ip}", hour, now) > limits.login_codes_per_ip:
        raise BadInput("Trop de demandes de code depuis cette connexion : réessayez dans une heure.", "email")
    if (store.hit_rate_limit(f"email:{email}|{req.client_ip}", hour, now) > limits.login_codes_per_address
            or store.hit_rate_limit(f"email:{email}", hour, now) > 4 * limits.login_codes_per_address):
        raise BadInput("Trop de demandes de code pour cette adresse : réessayez dans une heure.", "email")
    code = domain.new_login_code()
    store.save_login_code(email, domain.code_digest(settings.secret, email, code), now + domain.LOGIN_CODE_TTL)
    tpl = domain.template("login_code")
    minutes = int(domain.LOGIN_CODE_TTL.total_seconds() // 60)
    parts = domain.render(tpl, "email", {"code": code, "minutes": minutes})
    store.insert_notifications([new_notification(
        event_id=f"login-{uuid.uuid4().hex}", event_type=None, template=tpl, channel="email",
        recipient=email, address=email, parts=parts, now=now)])
    return {"sent": True, "expires_in_seconds": int(domain.LOGIN_CODE_TTL.total_seconds())}


def verify_code(store, settings, req: c.VerifyLoginCode, now: datetime) -> dict:
    email = domain.normalise_email(req.email)
    refused = BadInput("Code invalide ou expiré : demandez un nouveau code.", "code")
    hour = timedelta(hours=1)
    # Attempts over time, whatever the codes asked for (each new code resets its own count of attempts).
    if ((req.client_ip and store.hit_rate_limit(f"verify-ip:{req.client_ip}", hour, now)
         > settings.login_attempts_per_ip)
            or store.hit_rate_limit(f"verify-email:{email}", hour, now) > settings.login_attempts_per_address):
        raise BadInput("Trop d'essais de code : réessayez dans une heure.", "code")
    doc = store.take_login_attempt(email, now, domain.LOGIN_CODE_ATTEMPTS)
    if doc is None:
        raise refused
    if not domain.hmac_equal(doc["digest"], domain.code_digest(settings.secret, email, req.code.strip())):
        raise refused
    store.delete_login_code(email)
    citizen_id = domain.citizen_id(settings.secret, email)
    store.ensure_citizen(citizen_id, email)
    role, org = accounts.role_of(store, email)
    expires_at = accounts.open_session(store, req.token_id, email, role, org, now)
    return {"citizen_id": citizen_id, "email": email, "role": role, "org": org, "expires_at": expires_at}
