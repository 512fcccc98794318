"""The payment_link service's settings (the platform's, plus where the providers are and its timers' pace)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from core.settings import ServiceSettings, setting


@dataclass(frozen=True)
class PaymentLinkSettings(ServiceSettings):
    service: ClassVar[str] = "payment_link"

    # A link's creation waits for the database twice or thrice and for nothing else: more of them in flight fill
    # those waits (bench/payments.py).
    max_workers: int = setting(("PARVIS_MAX_WORKERS_{SERVICE}", "PARVIS_MAX_WORKERS"), 40,
                               "nameko workers of a service, and the messages it takes at once (prefetch); "
                               "`PARVIS_MAX_WORKERS_<SERVICE>` for one service",
                               shown="10, satisfaction and consultation 50, payment_link and notification 40")
    payfip_url: str = setting("PARVIS_PAYFIP_URL", "", "PayFiP's base URL (its SOAP service and payment page); "
                              "`parvis up` starts the simulator (parvis/payfip_sim.py) and points this at it",
                              shown="the DGFiP's (https://www.payfip.gouv.fr); `make run`: the simulator")
    sandbox_url: str = setting("PARVIS_PAYMENT_SANDBOX_URL", "", "the sandbox card provider's API (demo only, never "
                               "real money); unset: no sandbox régie can take payments",
                               shown="unset; `make run`: the simulator's /card")
    provider_timeout: float = setting("PARVIS_PAYMENT_PROVIDER_TIMEOUT", 15.0, "seconds a call to a payment "
                                      "provider may take (eopayment uses 15 s against PayFiP)")
    reconcile_interval: float = setting("PARVIS_PAYMENT_RECONCILE_INTERVAL", 10.0, "seconds between two rounds "
                                        "asking the providers about payments without a result, and expiring links "
                                        "and sessions")
    check_delay_scale: float = setting("PARVIS_PAYMENT_CHECK_DELAY_SCALE", 1.0, "multiplies the backoff between "
                                       "two questions about one payment (30 s, 1, 2, 5, 10, then 15 min); tests "
                                       "shorten it")
    fault_pause_after_result: float = setting("PARVIS_PAYMENT_FAULT_PAUSE", 0.0, "seconds the service waits between "
                                              "a provider's answer and writing it: a fault-injection switch for the "
                                              "crash tests (a kill -9 in that window), never for production")
