"""MongoDB access of the payment_link service (database parvis_payment_link)."""
from __future__ import annotations

from services.common.mongo import Repository


class PaymentLinkStore(Repository):
    pass
