"""MongoDB access of the satisfaction service (database parvis_satisfaction)."""
from __future__ import annotations

from services.common.mongo import Repository


class SatisfactionStore(Repository):
    pass
