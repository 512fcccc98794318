"""Satisfaction service entrypoints: sites and kiosks, exactly-once vote ingest, results, alerts.

Transport only: rules in domain.py, storage (and the exactly-once counting scheme) in store.py, the group
commit of submits in ingest.py, alert episodes in alerts.py, kiosks' signs of life in kiosks.py, recounts in
recount.py, metrics in metrics.py.
"""
from __future__ import annotations

import uuid
from datetime import timedelta

from contracts import satisfaction as c
from contracts.errors import BadInput, Forbidden, NotFound, Unauthenticated
from services.common.events import Events
from services.common.mongo import Mongo, utcnow
from services.common.rpc import contract, rpc
from services.common.service import ServiceBase
from services.common.settings import Settings
from services.common.timers import timer
from services.satisfaction import domain, kiosks
from services.satisfaction.alerts import Alerts
from services.satisfaction.ingest import Ingest, IngestState, Rounds, Submit
from services.satisfaction.metrics import ALERTS_OPEN, KIOSKS_OFFLINE, VOTES_RECEIVED
from services.satisfaction.recount import recount_kiosk, recover_recounts
from services.satisfaction.settings import SatisfactionSettings
from services.satisfaction.store import SatisfactionStore
from services.satisfaction.views import alert_view, heartbeat_reply, kiosk_view, site_view

RECOVERY_INTERVAL = 5.0
RECOVERY_AGE = timedelta(seconds=60)  # a batch younger than this may still be in a running round
STARTED_AT = utcnow()  # batches opened before this process started are no round's of it


class SatisfactionService(ServiceBase):
    name = "satisfaction"
    store: SatisfactionStore = Mongo(SatisfactionStore)
    events = Events()
    settings: SatisfactionSettings = Settings(SatisfactionSettings)
    ingest: IngestState = Ingest()

    @property
    def alerts(self) -> Alerts:
        return Alerts(self.store, self.events.build)

    @property
    def rounds(self) -> Rounds:
        return Rounds(self.store, self.alerts, self.ingest.gauges)

    # -- sites and kiosks -------------------------------------------------------------------------
    @rpc
    @contract(c.UPSERT_SITE)
    def upsert_site(self, req: c.SiteInput) -> dict:
        self.caller.require({"agent", "operator"})
        data = req.model_dump()
        data["id"] = data["id"] or f"site-{uuid.uuid4().hex[:12]}"
        return site_view(self.store.upsert_site(data))

    @rpc
    @contract(c.LIST_SITES)
    def list_sites(self, _req) -> list[dict]:
        self.caller.require({"agent", "operator"})
        return [site_view(d) for d in self.store.list_sites()]

    @rpc
    @contract(c.REGISTER_KIOSK)
    def register_kiosk(self, req: c.RegisterKiosk) -> dict:
        self.caller.require({"agent", "operator"})
        site = self._site(req.site_id)
        doc = self.store.insert_kiosk(req.model_dump())
        if doc is None:
            raise BadInput(f"Une borne porte déjà l'identifiant {req.id}.", "id")
        return kiosk_view(doc, site["name"])

    @rpc
    @contract(c.UPDATE_KIOSK)
    def update_kiosk(self, req: c.UpdateKiosk) -> dict:
        self.caller.require({"agent", "operator"})
        sets = {k: v for k, v in req.model_dump(exclude={"id", "clear_follow_up"}).items() if v is not None}
        self.ingest.kiosks.drop(req.id)
        doc = self.store.update_kiosk(req.id, sets, ["follow_up"] if req.clear_follow_up else [])
        return self._kiosk_reply(doc, req.id)

    @rpc
    @contract(c.ROTATE_KIOSK_TOKEN)
    def rotate_kiosk_token(self, req: c.RotateKioskToken) -> dict:
        self.caller.require({"agent", "operator"})
        self.ingest.kiosks.drop(req.id)
        doc = self.store.update_kiosk(req.id, {"token_id": req.token_id, "revoked_ts": None})
        return self._kiosk_reply(doc, req.id)

    @rpc
    @contract(c.REVOKE_KIOSK)
    def revoke_kiosk(self, req: c.KioskRef) -> dict:
        self.caller.require({"agent", "operator"})
        self.ingest.kiosks.drop(req.id)
        doc = self.store.update_kiosk(req.id, {"revoked_ts": utcnow().timestamp(), "token_id": None})
        return self._kiosk_reply(doc, req.id)

    @rpc
    @contract(c.LIST_KIOSKS)
    def list_kiosks(self, req: c.ListKiosks) -> list[dict]:
        self.caller.require({"agent", "operator"})
        names = {s["_id"]: s["name"] for s in self.store.list_sites()}
        return [kiosk_view(d, names.get(d["site_id"], "")) for d in self.store.list_kiosks(req.site_id)]

    def _site(self, site_id: str) -> dict:
        site = self.store.get_site(site_id)
        if site is None:
            raise NotFound(f"Site inconnu : {site_id}", "siteId")
        return site

    def _kiosk_reply(self, doc: dict | None, kiosk_id: str) -> dict:
        if doc is None:
            raise NotFound(f"Borne inconnue : {kiosk_id}", "id")
        return kiosk_view(doc, self._site(doc["site_id"])["name"])

    def _own_kiosk(self, cached: bool = False) -> tuple[dict, dict]:
        """The caller's kiosk and its site; the token must be the kiosk's current one (rotation, revocation)."""
        caller = self.caller.require({"kiosk"})
        found = self.ingest.kiosks.get(caller.kiosk or "") if cached else None
        if found is None:
            kiosk = self.store.kiosk_times(self.store.get_kiosk(caller.kiosk or ""))
            if kiosk is None:
                raise Forbidden("Cette borne n'est pas enregistrée.")
            found = (kiosk, self._site(kiosk["site_id"]))
            self.ingest.kiosks.put(*found)
        kiosk = found[0]
        if kiosk.get("revoked_ts") is not None or not caller.token_id or kiosk.get("token_id") != caller.token_id:
            raise Unauthenticated("Ce jeton de borne a été remplacé ou révoqué.")
        return found

    # -- votes and heartbeats -----------------------------------------------------------------------
    @rpc
    @contract(c.SUBMIT_VOTES)
    def submit_votes(self, req: c.SubmitVotes) -> dict:
        kiosk, site = self._own_kiosk(cached=True)
        now = utcnow()
        choices = (kiosk.get("follow_up") or {}).get("choices")
        rejected, duplicates, candidates, seen = [], [], [], set()
        for vote in req.votes:
            if vote.id in seen:
                duplicates.append(vote.id)
                continue
            seen.add(vote.id)
            reason = domain.check_vote(vote, kiosk.get("scale", 4), now, choices)
            if reason:
                rejected.append({"id": vote.id, "reason": reason})
            else:
                candidates.append(vote)
        VOTES_RECEIVED.labels("rejected").inc(len(rejected))
        accepted: list[str] = []
        if candidates:
            job = self.ingest.queue.submit(self.rounds, Submit(domain.vote_documents(candidates, kiosk, site, now),
                                                               kiosk, site))
            accepted = [d["_id"] for d in job.stored]
            duplicates.extend(job.duplicates)
        VOTES_RECEIVED.labels("accepted").inc(len(accepted))
        VOTES_RECEIVED.labels("duplicate").inc(len(duplicates))
        if not accepted or kiosk.get("offline_since") is not None:
            self.ingest.kiosks.drop(kiosk["_id"])
            kiosks.seen(self.store, self.events.build, kiosk, site, {})
        return {"accepted": accepted, "duplicates": duplicates, "rejected": rejected}

    @rpc
    @contract(c.HEARTBEAT)
    def heartbeat(self, req: c.Heartbeat) -> dict:
        kiosk, site = self._own_kiosk()
        self.ingest.kiosks.drop(kiosk["_id"])
        kiosks.seen(self.store, self.events.build, kiosk, site, {k: v for k, v in req.model_dump().items() if v is not None})
        return heartbeat_reply(kiosk, site, utcnow())

    # -- timers ---------------------------------------------------------------------------------
    @timer(RECOVERY_INTERVAL, eager=True, exclusive=True)
    def recover_batches(self) -> int:
        """Count the batches a crash left half-done, finish the recounts it left planned."""
        now = utcnow()
        horizon = max(STARTED_AT, now - RECOVERY_AGE)
        recovered = self.rounds.recover(horizon)
        recover_recounts(self.store, horizon, now)
        self.store.flush_prunes()
        return recovered

    @timer("watch_interval", eager=True, exclusive=True)
    def watch(self) -> int:
        """Kiosks silent during opening hours go offline (once); open alerts are re-checked as time passes.
        Returns the alerts re-checked."""
        now = utcnow()
        sites = {s["_id"]: s for s in self.store.list_sites()}
        kiosks.mark_silent_offline(self.store, self.events.build, sites, now, self.settings.kiosk_offline_after)
        open_sites = self.store.sites_with_open_alerts()
        open_kiosks: dict[str, list[dict]] = {}
        for kiosk in self.store.kiosks_with_open_alerts():
            open_kiosks.setdefault(kiosk["site_id"], []).append(kiosk)
        alerts = self.alerts
        for site in open_sites:
            alerts.evaluate(site, now, open_kiosks.pop(site["_id"], []))
        for site_id, site_kiosks in open_kiosks.items():  # sites without an open alert of their own
            if site_id in sites:
                alerts.evaluate(sites[site_id], now, site_kiosks, site_too=False)
        return 0

    @timer("watch_interval", eager=True, exclusive=False)  # every replica's own gauges
    def refresh_gauges(self) -> None:
        """The sites' gauges (kiosks offline, open alerts, Happy Index of the day), read from the database."""
        now = utcnow()
        sites = {s["_id"]: s for s in self.store.list_sites()}
        for sid, n in kiosks.offline_per_site(self.store, sites).items():
            KIOSKS_OFFLINE.labels(sid).set(n)
            self.ingest.gauges.refresh_stale(sid, now)  # not refreshed by a vote lately (e.g. a new day)
        ALERTS_OPEN.set(len(self.store.sites_with_open_alerts()))

    # -- results --------------------------------------------------------------------------------
    @rpc
    @contract(c.SATISFACTION)
    def satisfaction(self, req: c.SeriesQuery) -> dict:
        self.caller.require({"agent", "operator"})
        if bool(req.site_id) == bool(req.kiosk_id):
            raise BadInput("Indiquez soit un site, soit une borne.", "siteId")
        start, end = domain.as_utc(req.start), domain.as_utc(req.end)
        if end <= start or end - start > timedelta(days=400):
            raise BadInput("La période doit être positive et de 400 jours au plus.", "to")
        scope, ref = ("site", req.site_id) if req.site_id else ("kiosk", req.kiosk_id)
        gran = "hour" if req.granularity == "hour" else "day"
        docs = self.store.counters(scope, ref, gran, start, end)
        hours = docs if gran == "hour" else self.store.counters(scope, ref, "hour", start, end)
        return domain.series(docs, hours, req.granularity, start)

    @rpc
    @contract(c.COMPARE_SITES)
    def compare_sites(self, req: c.CompareQuery) -> list[dict]:
        self.caller.require({"agent", "operator"})
        out = []
        start, end = domain.as_utc(req.start), domain.as_utc(req.end)
        for site in self.store.list_sites():
            tally = domain.tally_of(self.store.counters("site", site["_id"], "day", start, end))
            out.append({"site_id": site["_id"], "site_name": site["name"], "commune": site["commune"],
                        "total": tally.total, "negative": tally.negative,
                        "happy_index": domain.happy_index(tally.score, tally.total)})
        return sorted(out, key=lambda s: (s["happy_index"] is None, -(s["happy_index"] or 0)))

    @rpc
    @contract(c.LIST_ALERTS)
    def list_alerts(self, req: c.ListAlerts) -> list[dict]:
        self.caller.require({"agent", "operator"})
        return [alert_view(a) for a in self.store.list_alerts(req.site_id, req.open_only)]

    @rpc
    @contract(c.RECOUNT_KIOSK)
    def recount_kiosk(self, req: c.RecountKiosk) -> dict:
        """Replay the kiosk's current repeated-press rule over its votes pressed in [start, end) (recount.py)."""
        self.caller.require({"agent"})
        start, end = domain.as_utc(req.start), domain.as_utc(req.end)
        if end <= start:
            raise BadInput("La fin de la période doit suivre son début.", "to")
        if end - start > domain.MAX_RECOUNT:
            raise BadInput("La période d'un recomptage est de 31 jours au plus.", "to")
        if self.store.get_kiosk(req.kiosk_id) is None:
            raise NotFound(f"Borne inconnue : {req.kiosk_id}", "kioskId")
        return recount_kiosk(self.store, self.alerts, req.kiosk_id, start, end)

    @rpc
    @contract(c.SITE_SUMMARY)
    def site_summary(self, req: c.SiteRef) -> dict:
        self.caller.require({"agent", "operator"})
        site = self._site(req.site_id)
        now = utcnow()
        docs = self.store.counters("site", site["_id"], "day", domain.day_start(now), now + timedelta(days=1))
        tally = domain.tally_of(docs)
        return {"site_id": site["_id"], "total_today": tally.total, "negative_today": tally.negative,
                "happy_index_today": domain.happy_index(tally.score, tally.total), "counts_today": tally.counts,
                "open_alert_id": site.get("open_alert_id"), "updated_at": docs[-1].get("updated_at") if docs else None}
