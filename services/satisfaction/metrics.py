"""The satisfaction service's business metrics: votes received and counted, ingest lag, Happy Index, kiosks
offline, open alerts. A module of its own so that the ingest, the alerts and the service share them without an
import loop."""
from __future__ import annotations

import contextlib
import time
from datetime import datetime, timedelta

from prometheus_client import Counter, Gauge, Histogram

from core.logjson import SLO_BUCKETS
from services.satisfaction import domain

# Sites are a bounded label (a few dozen); kiosk ids never are.
VOTES_COUNTED = Counter("parvis_satisfaction_votes_counted_total", "Votes counted, by site and rating", ["site", "rating"])
VOTES_RECEIVED = Counter("parvis_satisfaction_votes_received_total",
                         "Votes received, by outcome (accepted, duplicate, rejected, repeated)", ["outcome"])
HAPPY_INDEX = Gauge("parvis_satisfaction_happy_index", "Happy Index of the site today (Europe/Paris), 0-100", ["site"])
INGEST_LAG = Histogram("parvis_satisfaction_ingest_lag_seconds",
                       "Time to count a vote, from the press (pressed) or from its reception (received)",
                       ["since"], buckets=SLO_BUCKETS + (60.0, 600.0, 3600.0, 86400.0))
KIOSKS_OFFLINE = Gauge("parvis_satisfaction_kiosks_offline", "Kiosks silent during opening hours, by site", ["site"])
ALERTS_OPEN = Gauge("parvis_satisfaction_alerts_open", "Sites with an open satisfaction alert", [])

GAUGE_EVERY_SECONDS = 2.0  # a site's Happy Index gauge is read again from its counters at most this often


def observe_counted(stored: list[dict], counted: float) -> None:
    """Metrics of counted votes: by site and rating, and the ingest lag (from the press, from reception)."""
    per_rating: dict[tuple[str, int], int] = {}
    repeated = 0
    lag_pressed, lag_received = INGEST_LAG.labels("pressed"), INGEST_LAG.labels("received")
    for d in stored:
        if d.get("repeated"):
            repeated += 1
            continue
        key = (d["site_id"], d["rating"])
        per_rating[key] = per_rating.get(key, 0) + 1
        lag_pressed.observe(max(0.0, counted - d["pressed_ts"]))
        lag_received.observe(max(0.0, counted - d.get("received_ts", counted)))
    if repeated:
        VOTES_RECEIVED.labels("repeated").inc(repeated)
    for (site_id, rating), n in per_rating.items():
        VOTES_COUNTED.labels(site_id, str(rating)).inc(n)


class HappyIndexGauges:
    """The sites' Happy Index of the day, read from their day counters: after votes are counted (at most every
    GAUGE_EVERY_SECONDS per site) and by the watch timer for sites without recent votes (e.g. a new day)."""

    def __init__(self, store):
        self.store = store
        self.due: dict[str, float] = {}  # site -> monotonic time before which a count does not refresh it

    def after_count(self, site_id: str, now: datetime) -> None:
        if self.due.get(site_id, 0.0) > time.monotonic():
            return
        self.due[site_id] = time.monotonic() + GAUGE_EVERY_SECONDS
        self.refresh(site_id, now)

    def refresh_stale(self, site_id: str, now: datetime) -> None:
        """For the watch timer: only when no vote refreshed it lately."""
        if self.due.get(site_id, 0.0) <= time.monotonic():
            self.refresh(site_id, now)

    def refresh(self, site_id: str, now: datetime) -> None:
        """The site's Happy Index today (Europe/Paris); no series for a site without votes today, so that
        yesterday's figure does not stay on the dashboards after midnight."""
        tally = domain.Tally.empty()
        for doc in self.store.counters("site", site_id, "day", domain.day_start(now), now + timedelta(seconds=1)):
            tally.add_doc(doc)
        index = domain.happy_index(tally.score, tally.total)
        if index is not None:
            HAPPY_INDEX.labels(site_id).set(index)
        else:
            with contextlib.suppress(KeyError):  # never set
                HAPPY_INDEX.remove(site_id)
