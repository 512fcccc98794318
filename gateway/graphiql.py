"""GraphiQL without a CDN: Strawberry's page with its scripts and styles served by the gateway (dev only).

Strawberry's GraphiQL page loads React, GraphiQL, its explorer plugin and js-cookie from unpkg.com, and shows a
blank "Loading..." on a machine without internet (an offline deployment, a training room). The same files, at the
versions the page names, are installed from the npm registry by `make graphiql` (gateway/static/graphiql: a
package.json with exact versions and its package-lock) and served here under ASSETS_PATH; the page's URLs are
rewritten to them. The page's Subresource Integrity hashes are kept: the browser checks that each vendored file
is byte for byte the one the page was written for. A file missing, or installed at another version than the page
names (after a Strawberry upgrade), keeps its CDN URL, and the gateway says so at start.
"""
from __future__ import annotations

import json
import logging
import re
from functools import lru_cache
from pathlib import Path

from starlette.requests import Request
from starlette.responses import FileResponse, PlainTextResponse, Response

log = logging.getLogger("parvis.gateway")

MODULES = Path(__file__).resolve().parent / "static" / "graphiql" / "node_modules"
ASSETS_PATH = "/graphiql/assets/"
CDN_URL = re.compile(r"https://unpkg\.com/(?P<package>(?:@[\w.-]+/)?[\w.-]+)@(?P<version>[\w.-]+)/(?P<file>[\w./-]+)")
TYPES = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8"}


def installed_version(package: str) -> str | None:
    try:
        return json.loads((MODULES / package / "package.json").read_text())["version"]
    except (OSError, ValueError, KeyError):
        return None


def _local(match: re.Match) -> str:
    package, version, file = match["package"], match["version"], match["file"]
    if installed_version(package) == version and (MODULES / package / file).is_file():
        return f"{ASSETS_PATH}{package}/{file}"
    return match.group(0)


@lru_cache(maxsize=4)
def page(html: str) -> str:
    """Strawberry's GraphiQL page with its CDN URLs pointing at the gateway's copies (where they are installed)."""
    out = CDN_URL.sub(_local, html)
    left = sorted({m.group(0) for m in CDN_URL.finditer(out)})
    if left:
        log.warning("GraphiQL loads %s from the CDN (not installed here at that version: run `make graphiql`)",
                    ", ".join(left))
    return out


def wanted(html: str) -> dict[str, str]:
    """The packages and versions the page names."""
    return {m["package"]: m["version"] for m in CDN_URL.finditer(html)}


async def asset(request: Request) -> Response:
    """A file of a package the page names, at the version it names: nothing else under node_modules is served."""
    path = request.path_params["path"]
    html = request.app.state.gateway_graphiql_html
    for package, version in wanted(html).items():
        if path.startswith(package + "/") and installed_version(package) == version:
            target = (MODULES / path).resolve()
            if target.is_file() and target.is_relative_to((MODULES / package).resolve()) and target.suffix in TYPES:
                return FileResponse(target, media_type=TYPES[target.suffix],
                                    headers={"Cache-Control": "public, max-age=86400"})
    return PlainTextResponse("Introuvable.", status_code=404)
