"""satisfaction service entrypoints."""
from __future__ import annotations

from services.satisfaction.store import SatisfactionStore
from services.common.mongo import Mongo
from services.common.service import ServiceBase


class SatisfactionService(ServiceBase):
    name = "satisfaction"
    store: SatisfactionStore = Mongo(SatisfactionStore)
