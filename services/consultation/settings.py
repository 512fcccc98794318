"""The consultation service's settings (the platform's, plus its clock, its casting rounds and its worker pool)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from core.settings import ServiceSettings, setting


@dataclass(frozen=True)
class ConsultationSettings(ServiceSettings):
    service: ClassVar[str] = "consultation"

    # Ballots wait in the process for a round of writes shared with the ballots queued behind them (casting.py), as
    # kiosk votes do: with nameko's 10 workers, voters beyond the tenth waited in the broker while a round ran.
    max_workers: int = setting(("PARVIS_MAX_WORKERS_{SERVICE}", "PARVIS_MAX_WORKERS"), 50,
                               "nameko workers of a service, and the messages it takes at once (prefetch); "
                               "`PARVIS_MAX_WORKERS_<SERVICE>` for one service",
                               shown="10, satisfaction and consultation 50, payment_link and notification 40")
    clock_interval: float = setting("PARVIS_CONSULTATION_CLOCK_INTERVAL", 5.0, "seconds between two looks at the "
                                    "consultations and budget phases whose time has come (and at crashed ballot "
                                    "rounds to finish)")
    # A round waits for the database four or five times (participations, round, ballots, counts): a second round's
    # work fills those waits. bench/consultation.py's RPC alone, 40 in flight: 313 ballots/s with 1, 486 with 2.
    cast_rounds: int = setting("PARVIS_CAST_ROUNDS", 2, "rounds of ballot writes at once (each waits for the "
                               "database several times: a second one fills those waits)")
    cast_recovery_after: float = setting("PARVIS_CAST_RECOVERY_AFTER", 30.0, "seconds after which a round of ballot "
                                         "writes left unfinished (a crashed process) is finished, or undone when it "
                                         "never wrote its ballots")
