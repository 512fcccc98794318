"""The satisfaction service's settings (the platform's, plus kiosks' silence, the watch timer, ingest rounds)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from core.settings import ServiceSettings, setting


@dataclass(frozen=True)
class SatisfactionSettings(ServiceSettings):
    service: ClassVar[str] = "satisfaction"

    # Submits wait in the process for a round of writes shared with the submits queued behind them (ingest.py):
    # the more of them in the process, the bigger and fewer the rounds. With 10, kiosks beyond the tenth waited
    # in the broker while a round ran (bench/kiosk_ingest.py: 20 kiosks, 7,400 votes/s with 10, 9,500 with 40).
    max_workers: int = setting(("PARVIS_MAX_WORKERS_{SERVICE}", "PARVIS_MAX_WORKERS"), 50,
                               "nameko workers of a service, and the messages it takes at once (prefetch); "
                               "`PARVIS_MAX_WORKERS_<SERVICE>` for one service",
                               shown="10, satisfaction and consultation 50, payment_link and notification 40")
    kiosk_offline_after: float = setting("PARVIS_KIOSK_OFFLINE_AFTER", 900.0, "seconds of silence during opening "
                                         "hours before a kiosk is said offline")
    watch_interval: float = setting("PARVIS_SATISFACTION_WATCH_INTERVAL", 30.0, "seconds between two looks at "
                                    "silent kiosks, open alerts and the day's Happy Index gauges")
    ingest_rounds: int = setting("PARVIS_INGEST_ROUNDS", 1, "rounds of vote writes at once (nx-27017 takes one "
                                 "write at a time; a real MongoDB may take 2)")
