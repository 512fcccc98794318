"""consultation service entrypoints."""
from __future__ import annotations

from services.consultation.store import ConsultationStore
from services.common.mongo import Mongo
from services.common.service import ServiceBase


class ConsultationService(ServiceBase):
    name = "consultation"
    store: ConsultationStore = Mongo(ConsultationStore)
