"""Notification pages: the one-click unsubscribe link (RFC 8058, no sign-in) and, in dev, /dev/mail."""
from __future__ import annotations

import email
import email.policy
import email.utils
import html
import uuid
from datetime import datetime, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, Response
from starlette.routing import BaseRoute, Route

from gateway.errors import route_error
from contracts.platform import Caller

UNSUBSCRIBE_PATH = "/notifications/unsubscribe"
PARIS = ZoneInfo("Europe/Paris")


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
        except Exception as exc:  # noqa: BLE001 - a refusal says what to do; a fault is logged and masked
            status, _, message, _ = route_error(exc, gateway.settings.production)
            return _page("Désabonnement impossible", f"<p>{html.escape(message)}</p>", status)
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
                msg = _read_mail(path)
                rows.append(f"<tr><td>{html.escape(_received(msg, path))}</td><td>{html.escape(str(msg['To'] or ''))}"
                            f"</td><td><a href=\"/dev/mail/{html.escape(path.name)}\">"
                            f"{html.escape(str(msg['Subject'] or '(sans objet)'))}</a></td></tr>")
            return _page("Courriels reçus (développement)", (
                f"<p>{len(files)} message(s) reçus par le serveur SMTP de développement.</p>"
                "<table><thead><tr><th>Reçu</th><th>À</th><th>Objet</th></tr></thead><tbody>"
                + "".join(rows) + "</tbody></table>"))

        async def dev_mail_one(request: Request) -> Response:
            name = request.path_params["name"]
            path = mail_dir / name
            if "/" in name or not name.endswith(".eml") or not path.is_file():
                return _page("Message inconnu", "<p>Ce message n'existe pas (ou plus).</p>", 404)
            if request.query_params.get("source"):
                return PlainTextResponse(path.read_text(errors="replace"))
            msg = _read_mail(path)
            text = msg.get_body(preferencelist=("plain",))
            rich = msg.get_body(preferencelist=("html",))
            head = "".join(f"<dt>{label}</dt><dd>{html.escape(str(value))}</dd>" for label, value in (
                ("Reçu", _received(msg, path)), ("De", msg["From"] or ""), ("À", msg["To"] or ""),
                ("Objet", msg["Subject"] or "")) if value)
            body = f"<dl>{head}</dl>"
            if text is not None:
                body += f"<h2>Texte</h2><pre style=\"white-space:pre-wrap\">{html.escape(text.get_content())}</pre>"
            if rich is not None:  # shown as the recipient sees it, in a sandbox (no script, no form, no navigation)
                body += ("<h2>HTML</h2><iframe title=\"Version HTML du message\" sandbox style=\"width:100%;"
                         f"height:32rem;border:1px solid #ccc\" srcdoc=\"{html.escape(rich.get_content(), quote=True)}\">"
                         "</iframe>")
            body += f"<p><a href=\"/dev/mail/{html.escape(name)}?source=1\">Source du message</a> · " \
                    "<a href=\"/dev/mail\">Tous les messages</a></p>"
            return _page(str(msg["Subject"] or "(sans objet)"), body)

        found += [Route("/dev/mail", dev_mail), Route("/dev/mail/{name}", dev_mail_one)]
    return found


def _read_mail(path: Path):
    with path.open("rb") as fh:
        return email.message_from_binary_file(fh, policy=email.policy.default)


def _received(msg, path: Path) -> str:
    """When a dev message was received, as a person reads it (Paris time): its Date header, else its file's time."""
    try:
        when = email.utils.parsedate_to_datetime(str(msg["Date"])) if msg["Date"] else None
    except (TypeError, ValueError):
        when = None
    if when is None or when.tzinfo is None:
        when = datetime.fromtimestamp(path.stat().st_mtime, timezone.utc)
    return when.astimezone(PARIS).strftime("%d/%m/%Y à %H:%M:%S")
