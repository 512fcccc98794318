"""Who a citizen is, across services: the id a verified email address gets (the subject of the citizen token).

The notification service verifies an address at sign-in (`verify_login_code`) and the gateway issues a citizen token
whose subject is this id, a keyed hash of the normalised address under the platform's secret (PARVIS_SECRET, which
every process reads). A service told an address by an agent (a panel's list, a voter checked in at a booth) derives
the same id itself, so that it recognises the citizen who signs in with that address without storing the address,
asking another service for it, or being able to read it back from the id.
"""
from __future__ import annotations

import hashlib
import hmac

from email_validator import EmailNotValidError, validate_email


def normalise_email(value: str) -> str | None:
    """The address as the sign-in normalises it (email_validator, lower case); None when it is no address."""
    try:
        return validate_email((value or "").strip(), check_deliverability=False).normalized.lower()
    except EmailNotValidError:
        return None


def citizen_id(secret: str, email: str) -> str:
    """A stable, opaque id for a verified (normalised) address: the token's subject; the address is not in it."""
    return "cit-" + hmac.new(secret.encode(), f"citizen:{email}".encode(), hashlib.sha256).hexdigest()[:20]
