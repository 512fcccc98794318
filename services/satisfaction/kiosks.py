"""Kiosks' signs of life: seen (and back online, announced once), silent during opening hours (offline, once)."""
from __future__ import annotations

from datetime import datetime, timedelta
from typing import Callable

from contracts import satisfaction as c
from services.common.mongo import utcnow
from services.satisfaction import domain


def seen(store, build_event: Callable[[str, dict], dict], kiosk: dict, site: dict, sets: dict) -> None:
    """Record a sign of life (and what the kiosk reported); a kiosk that was offline comes back with its event."""
    event = None
    if kiosk.get("offline_since") is not None:
        event = build_event(c.KioskOnline.event_type, {
            "kiosk_id": kiosk["_id"], "kiosk_name": kiosk["name"], "site_id": site["_id"], "site_name": site["name"],
            "commune": site["commune"], "offline_since": kiosk["offline_since"], "back_at": utcnow()})
    store.kiosk_seen(kiosk["_id"], sets, event)


def mark_silent_offline(store, build_event: Callable[[str, dict], dict], sites: dict[str, dict], now: datetime,
                        silence: float) -> None:
    """Kiosks silent for `silence` seconds during their opening hours go offline, each announced once."""
    for kiosk in store.silent_kiosks(now - timedelta(seconds=silence)):
        store.kiosk_times(kiosk)
        site = sites.get(kiosk["site_id"])
        if site is None or not domain.is_open(kiosk.get("opening_hours") or [], now):
            continue
        silent = int((now - kiosk["last_seen_at"]).total_seconds() // 60)
        event = build_event(c.KioskOffline.event_type, {
            "kiosk_id": kiosk["_id"], "kiosk_name": kiosk["name"], "site_id": site["_id"],
            "site_name": site["name"], "commune": site["commune"], "last_seen_at": kiosk["last_seen_at"],
            "silent_minutes": silent, "detected_at": now})
        store.mark_offline(kiosk["_id"], event)


def offline_per_site(store, sites: dict[str, dict]) -> dict[str, int]:
    offline = {sid: 0 for sid in sites}
    for kiosk in store.list_kiosks(None):
        if kiosk.get("offline_ts") is not None and kiosk["site_id"] in offline:
            offline[kiosk["site_id"]] += 1
    return offline
