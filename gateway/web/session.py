"""The web's sessions and forms' protection.

- **The session** is the signed token itself (the one `verifyLoginCode` issues, of the address's role) in an
  `HttpOnly`, `SameSite=Lax`, `Path=/` cookie, `Secure` in production or behind an https public URL. It is checked
  as a bearer token is (signature, expiry, the revocation list, fail closed): signing out revokes its id, and so
  does taking the person's role away. `/graphql` never reads this cookie (only the Authorization header), so a
  session cannot make the API forgeable from another site.
- **CSRF**: every form carries a token, an HMAC (PARVIS_SECRET) of what the request is bound to: the session's
  token id when signed in, else a random `parvis_visit` cookie (so the sign-in forms are protected too, and the
  token changes at sign-in). Every POST is checked, and its Origin (else its Referer), when sent, must be this
  site; a cross-site `Sec-Fetch-Site` is refused.
- **Small signed cookies** carry a one-time message to the next page (after a POST, redirected) and the address
  a sign-in code was sent to.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from urllib.parse import urlsplit

from contracts.errors import ServiceUnavailable, Unauthenticated
from contracts.platform import Caller

SESSION = "parvis_session"
VISIT = "parvis_visit"
FLASH = "parvis_flash"
LOGIN = "parvis_login"


class Sessions:
    def __init__(self, gateway):
        self.gateway = gateway
        settings = gateway.settings
        self.secret = settings.secret.encode()
        self.secure = settings.production or settings.public_url.startswith("https://")
        public = urlsplit(settings.public_url)
        self.public_origin = f"{public.scheme}://{public.netloc}"

    # -- the session ------------------------------------------------------------------------------
    def caller(self, request) -> tuple[Caller, bool]:
        """The caller of the session cookie, and whether a cookie was there that no longer works (expired, revoked,
        forged: it is then cleared). Raises ServiceUnavailable while tokens cannot be checked yet."""
        value = request.cookies.get(SESSION)
        if not value:
            return Caller(), False
        try:
            return self.gateway.authenticate({"authorization": f"Bearer {value}"}), False
        except Unauthenticated:
            return Caller(), True
        except ServiceUnavailable:
            raise

    def open(self, response, token: str, expires_at: float) -> None:
        max_age = max(0, int(expires_at - time.time()))
        response.set_cookie(SESSION, token, max_age=max_age, path="/", secure=self.secure, httponly=True,
                            samesite="lax")

    def close(self, response) -> None:
        response.delete_cookie(SESSION, path="/", secure=self.secure, httponly=True, samesite="lax")

    # -- CSRF ---------------------------------------------------------------------------------------
    def binding(self, request, caller: Caller) -> tuple[str, str | None]:
        """What this request's forms are bound to, and a new visit cookie to set when there was none."""
        if caller.token_id:
            return f"session:{caller.token_id}", None
        visit = request.cookies.get(VISIT)
        if visit and len(visit) == 32:
            return f"visit:{visit}", None
        visit = secrets.token_hex(16)
        return f"visit:{visit}", visit

    def csrf(self, binding: str) -> str:
        return hmac.new(self.secret, f"csrf|{binding}".encode(), hashlib.sha256).hexdigest()

    def csrf_ok(self, binding: str, token: str | None) -> bool:
        return bool(token) and hmac.compare_digest(self.csrf(binding), token)

    def same_origin(self, request) -> bool:
        if request.headers.get("sec-fetch-site") == "cross-site":
            return False
        origin = request.headers.get("origin")
        if origin is None or origin == "null":
            referer = request.headers.get("referer")
            if not referer:
                return origin is None  # no header at all (old browsers, some privacy settings): the token decides
            parts = urlsplit(referer)
            origin = f"{parts.scheme}://{parts.netloc}"
        own = f"{request.url.scheme}://{request.headers.get('host', '')}"
        return origin in (self.public_origin, own)

    # -- small signed cookies ---------------------------------------------------------------------------
    def sign(self, value: dict) -> str:
        body = base64.urlsafe_b64encode(json.dumps({**value, "t": int(time.time())}).encode()).decode().rstrip("=")
        mac = hmac.new(self.secret, f"cookie|{body}".encode(), hashlib.sha256).hexdigest()[:32]
        return f"{body}.{mac}"

    def unsign(self, raw: str | None, max_age: float) -> dict | None:
        if not raw or "." not in raw:
            return None
        body, _, mac = raw.rpartition(".")
        expected = hmac.new(self.secret, f"cookie|{body}".encode(), hashlib.sha256).hexdigest()[:32]
        if not hmac.compare_digest(expected, mac):
            return None
        try:
            value = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
        except ValueError:
            return None
        if not isinstance(value, dict) or time.time() - value.get("t", 0) > max_age:
            return None
        return value

    def set_signed(self, response, name: str, value: dict, max_age: int) -> None:
        response.set_cookie(name, self.sign(value), max_age=max_age, path="/", secure=self.secure, httponly=True,
                            samesite="lax")

    def drop(self, response, name: str) -> None:
        response.delete_cookie(name, path="/", secure=self.secure, httponly=True, samesite="lax")
