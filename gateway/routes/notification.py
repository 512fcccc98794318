"""Notification pages: the one-click unsubscribe link (RFC 8058, no sign-in) and, in dev, /dev/mail."""
from __future__ import annotations

import email
import email.policy
import html
import uuid
from pathlib import Path

from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, Response
from starlette.routing import BaseRoute, Route

from contracts.errors import ParvisError
from contracts.platform import Caller

UNSUBSCRIBE_PATH = "/notifications/unsubscribe"


def _page(title: str, body: str, status: int = 200) -> HTMLResponse:
    return HTMLResponse(
        f"<!doctype html><html lang=\"fr\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" "
        f"content=\"width=device-width,initial-scale=1\"><title>{html.escape(title)} – Parvis</title></head>"
        f"<body><main><h1>{html.escape(title)}</h1>{body}</main></body></html>", status_code=status)


def routes(gateway) -> list[BaseRoute]:
    async def unsubscribe(request: Request) -> Response:
        token = request.query_params.get("t", "")
        if request.method == "GET":
            # A GET only shows the button: mail scanners follow links, and must not unsubscribe anyone.
            return _page("Se désabonner", (
                "<p>Vous ne recevrez plus les messages de cet abonnement.</p>"
                f"<form method=\"post\" action=\"{UNSUBSCRIBE_PATH}?t={html.escape(token, quote=True)}\">"
                "<input type=\"hidden\" name=\"List-Unsubscribe\" value=\"One-Click\">"
                "<button type=\"submit\">Me désabonner</button></form>"))
        try:
            result = await gateway.call("notification", "unsubscribe", caller=Caller(),
                                        correlation_id=uuid.uuid4().hex, token=token)
        except ParvisError as exc:
            status = 400 if exc.code == "BAD_USER_INPUT" else 503
            return _page("Désabonnement impossible", f"<p>{html.escape(exc.message)}</p>", status)
        topic = html.escape(result.get("topic") or "")
        return _page("Vous êtes désabonné", f"<p>Vous ne recevrez plus les messages de l'abonnement "
                                            f"<code>{topic}</code>.</p>")

    found = [Route(UNSUBSCRIBE_PATH, unsubscribe, methods=["GET", "POST"])]
    if not gateway.settings.production:
        mail_dir = Path(gateway.settings.data_dir) / "mail"

        async def dev_mail(request: Request) -> Response:
            files = sorted(mail_dir.glob("*.eml"), reverse=True)[:200] if mail_dir.exists() else []
            rows = []
            for path in files:
                with path.open("rb") as fh:
                    msg = email.message_from_binary_file(fh, policy=email.policy.default)
                rows.append(f"<tr><td>{html.escape(path.stem[:19])}</td><td>{html.escape(str(msg['To'] or ''))}</td>"
                            f"<td><a href=\"/dev/mail/{html.escape(path.name)}\">{html.escape(str(msg['Subject'] or ''))}"
                            "</a></td></tr>")
            return _page("Courriels reçus (développement)", (
                f"<p>{len(files)} message(s) reçus par le serveur SMTP de développement.</p>"
                "<table><thead><tr><th>Reçu</th><th>À</th><th>Objet</th></tr></thead><tbody>"
                + "".join(rows) + "</tbody></table>"))

        async def dev_mail_one(request: Request) -> Response:
            name = request.path_params["name"]
            path = mail_dir / name
            if "/" in name or not name.endswith(".eml") or not path.is_file():
                return PlainTextResponse("message inconnu", status_code=404)
            return PlainTextResponse(path.read_text(errors="replace"))

        found += [Route("/dev/mail", dev_mail), Route("/dev/mail/{name}", dev_mail_one)]
    return found
