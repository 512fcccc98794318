"""Pure agenda rules: nothing here does I/O."""
from __future__ import annotations

import re
import unicodedata

from contracts.agenda import Organization


def slugify(text: str) -> str:
    """'Belbèze-de-Lauragais' -> 'belbeze-de-lauragais'; stable, ASCII, for URLs and filters."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9]+", "-", ascii_text.lower()).strip("-")


def organization_changed(existing: dict | None, incoming: Organization) -> bool:
    if existing is None:
        return True
    fields = incoming.model_dump()
    return any(existing.get(k) != v for k, v in fields.items() if k != "id")
