"""The web: a citizens' site, an organisers' space, an agents' and operators' console, rendered on the server.

Pages work without JavaScript (forms POST, then redirect) and are progressively enhanced by a few lines of plain
JavaScript (`static/parvis.js`). Each page's data comes from named GraphQL operations (`operations.graphql`) run
in-process against the gateway's own schema (`operations.py`), for the caller of the session cookie
(`session.py`), so permissions, limits and errors are exactly the API's. `core.py` is how a page is declared and
served; `pages/` holds one module per area (each registers its pages, its menu entries and its home-page blocks);
`templates/` the Jinja2 templates, `static/` one stylesheet (with a print style) and the script.
"""
from __future__ import annotations

import importlib
import pkgutil
from pathlib import Path

from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse
from starlette.routing import Route

from contracts.platform import Caller
from gateway.web import core
from gateway.web.operations import Operations
from gateway.web.session import Sessions

STATIC = Path(__file__).resolve().parent / "static"
STATIC_FILES = {"parvis.css": "text/css; charset=utf-8", "parvis.js": "text/javascript; charset=utf-8"}


def _load_pages() -> None:
    from gateway.web import pages

    for info in sorted(pkgutil.iter_modules(pages.__path__), key=lambda m: m.name):
        importlib.import_module(f"{pages.__name__}.{info.name}")


class Web:
    def __init__(self, gateway):
        self.gateway = gateway
        self.sessions = Sessions(gateway)
        self.operations = Operations(gateway)
        _load_pages()

    def menu(self, caller: Caller, current: str) -> dict[str, list[dict]]:
        """The menu's entries this caller may follow, by area, the current one marked."""
        areas: dict[str, list[dict]] = {}
        for item in sorted(core.NAV, key=lambda i: (i.order, i.label)):
            if item.roles is not None and caller.role not in item.roles:
                continue
            here = current == item.path or (item.path not in ("/", "/console", "/compte")
                                            and current.startswith(item.path + "/"))
            areas.setdefault(item.area, []).append({"label": item.label, "path": item.path, "current": here})
        return areas

    def error_page(self, request: Request, caller: Caller, status: int, title: str, message: str,
                   ctx: "core.Ctx | None" = None) -> HTMLResponse:
        ctx = ctx or core.Ctx(self, request, caller, "error")
        body = core.tpl.render("error.html", ctx=ctx, nav=self.menu(caller, request.url.path), title=title,
                               message=message, status=status)
        return HTMLResponse(body, status_code=status)

    def routes(self) -> list[Route]:
        found = []
        for spec in core.PAGES:
            async def endpoint(request: Request, spec=spec):
                return await core.serve(self, spec, request)
            found.append(Route(spec.path, endpoint, methods=list(spec.methods)))

        async def static(request: Request):
            name = request.path_params["name"]
            if name not in STATIC_FILES:
                return HTMLResponse("Introuvable.", status_code=404)
            return FileResponse(STATIC / name, media_type=STATIC_FILES[name],
                                headers={"Cache-Control": "public, max-age=3600", "X-Content-Type-Options": "nosniff"})
        found.append(Route("/static/{name}", static))
        return found


def routes(gateway) -> list[Route]:
    return Web(gateway).routes()
