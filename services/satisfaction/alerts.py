"""Satisfaction alerts: a site's rule applied to the site's window and to each of its kiosks' own, each episode
raised once and resolved once, its event written with the state that records it (outbox)."""
from __future__ import annotations

import logging
import uuid
from datetime import datetime, timedelta
from typing import Callable

from contracts import satisfaction as c
from services.satisfaction import domain

log = logging.getLogger(__name__)


class Alerts:
    """Takes the store and the worker's event builder (`build(type, data)`); keeps the site (kiosk) documents it
    is given in step with what it writes, so that cached copies follow (see ingest.KioskCache)."""

    def __init__(self, store, build_event: Callable[[str, dict], dict]):
        self.store = store
        self.build_event = build_event

    def evaluate(self, site: dict, now: datetime, kiosks: list[dict] = (), site_too: bool = True) -> None:
        """The site's rule over the site's window and over each given kiosk's own window (one read for all)."""
        settings = site.get("alerts") or {}
        site_tally, kiosk_tallies = self.store.window_tallies(site["_id"], [k["_id"] for k in kiosks],
                                                              settings.get("window_minutes", 15), now)
        if site_too:
            self._episode(site, None, settings, site_tally, now)
        for kiosk in kiosks:
            self._episode(site, kiosk, settings, kiosk_tallies[kiosk["_id"]], now)

    def _episode(self, site: dict, kiosk: dict | None, settings: dict, tally: domain.Tally, now: datetime) -> None:
        """Raise (once) or resolve (once) the alert of the site (kiosk None) or of one of its kiosks; the open
        alert's id is kept on the site (the kiosk) document, with its event in the same write."""
        holder = site if kiosk is None else kiosk
        holds = domain.alert_holds(settings, tally)
        open_id = holder.get("open_alert_id")
        if holds == (open_id is not None):
            return  # no change of episode
        counts, rule = domain.alert_counts(tally), domain.alert_rule(settings)
        base = {"site_id": site["_id"], "site_name": site["name"], "commune": site["commune"], "rule": rule,
                "counts": counts}
        if kiosk is not None:
            base.update(kiosk_id=kiosk["_id"], kiosk_name=kiosk.get("name"))
        what = site["_id"] if kiosk is None else f"{site['_id']} (kiosk {kiosk['_id']})"
        if holds:
            alert_id = f"alert-{uuid.uuid4().hex[:16]}"
            start = now - timedelta(minutes=rule["window_minutes"])
            event = self.build_event(c.AlertRaised.event_type, {**base, "alert_id": alert_id, "window_start": start,
                                                                "window_end": now, "raised_at": now})
            alert = {"_id": alert_id, "site_id": site["_id"], "site_name": site["name"], "rule": rule,
                     "counts": counts, "raised_at": now, "resolved_at": None}
            if kiosk is not None:
                alert.update(kiosk_id=kiosk["_id"], kiosk_name=kiosk.get("name"))
            changed = self.store.raise_alert(alert, event)
            if changed:
                holder["open_alert_id"] = alert_id  # the cached site (kiosk) follows
                log.info("satisfaction alert raised for %s", what)
        else:
            alert = self.store.get_alert(open_id) or {"raised_at": now}
            event = self.build_event(c.AlertResolved.event_type, {**base, "alert_id": open_id,
                                                                  "raised_at": alert["raised_at"], "resolved_at": now})
            changed = self.store.resolve_alert(site["_id"], kiosk and kiosk["_id"], open_id, now, counts, event)
            if changed:
                holder["open_alert_id"] = None
                log.info("satisfaction alert resolved for %s", what)
        if not changed:
            self._refresh(holder, kiosk is None)

    def _refresh(self, holder: dict, is_site: bool) -> None:
        """Another instance changed the alert state: take the stored one."""
        doc = self.store.get_site(holder["_id"]) if is_site else self.store.get_kiosk(holder["_id"])
        if doc is not None and is_site:
            holder.update(doc)
        elif doc is not None:
            holder["open_alert_id"] = doc.get("open_alert_id")
