"""Bearer tokens: signed (HS256, PARVIS_SECRET), with a role, a scope, an expiry and an id to revoke."""
from __future__ import annotations

import time
import uuid
from dataclasses import dataclass

import jwt

from contracts.errors import BadInput, Unauthenticated
from contracts.notification import SESSION_TTL
from contracts.platform import Caller

ROLES = ("public", "citizen", "organizer", "agent", "kiosk", "operator", "service")
ISSUER = "parvis"
# A machine client's token (billing software) lives as long as a kiosk's; it is revoked like any other.
DEFAULT_TTL = {**SESSION_TTL, "kiosk": 365 * 86400, "service": 365 * 86400, "public": 3600}  # people's as their sessions by sign-in


@dataclass(frozen=True)
class Token:
    value: str
    token_id: str
    expires_at: int


def issue(secret: str, role: str, subject: str | None = None, org: str | None = None,
          kiosk: str | None = None, ttl: int | None = None, token_id: str | None = None,
          regies: list[str] | None = None) -> Token:
    if role not in ROLES:
        raise BadInput(f"role must be one of {', '.join(ROLES)}", "role")
    if role == "organizer" and not org:
        raise BadInput("un jeton d'organisateur demande son organisation (--org)", "org")
    if role == "kiosk" and not kiosk:
        raise BadInput("un jeton de borne demande sa borne (--kiosk)", "kiosk")
    if role == "service" and not regies:
        raise BadInput("un jeton de service demande ses régies (--regie, une ou plusieurs)", "regies")
    if regies and role != "service":
        raise BadInput("seul un jeton de service est limité à des régies", "regies")
    now = int(time.time())
    token_id = token_id or uuid.uuid4().hex
    exp = now + int(ttl if ttl is not None else DEFAULT_TTL[role])
    claims = {"iss": ISSUER, "iat": now, "exp": exp, "jti": token_id, "role": role,
              "sub": subject or f"{role}:{token_id[:8]}"}
    if org:
        claims["org"] = org
    if kiosk:
        claims["kiosk"] = kiosk
    if regies:
        claims["regies"] = sorted(set(regies))
    return Token(jwt.encode(claims, secret, algorithm="HS256"), token_id, exp)


def verify(secret: str, value: str, revoked: set[str] | frozenset = frozenset()) -> Caller:
    try:
        claims = jwt.decode(value, secret, algorithms=["HS256"], issuer=ISSUER,
                            options={"require": ["exp", "iat", "jti", "role"]})
    except jwt.ExpiredSignatureError:
        raise Unauthenticated("Votre jeton a expiré : reconnectez-vous.") from None
    except jwt.InvalidTokenError:
        raise Unauthenticated("Jeton invalide.") from None
    if claims["jti"] in revoked:
        raise Unauthenticated("Ce jeton a été révoqué.")
    if claims["role"] not in ROLES:
        raise Unauthenticated("Jeton invalide.")
    regies = claims.get("regies")
    if claims["role"] == "service" and not (isinstance(regies, list) and regies
                                            and all(isinstance(r, str) for r in regies)):
        raise Unauthenticated("Jeton invalide.")
    return Caller(role=claims["role"], subject=claims.get("sub"), org=claims.get("org"),
                  kiosk=claims.get("kiosk"), token_id=claims["jti"], expires_at=int(claims["exp"]),
                  regies=regies if claims["role"] == "service" else None)


def claims_unverified(value: str) -> dict:
    return jwt.decode(value, options={"verify_signature": False})
