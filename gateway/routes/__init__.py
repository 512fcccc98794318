"""HTTP routes besides /graphql, one module per service (exports, client pages, widgets).

Each module `gateway/routes/<service>.py` defines `routes(gateway) -> list[BaseRoute]`; the app
mounts all of them. Static files of a client live under `gateway/static/<name>/`.
"""
from __future__ import annotations

import importlib
import pkgutil


def all_routes(gateway) -> list:
    found = []
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        module = importlib.import_module(f"{__name__}.{info.name}")
        if hasattr(module, "routes"):
            found.extend(module.routes(gateway))
    return found
