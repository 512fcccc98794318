"""MongoDB access of the consultation service (database parvis_consultation)."""
from __future__ import annotations

from services.common.mongo import Repository


class ConsultationStore(Repository):
    pass
