"""payment_link service entrypoints."""
from __future__ import annotations

from services.payment_link.store import PaymentLinkStore
from services.common.mongo import Mongo
from services.common.service import ServiceBase


class PaymentLinkService(ServiceBase):
    name = "payment_link"
    store: PaymentLinkStore = Mongo(PaymentLinkStore)
