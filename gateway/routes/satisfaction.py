"""The satisfaction kiosk client at /kiosk: page, script, style, manifest and service worker (no build step)."""
from __future__ import annotations

from pathlib import Path

from starlette.responses import FileResponse
from starlette.routing import Route

STATIC = Path(__file__).resolve().parent.parent / "static" / "kiosk"
FILES = {
    "/kiosk": ("index.html", "text/html; charset=utf-8"),
    "/kiosk/app.js": ("app.js", "text/javascript; charset=utf-8"),
    "/kiosk/style.css": ("style.css", "text/css; charset=utf-8"),
    "/kiosk/manifest.json": ("manifest.json", "application/manifest+json"),
    "/kiosk/sw.js": ("sw.js", "text/javascript; charset=utf-8"),
}


def _endpoint(filename: str, media_type: str, path: str):
    headers = {"Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"}
    if path == "/kiosk/sw.js":
        headers["Service-Worker-Allowed"] = "/kiosk"  # the worker controls /kiosk itself, not only /kiosk/*

    async def serve(request):
        return FileResponse(STATIC / filename, media_type=media_type, headers=headers)

    return serve


def routes(gateway) -> list:
    return [Route(path, _endpoint(name, media, path)) for path, (name, media) in FILES.items()]
