"""Recounting a kiosk: its current repeated-press rule replayed over its votes of a period, written as a plan
(the flags that flip, the counters' deltas), then applied; a crash is finished by the recovery timer."""
from __future__ import annotations

import logging
from datetime import datetime, timedelta

from contracts.errors import Conflict, ServiceUnavailable
from services.common.mongo import utcnow
from services.satisfaction import domain
from services.satisfaction.alerts import Alerts

log = logging.getLogger(__name__)

RECOUNT_CLAIM_AGE = timedelta(minutes=10)  # a recount's claim without a plan: its holder died (or is stuck)


def recount_kiosk(store, alerts: Alerts, kiosk_id: str, start: datetime, end: datetime) -> dict:
    """Replay the rule over the votes pressed in [start, end) (checked by the caller); returns the report
    {examined, flagged, unflagged}. One recount at a time per kiosk (Conflict while another runs)."""
    token = store.claim_recount(kiosk_id)
    if token is None:  # a recount is pending: help it finish when its plan is written, then try again
        job = store.get_recount(kiosk_id)
        if job is not None and job.get("state") == "apply":
            store.apply_recount(job)
        token = store.claim_recount(kiosk_id)
        if token is None:
            raise Conflict("Un recomptage de cette borne est déjà en cours ; réessayez dans un instant.", "kioskId")
    planned = False
    try:
        kiosk = store.get_kiosk(kiosk_id)  # its rule as of now, under our claim
        seconds = int(kiosk.get("repeat_seconds", 3))
        # The press before `start` matters only within `seconds` of it: one read covers both.
        docs = store.kiosk_votes(kiosk_id, start.timestamp() - seconds, end.timestamp())
        votes = [d for d in docs if d["pressed_ts"] >= start.timestamp()]
        before = [d["pressed_ts"] for d in docs if d["pressed_ts"] < start.timestamp()]
        flags = domain.replay_flags(votes, max(before, default=None), seconds)
        flag, unflag = domain.flag_flips(votes, flags)
        report = {"examined": len(votes), "flagged": len(flag), "unflagged": len(unflag)}
        if not flag and not unflag:
            return report
        deltas = domain.recount_deltas(flag, unflag)
        planned = store.plan_recount(kiosk_id, token, [v["_id"] for v in flag], [v["_id"] for v in unflag], deltas,
                                     utcnow().timestamp())
        if not planned:
            raise ServiceUnavailable("Le recomptage a été interrompu ; relancez-le.")
    finally:
        if not planned:
            store.drop_recount_claim(kiosk_id, token)
    job = store.get_recount(kiosk_id)
    if job is not None and job.get("token") == token:  # else the recovery has already applied it
        store.apply_recount(job)
    site = store.get_site(kiosk["site_id"])
    if site is not None:  # the alert windows may have changed (when the period reaches them)
        alerts.evaluate(site, utcnow(), [kiosk])
    log.info("kiosk %s recounted over %s - %s with %ss: %s", kiosk_id, start, end, seconds, report)
    return report


def recover_recounts(store, horizon: datetime, now: datetime) -> None:
    """Finish the recounts a crash left with their plan written (each step is idempotent); drop the claims
    left without a plan long enough for their holder to be gone (it fails then, if it was not)."""
    for job in store.stale_recounts(horizon):
        if job.get("state") == "apply":
            log.info("recovering the recount of kiosk %s", job["_id"])
            store.apply_recount(job)
        elif job["created_ts"] < (now - RECOUNT_CLAIM_AGE).timestamp():
            log.warning("dropping the recount claim of kiosk %s (no plan after %s)", job["_id"], RECOUNT_CLAIM_AGE)
            store.drop_recount_claim(job["_id"], job["token"])
