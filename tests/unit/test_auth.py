"""Bearer tokens: role and scope, expiry, tampering, revocation."""
import time

import jwt
import pytest

from contracts.errors import BadInput, Unauthenticated
from gateway import auth

SECRET = "s" * 32


def test_a_token_carries_role_and_scope():
    t = auth.issue(SECRET, "organizer", subject="u1", org="org-commune-labege", ttl=60)
    caller = auth.verify(SECRET, t.value)
    assert (caller.role, caller.subject, caller.org, caller.token_id) == ("organizer", "u1", "org-commune-labege", t.token_id)


def test_scoped_roles_need_their_scope():
    with pytest.raises(BadInput):
        auth.issue(SECRET, "organizer")
    with pytest.raises(BadInput):
        auth.issue(SECRET, "kiosk")
    with pytest.raises(BadInput):
        auth.issue(SECRET, "superuser")


def test_expired_tampered_foreign_and_revoked_tokens_are_refused():
    expired = auth.issue(SECRET, "agent", ttl=-1).value
    with pytest.raises(Unauthenticated, match="expiré"):
        auth.verify(SECRET, expired)
    good = auth.issue(SECRET, "agent", ttl=60)
    header, payload, sig = good.value.split(".")
    forged = jwt.encode({**jwt.decode(good.value, options={"verify_signature": False}), "role": "operator"},
                        "another-secret-of-the-same-length-32b", algorithm="HS256")
    for bad in (f"{header}.{payload}x.{sig}", forged, "nonsense"):
        with pytest.raises(Unauthenticated):
            auth.verify(SECRET, bad)
    with pytest.raises(Unauthenticated, match="révoqué"):
        auth.verify(SECRET, good.value, revoked={good.token_id})


def test_default_lifetimes_are_bounded():
    t = auth.issue(SECRET, "agent")
    assert t.expires_at - time.time() <= 12 * 3600 + 5


def test_a_service_token_carries_its_regies_and_only_a_service_token_does():
    t = auth.issue(SECRET, "service", subject="service:facturation", regies=["regie-eau", "regie-eau", "regie-a"])
    caller = auth.verify(SECRET, t.value)
    assert (caller.role, caller.regies) == ("service", ["regie-a", "regie-eau"])
    assert auth.verify(SECRET, auth.issue(SECRET, "agent").value).regies is None
    with pytest.raises(BadInput, match="régies"):
        auth.issue(SECRET, "service")
    with pytest.raises(BadInput, match="service"):
        auth.issue(SECRET, "agent", regies=["regie-eau"])
    # A service token without its régies (made by hand with the secret) is no token.
    bare = jwt.encode({**jwt.decode(t.value, options={"verify_signature": False}), "regies": []}, SECRET,
                      algorithm="HS256")
    with pytest.raises(Unauthenticated):
        auth.verify(SECRET, bare)
