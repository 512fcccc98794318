"""The payment providers' notification URL (PayFiP's urlnotif, the sandbox's): the body is passed on untouched to
the service, which only reads the provider id in it and asks the provider for the result. Always answered quickly:
a notification naming no payment of ours is acknowledged and ignored."""
from __future__ import annotations

import re
import uuid

from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from contracts.errors import ParvisError
from contracts.platform import Caller

MAX_NOTIFICATION = 8192
PAYMENT_ID = re.compile(r"^pay-[0-9a-f]{1,36}$")


def routes(gateway) -> list:
    async def notify(request: Request):
        provider = request.path_params["provider"]
        if provider not in ("payfip", "sandbox"):
            return PlainTextResponse("Prestataire inconnu.", status_code=404)
        hint = request.path_params.get("payment")
        if hint is not None and not PAYMENT_ID.match(hint):
            return PlainTextResponse("Paiement inconnu.", status_code=404)
        body = (await request.body())[:MAX_NOTIFICATION].decode("utf-8", "replace")
        try:
            await gateway.call("payment_link", "handle_notification", caller=Caller(),
                               correlation_id=uuid.uuid4().hex, timeout=30.0, provider=provider, body=body,
                               content_type=request.headers.get("content-type"), payment_id=hint)
        except ParvisError as exc:
            # The result will be read back by the reconciliation timer anyway: a provider that retries may.
            return PlainTextResponse(exc.message, status_code=503 if exc.code == "SERVICE_UNAVAILABLE" else 200)
        return PlainTextResponse("OK")

    # The session's own URL names its payment (sessions.py): read by id, in batches, rather than by the provider's id;
    # the bare URL stays for sessions started before, and for providers given one URL for all.
    return [Route("/pay/notify/{provider}", notify, methods=["POST"]),
            Route("/pay/notify/{provider}/{payment}", notify, methods=["POST"])]
