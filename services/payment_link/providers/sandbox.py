"""The sandbox card provider of the demo: GOV.UK Pay-style test cards (4444333322221111 pays,
4000000000000002 is declined, 4000000000000119 fails) on a loopback page, with refunds.

It speaks a small JSON API (served by parvis/payfip_sim.py under /card): POST /api/payments opens a session,
GET /api/payments/<id> is the trusted result, POST /api/payments/<id>/refunds refunds with GOV.UK Pay's
guard (the refund_amount_available the caller saw), POST /api/payments/<id>/cancel stops a session. Its
notifications ({"payment_id": …}) are unsigned and read back, like PayFiP's. Never for real money.
"""
from __future__ import annotations

import json
import socket
import urllib.error
import urllib.request
from datetime import datetime
from urllib.parse import quote

from services.payment_link.domain import SESSION_LIFETIME
from services.payment_link.providers import (
    Capabilities,
    ProviderRefused,
    ProviderResult,
    ProviderUnavailable,
    RefundResult,
    Session,
    SessionRequest,
)


class SandboxCardProvider:
    name = "sandbox"
    capabilities = Capabilities(refunds=True, cancel_session=True, reuse_window=SESSION_LIFETIME)

    def __init__(self, base_url: str, timeout: float = 15.0):
        self.base = base_url.rstrip("/")
        self.timeout = timeout

    def start_session(self, request: SessionRequest) -> Session:
        answer = self._json("POST", "/api/payments", {
            "amount": request.amount, "reference": request.reference, "description": request.description,
            "email": request.email, "language": request.language, "return_url": request.return_url,
            "notify_url": request.notify_url, "payment_id": request.payment_id})
        return Session(provider_id=answer["id"], next_url=answer["next_url"])

    def fetch_result(self, provider_id: str) -> ProviderResult:
        answer = self._json("GET", f"/api/payments/{quote(provider_id, safe='')}")
        paid_at = answer.get("authorised_at")
        return ProviderResult(
            provider=self.name, provider_id=provider_id, status=answer["status"], amount=answer.get("amount"),
            reference=answer.get("reference"), email=answer.get("email"),
            paid_at=datetime.fromisoformat(paid_at) if paid_at else None,
            authorisation_code=answer.get("authorisation_code"), raw=answer)

    def notification_id(self, body: str, content_type: str | None) -> str | None:
        try:
            value = json.loads(body or "").get("payment_id")
        except (ValueError, AttributeError):
            return None
        return value if isinstance(value, str) and 0 < len(value) <= 100 else None

    def refund(self, provider_id: str, amount: int, amount_available: int, refund_id: str) -> RefundResult:
        answer = self._json("POST", f"/api/payments/{quote(provider_id, safe='')}/refunds",
                            {"amount": amount, "refund_amount_available": amount_available, "refund_id": refund_id})
        return RefundResult(provider_refund_id=answer["refund_id"], status=answer["status"])

    def cancel_session(self, provider_id: str) -> None:
        self._json("POST", f"/api/payments/{quote(provider_id, safe='')}/cancel", {})

    def _json(self, method: str, path: str, body: dict | None = None) -> dict:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.base + path, data=data, method=method,
                                         headers={"Content-Type": "application/json", "Accept": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                return json.loads(response.read())
        except urllib.error.HTTPError as exc:
            try:
                error = json.loads(exc.read())
            except ValueError:
                error = {}
            message = error.get("message") or f"erreur HTTP {exc.code}"
            if 400 <= exc.code < 500:
                raise ProviderRefused(f"Le prestataire de paiement a refusé la demande : {message}",
                                      provider_code=error.get("code"), field=error.get("field")) from None
            raise ProviderUnavailable(f"Le prestataire de paiement a répondu par une erreur ({exc.code}).",
                                      detail=message) from None
        except (socket.timeout, TimeoutError):
            raise ProviderUnavailable(f"Le prestataire de paiement n'a pas répondu dans les {self.timeout:g} secondes."
                                      ) from None
        except (urllib.error.URLError, OSError) as exc:
            raise ProviderUnavailable("Le prestataire de paiement est injoignable.", detail=str(exc)) from None
        except ValueError:
            raise ProviderUnavailable("Le prestataire de paiement a donné une réponse illisible.") from None
