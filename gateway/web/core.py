"""How a page is declared and served: the registry of pages and of the menu's entries, the context a page gets
(its caller, its GraphQL operations, its form and the errors to show), and what every page does alike (the session,
the role it needs, CSRF on POST, security headers, error pages).

A page module of `gateway/web/pages/` declares its pages with `@page(path, roles=…, methods=…)` and its menu entries
with `nav(…)`; a new area (consultations, payments) is one more module there, nothing else to change.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Awaitable, Callable
from urllib.parse import parse_qsl, quote

from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from contracts.errors import ServiceUnavailable
from contracts.platform import Caller
from gateway.errors import route_error
from gateway.web import render as tpl
from gateway.web.operations import Problem, Result
from gateway.web.session import FLASH, VISIT

log = logging.getLogger("parvis.gateway")

PUBLIC = None
CITIZEN = frozenset({"citizen"})
SUBSCRIBERS = frozenset({"citizen", "agent"})
ORGANIZERS = frozenset({"organizer", "agent"})
AGENTS = frozenset({"agent"})
STAFF = frozenset({"agent", "operator"})
OPERATORS = frozenset({"operator"})
SIGNED_IN = frozenset({"citizen", "organizer", "agent", "operator"})
ROLE_LABELS = {"citizen": "Habitant", "organizer": "Organisateur", "agent": "Agent", "operator": "Opérateur"}
MAX_FORM_BYTES = 64 * 1024
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' https: data:; style-src 'self' 'unsafe-inline'; "
                               "script-src 'self'; frame-src 'self'; frame-ancestors 'none'; form-action 'self'; "
                               "base-uri 'none'",
    "X-Content-Type-Options": "nosniff", "Referrer-Policy": "same-origin", "X-Frame-Options": "DENY",
}


@dataclass(frozen=True)
class Page:
    path: str
    endpoint: Callable[["Ctx"], Awaitable[Response]]
    methods: tuple[str, ...]
    roles: frozenset | None


@dataclass(frozen=True)
class NavItem:
    """An entry of the menu: `area` public (the site), account (the person's own space), console (agents' and
    operators' tools)."""
    label: str
    path: str
    roles: frozenset | None
    area: str = "public"
    order: int = 50


PAGES: list[Page] = []
NAV: list[NavItem] = []
HOME_SECTIONS: list[Callable[["Ctx"], Awaitable[dict | None]]] = []  # the home page's blocks, in order


def page(path: str, roles: frozenset | None = PUBLIC, methods: tuple[str, ...] = ("GET",)):
    def register(fn):
        PAGES.append(Page(path, fn, methods, roles))
        return fn
    return register


def nav(label: str, path: str, roles: frozenset | None = PUBLIC, area: str = "public", order: int = 50) -> None:
    NAV.append(NavItem(label, path, roles, area, order))


def home_section(fn=None, *, order: int = 50):
    """A block of the home page; blocks are shown by `order`, then in the order their modules were loaded."""
    def register(f):
        f.home_order = order
        HOME_SECTIONS.append(f)
        HOME_SECTIONS.sort(key=lambda s: s.home_order)
        return f
    return register(fn) if fn is not None else register


class PageError(Exception):
    def __init__(self, status: int, title: str, message: str):
        super().__init__(message)
        self.status, self.title, self.message = status, title, message


STATUS = {"BAD_USER_INPUT": 400, "UNAUTHENTICATED": 401, "FORBIDDEN": 403, "NOT_FOUND": 404, "CONFLICT": 409,
          "SERVICE_UNAVAILABLE": 503, "RATE_LIMITED": 429}
TITLES = {401: "Connexion nécessaire", 403: "Accès refusé", 404: "Page introuvable", 409: "Action impossible",
          503: "Service momentanément indisponible", 500: "Erreur", 400: "Demande incorrecte"}


@dataclass
class FormErrors:
    """Errors to show on a form: each tied to its field (its `id`), all listed in the summary at the top."""
    fields: dict[str, str] = field(default_factory=dict)
    general: list[str] = field(default_factory=list)

    def add(self, name: str | None, message: str) -> None:
        if name and name not in self.fields:
            self.fields[name] = message
        elif not name:
            self.general.append(message)

    def __bool__(self) -> bool:
        return bool(self.fields or self.general)

    def summary(self) -> list[tuple[str | None, str]]:
        return [(None, m) for m in self.general] + list(self.fields.items())

    @classmethod
    def of(cls, problems: list[Problem], fields: dict[str, str] | None = None) -> "FormErrors":
        """GraphQL's errors on a form: `fields` maps an error's field (as the service names it: `title`,
        `location.commune`, `slots.0.ends_at`) to the form's, by the longest known prefix."""
        errors = cls()
        for p in problems:
            name = None
            if p.field and fields:
                path = p.field
                while path and path not in fields:
                    path = path.rpartition(".")[0]
                name = fields.get(path) if path else None
            errors.add(name, p.message)
        return errors


class Form(dict):
    """A POSTed form (application/x-www-form-urlencoded): first values by name, `all(name)` for repeated ones."""

    def __init__(self, pairs: list[tuple[str, str]]):
        super().__init__()
        self.pairs = pairs
        for k, v in pairs:
            self.setdefault(k, v)

    def all(self, name: str) -> list[str]:
        return [v for k, v in self.pairs if k == name]

    def text(self, name: str) -> str:
        return (self.get(name) or "").strip()


class Ctx:
    """What a page handler gets."""

    def __init__(self, web, request: Request, caller: Caller, binding: str):
        self.web, self.request, self.caller, self.binding = web, request, caller, binding
        self.csrf = web.sessions.csrf(binding)
        self.form: Form = Form([])
        self.cookies: list[Callable[[Response], None]] = []
        self.flash = web.sessions.unsign(request.cookies.get(FLASH), 600)
        self.drop_flash = self.flash is not None  # shown once

    @property
    def signed_in(self) -> bool:
        return self.caller.role != "public"

    def param(self, name: str, default: str = "") -> str:
        return (self.request.query_params.get(name) or default).strip()

    async def run(self, name: str, /, **variables) -> Result:
        return await self.web.operations.run(self.request, self.caller, name, variables)

    async def data(self, name: str, /, **variables) -> dict:
        """An operation's data; its errors become the error page (a refusal, a missing thing, a fault)."""
        result = await self.run(name, **variables)
        if result.problems:
            raise page_error(result.problems[0])
        return result.data or {}

    def render(self, template_name: str, /, http_status: int = 200, **values) -> HTMLResponse:
        errors = values.get("errors")
        title = values.get("title", "")
        if errors:
            values["title"] = f"Erreur : {title}"
        body = tpl.render(template_name, ctx=self, nav=self.web.menu(self.caller, self.request.url.path), **values)
        return HTMLResponse(body, status_code=400 if errors and http_status == 200 else http_status)

    def redirect(self, url: str, message: str | None = None) -> RedirectResponse:
        """After a POST: 303 to the page to show next, with a one-time message for it."""
        response = RedirectResponse(url, status_code=303)
        if message:
            self.web.sessions.set_signed(response, FLASH, {"m": message}, 600)
            self.drop_flash = False
        return response


def page_error(problem: Problem) -> PageError:
    status = STATUS.get(problem.code, 500)
    return PageError(status, TITLES.get(status, "Erreur"), problem.message)


def sign_in_url(path: str) -> str:
    return f"/connexion?suite={quote(path, safe='/')}"


async def serve(web, spec: Page, request: Request) -> Response:
    """What every page does: the session's caller, the role, CSRF on POST, the handler, cookies and headers."""
    sessions = web.sessions
    try:
        caller, stale = sessions.caller(request)
    except ServiceUnavailable as exc:
        return web.error_page(request, Caller(), 503, TITLES[503], exc.message)
    binding, new_visit = sessions.binding(request, caller)
    ctx = Ctx(web, request, caller, binding)
    try:
        if spec.roles is not None and caller.role not in spec.roles:
            if caller.role == "public":
                target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
                response = ctx.redirect(sign_in_url(target),
                                        "Votre session a pris fin : reconnectez-vous." if stale else None)
                return _finish(web, ctx, response, new_visit, stale)
            raise PageError(403, TITLES[403], "Cette page est réservée à un autre rôle que le vôtre.")
        if request.method == "POST":
            body = await request.body()
            if len(body) > MAX_FORM_BYTES:
                raise PageError(413, "Formulaire trop long", "Ce formulaire dépasse la taille acceptée.")
            ctx.form = Form(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
            if not sessions.same_origin(request) or not sessions.csrf_ok(binding, ctx.form.get("csrf")):
                raise PageError(403, "Formulaire expiré", "Ce formulaire a expiré ou ne vient pas de ce site : "
                                "revenez à la page, rechargez-la et recommencez.")
        response = await spec.endpoint(ctx)
    except PageError as exc:
        response = web.error_page(request, caller, exc.status, exc.title, exc.message, ctx)
    except Exception as exc:  # noqa: BLE001 - logged with its trace; the person gets a page, masked in production
        status, _, message, _ = route_error(exc, web.gateway.settings.production)
        response = web.error_page(request, caller, status, TITLES.get(status, "Erreur"), message, ctx)
    return _finish(web, ctx, response, new_visit, stale)


def _finish(web, ctx: Ctx, response: Response, new_visit: str | None, stale: bool) -> Response:
    sessions = web.sessions
    for apply in ctx.cookies:
        apply(response)
    if ctx.drop_flash:
        sessions.drop(response, FLASH)
    if new_visit:
        response.set_cookie(VISIT, new_visit, path="/", secure=sessions.secure, httponly=True, samesite="lax")
    if stale:
        sessions.close(response)
    response.headers.update(SECURITY_HEADERS)
    form_action = getattr(response, "form_action", None)  # a page whose form goes on elsewhere (the payment page)
    if form_action:
        response.headers["Content-Security-Policy"] = SECURITY_HEADERS["Content-Security-Policy"].replace(
            "form-action 'self'", f"form-action 'self' {form_action}")
    # A signed-in person's pages are nobody else's: never kept by a cache (a shared computer's back button).
    response.headers["Cache-Control"] = "no-store" if ctx.signed_in or stale else "no-cache"
    return response
