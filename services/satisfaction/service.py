"""Satisfaction service entrypoints: sites and kiosks, exactly-once vote ingest, results, alerts.

Thin: rules in domain.py, storage (and the exactly-once counting scheme) in store.py.
"""
from __future__ import annotations

import contextlib
import logging
import os
import time
import uuid
from datetime import datetime, timedelta

import eventlet
from eventlet.event import Event as GreenEvent
from nameko.rpc import rpc
from nameko.timer import timer
from prometheus_client import Counter, Gauge, Histogram

from contracts import satisfaction as c
from contracts.errors import BadInput, Conflict, Forbidden, NotFound, ServiceUnavailable, Unauthenticated
from parvis.logjson import SLO_BUCKETS
from services.common.events import Events
from services.common.mongo import Mongo, utcnow
from services.common.rpc import contract
from services.common.service import ServiceBase
from services.satisfaction import domain
from services.satisfaction.store import SatisfactionStore

log = logging.getLogger(__name__)

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

KIOSK_SILENCE = float(os.environ.get("PARVIS_KIOSK_OFFLINE_AFTER", "900"))  # 15 minutes
WATCH_INTERVAL = float(os.environ.get("PARVIS_SATISFACTION_WATCH_INTERVAL", "30"))
RECOVERY_INTERVAL = 5.0
RECOVERY_AGE = timedelta(seconds=60)
RECOUNT_CLAIM_AGE = timedelta(minutes=10)  # a recount's claim without a plan: its holder died (or is stuck)
STARTED_AT = utcnow()
KIOSK_CACHE_SECONDS = 5.0
GAUGE_EVERY_SECONDS = 2.0


class KioskCache:
    """The kiosks (with their site) that submitted lately, so the hot path does not read them per batch.

    Invalidated at once in this process by update/rotate/revoke; another instance sees those changes within
    KIOSK_CACHE_SECONDS. The latest press is kept here too, for the repeated-press rule between batches.
    """

    def __init__(self):
        self.entries: dict[str, tuple[float, dict, dict]] = {}

    def get(self, kiosk_id: str):
        entry = self.entries.get(kiosk_id)
        if entry is not None and entry[0] > time.monotonic():
            return entry[1], entry[2]
        return None

    def put(self, kiosk: dict, site: dict) -> None:
        self.entries[kiosk["_id"]] = (time.monotonic() + KIOSK_CACHE_SECONDS, kiosk, site)

    def drop(self, kiosk_id: str) -> None:
        self.entries.pop(kiosk_id, None)


KIOSKS = KioskCache()


class Submit:
    """The votes of one submit, waiting for their group's writes (IngestQueue)."""

    __slots__ = ("docs", "kiosk", "site", "stored", "duplicates", "error", "done")  # done: see IngestQueue

    def __init__(self, docs: list[dict], kiosk: dict, site: dict):
        self.docs, self.kiosk, self.site = docs, kiosk, site
        self.stored: list[dict] = []
        self.duplicates: list[str] = []
        self.error: BaseException | None = None
        self.done = GreenEvent()


class IngestQueue:
    """Group commit: the submits that arrive while rounds of writes are running are written together.

    A round costs the same few round trips (batch document, insert_many, kiosks, counters bulk_write, alert
    window) whatever the number of submits in it, instead of those per submit; its batch document is closed
    in the same round trip as the next round writes its own, or at once when no round follows. Up to
    `rounds` rounds run at once (one is best on nx-27017, which serialises the writes: bigger rounds). A
    submit that finds fewer rounds running starts one at once (no wait when idle); otherwise it queues, and
    when a round ends, its leader hands the lead to the first queued submit, which takes everything queued.
    A worker replies only after its round has stored its votes and applied their counters; a round that
    fails fails each of its submits (the kiosks resend; what was stored is a duplicate then, counted once by
    the recovery of the round's batch document). When a round hands the lead on, its submits reply only once
    the next round has sent its votes (or after RELEASE_AFTER): green threads run one at a time, and replies
    (and their metrics) run between the next round's first, short write and its answer otherwise, holding
    it up; while the database writes the votes, they cost nothing. Green threads of one process: no lock is
    needed, as no green thread switch happens between reading and changing this state.
    """

    def __init__(self, rounds: int = 1, max_votes: int = 2000):
        self.rounds = rounds
        self.max_votes = max_votes
        self.queued: list[Submit] = []
        self.running = 0
        self.to_close: list[tuple[str, list[str]]] = []  # rounds done whose batch document is still open
        self.waiting: list[list[Submit]] = []  # rounds done whose submits wait to reply (see _release)

    def submit(self, service: "SatisfactionService", job: Submit) -> Submit:
        """Store the submit's votes (in a round with others); returns it with `stored` and `duplicates` set."""
        if self.running < self.rounds:  # then nothing is queued either
            self.running += 1
            self._lead(service, job)
        else:
            self.queued.append(job)
            if job.done.wait() == "lead":  # sent once: "lead" (our turn to lead a round) or "done"
                self._lead(service, job)
        if job.error is not None:
            raise job.error
        return job

    def _lead(self, service: "SatisfactionService", first: Submit) -> None:
        group, votes = [first], len(first.docs)
        while self.queued and votes + len(self.queued[0].docs) <= self.max_votes:
            job = self.queued.pop(0)
            group.append(job)
            votes += len(job.docs)
        counted = None
        close, self.to_close = self.to_close, []
        try:
            counted = service._store_group(group, close, self._release)
            self.to_close.append((counted[2], counted[3]))
        except BaseException as exc:  # every submit of the round fails with it (the leader re-raises it)
            self.to_close.extend(close)  # maybe not closed: the next round closes them (again: harmless)
            other = exc if isinstance(exc, Exception) else ServiceUnavailable("Le service s'arrête.")
            for job in group:
                job.error = other
            first.error = exc
        finally:
            self._release()  # when the round failed before sending its votes
            handed = bool(self.queued)
            if handed:  # the next round, led by the first queued submit, releases this one's submits
                first.done = GreenEvent()
                self.waiting.append(group)
                eventlet.spawn_after(RELEASE_AFTER, self._release, group)  # if its first write is slow
                self.queued.pop(0).done.send("lead")
            else:
                self.running -= 1
                for job in group[1:]:
                    job.done.send("done")
        if self.running == 0 and self.to_close:  # no round follows to close them: now
            close, self.to_close = self.to_close, []
            try:
                service.store.finish_batches(close)
            except Exception:  # noqa: BLE001 - still open: the next round (or recovery) closes them
                log.warning("closing %d batches failed; left to the next round", len(close), exc_info=True)
                self.to_close.extend(close)
        if handed:
            first.done.wait()
        if counted is not None:
            service._observe(counted[0], counted[1])

    def _release(self, group: list[Submit] | None = None) -> None:
        """Let the submits of rounds done reply: all of them (a round is sending its votes), or one round's."""
        if group is None:
            groups, self.waiting = self.waiting, []
        elif any(g is group for g in self.waiting):
            groups, self.waiting = [group], [g for g in self.waiting if g is not group]
        else:
            return  # released already
        for g in groups:
            for job in g:
                job.done.send("done")


RELEASE_AFTER = 0.2  # seconds: the longest a finished round's submits wait for the next round's votes to leave
# Rounds at once: 1 suits nx-27017 (one writer); a real MongoDB may take more (PARVIS_INGEST_ROUNDS).
INGEST = IngestQueue(rounds=int(os.environ.get("PARVIS_INGEST_ROUNDS", "1")))
GAUGE_AT: dict[str, float] = {}


def site_view(doc: dict) -> dict:
    return {"id": doc["_id"], "name": doc["name"], "commune": doc["commune"], "competence": doc["competence"],
            "alerts": doc.get("alerts") or {}, "open_alert_id": doc.get("open_alert_id")}


def kiosk_view(doc: dict, site_name: str) -> dict:
    fields = ("name", "question", "scale", "follow_up", "comments", "opening_hours", "repeat_seconds", "battery", "queue_length", "app_version")
    out = {k: doc.get(k) for k in fields if doc.get(k) is not None}
    out.update(id=doc["_id"], site_id=doc["site_id"], site_name=site_name,
               revoked=doc.get("revoked_ts") is not None, offline=doc.get("offline_ts") is not None,
               last_seen_at=domain.from_ts(doc.get("last_seen_ts")))
    return out


class SatisfactionService(ServiceBase):
    name = "satisfaction"
    store: SatisfactionStore = Mongo(SatisfactionStore)
    events = Events()

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
        KIOSKS.drop(req.id)
        doc = self.store.update_kiosk(req.id, sets, ["follow_up"] if req.clear_follow_up else [])
        return self._kiosk_reply(doc, req.id)

    @rpc
    @contract(c.ROTATE_KIOSK_TOKEN)
    def rotate_kiosk_token(self, req: c.RotateKioskToken) -> dict:
        self.caller.require({"agent", "operator"})
        KIOSKS.drop(req.id)
        doc = self.store.update_kiosk(req.id, {"token_id": req.token_id, "revoked_ts": None})
        return self._kiosk_reply(doc, req.id)

    @rpc
    @contract(c.REVOKE_KIOSK)
    def revoke_kiosk(self, req: c.KioskRef) -> dict:
        self.caller.require({"agent", "operator"})
        KIOSKS.drop(req.id)
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
        found = KIOSKS.get(caller.kiosk or "") if cached else None
        if found is None:
            kiosk = self.store.kiosk_times(self.store.get_kiosk(caller.kiosk or ""))
            if kiosk is None:
                raise Forbidden("Cette borne n'est pas enregistrée.")
            found = (kiosk, self._site(kiosk["site_id"]))
            KIOSKS.put(*found)
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
        scale = kiosk.get("scale", 4)
        choices = (kiosk.get("follow_up") or {}).get("choices")
        rejected, duplicates, candidates, seen = [], [], [], set()
        for vote in req.votes:
            if vote.id in seen:
                duplicates.append(vote.id)
                continue
            seen.add(vote.id)
            reason = domain.check_vote(vote, scale, now, choices)
            if reason:
                rejected.append({"id": vote.id, "reason": reason})
            else:
                candidates.append(vote)
        VOTES_RECEIVED.labels("rejected").inc(len(rejected))
        accepted: list[str] = []
        if candidates:
            pressed = [domain.as_utc(v.pressed_at) for v in candidates]
            flags = domain.flag_repeats(pressed, kiosk.get("last_pressed_at"), kiosk.get("repeat_seconds", 3))
            received = now.timestamp()
            docs = []
            for v, p, repeated in zip(candidates, pressed, flags):
                # Times as epoch seconds: nx-27017 encodes a datetime field by a Python call per value.
                # `repeated` only when true: each field costs nx-27017 time per document (readers use .get).
                doc = {"_id": v.id, "kiosk_id": kiosk["_id"], "site_id": site["_id"], "rating": v.rating,
                       "scale": scale, "pressed_ts": p.timestamp(), "received_ts": received}
                if repeated:
                    doc["repeated"] = True
                if v.follow_up is not None:
                    doc["follow_up"] = v.follow_up
                if v.comment:
                    if kiosk.get("comments") and not domain.comment_is_spam(v.comment):
                        doc["comment"] = v.comment.strip()
                    else:
                        doc["comment_refused"] = True
                docs.append(doc)
            job = INGEST.submit(self, Submit(docs, kiosk, site))
            accepted = [d["_id"] for d in job.stored]
            duplicates.extend(job.duplicates)
        VOTES_RECEIVED.labels("accepted").inc(len(accepted))
        VOTES_RECEIVED.labels("duplicate").inc(len(duplicates))
        if not accepted or kiosk.get("offline_since") is not None:
            KIOSKS.drop(kiosk["_id"])
            self._seen(kiosk, site, {})
        return {"accepted": accepted, "duplicates": duplicates, "rejected": rejected}

    def _store_group(self, jobs: list["Submit"], close: list,
                     sent=lambda: None) -> tuple[list[dict], float, str, list[str]]:
        """One round of writes for the votes of several submits (see IngestQueue): batch document (closing
        those of the previous rounds), votes, the kiosks' latest presses, counters; each submit learns which
        of its votes it stored. Returns the votes stored and when they were counted (for the metrics), the
        batch and its counters: the batch is closed by the next round, or at once when none follows."""
        docs = [d for job in jobs for d in job.docs]
        batch = self.store.open_batch([d["_id"] for d in docs], close)
        for d in docs:
            d["batch"] = batch
        sent()  # wakes green threads that run once this one waits for the insert, after sending it
        failed = self.store.insert_votes_indexed(docs)
        position = 0
        stored: list[dict] = []
        last_pressed: dict[str, float] = {}
        sites: dict[str, dict] = {}
        kiosks: dict[str, dict] = {}
        for job in jobs:
            job.stored, job.duplicates = [], []
            for d in job.docs:
                if position in failed:
                    job.duplicates.append(d["_id"])
                else:
                    job.stored.append(d)
                    kid = d["kiosk_id"]
                    if d["pressed_ts"] > last_pressed.get(kid, float("-inf")):
                        last_pressed[kid] = d["pressed_ts"]
                position += 1
            stored.extend(job.stored)
            sites.setdefault(job.site["_id"], job.site)
            kiosks.setdefault(job.kiosk["_id"], job.kiosk)
        if last_pressed:
            self.store.note_kiosks(last_pressed)
            for job in jobs:  # every cached copy of the kiosk follows (see KioskCache)
                last = last_pressed.get(job.kiosk["_id"])
                if last is not None and (job.kiosk.get("last_pressed_at") is None
                                         or last > job.kiosk["last_pressed_at"].timestamp()):
                    job.kiosk["last_pressed_at"] = domain.from_ts(last)
        counted, counter_ids = self._count(batch, stored, sites, kiosks, close=False)
        for job in jobs:  # the alert state seen for a site (a kiosk) holds for every copy of it in the group
            if job.site is not sites[job.site["_id"]]:
                job.site["open_alert_id"] = sites[job.site["_id"]].get("open_alert_id")
            if job.kiosk is not kiosks[job.kiosk["_id"]]:
                job.kiosk["open_alert_id"] = kiosks[job.kiosk["_id"]].get("open_alert_id")
        return stored, counted, batch, counter_ids

    def _count(self, batch: str, stored: list[dict], sites: dict[str, dict], kiosks: dict[str, dict],
               close: bool = True) -> tuple[float, list[str]]:
        """Apply the counters of the votes a batch stored (each names its kiosk, site, scale and `pressed_ts`),
        close the batch (unless the caller will) and evaluate the alerts of the sites and kiosks with counted
        votes; returns when (epoch seconds, for `_observe`) and the counters touched."""
        increments = domain.votes_increments(stored)
        self.store.apply_counters(batch, increments)
        if close:
            self.store.finish_batch(batch, increments.keys())
        counted_at = utcnow()
        per_site: dict[str, set[str]] = {}
        for d in stored:
            if not d.get("repeated"):
                per_site.setdefault(d["site_id"], set()).add(d["kiosk_id"])
        for site_id in sorted(per_site):
            self._after_count(sites[site_id], [kiosks[k] for k in sorted(per_site[site_id]) if k in kiosks], counted_at)
        return counted_at.timestamp(), list(increments)

    @staticmethod
    def _observe(stored: list[dict], counted: float) -> None:
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

    def _after_count(self, site: dict, kiosks: list[dict], now: datetime) -> None:
        self._evaluate_alert(site, now, kiosks)
        if GAUGE_AT.get(site["_id"], 0.0) > time.monotonic():
            return
        GAUGE_AT[site["_id"]] = time.monotonic() + GAUGE_EVERY_SECONDS
        self._index_gauge(site["_id"], now)

    def _index_gauge(self, site_id: str, now: datetime) -> None:
        """The site's Happy Index today (Europe/Paris); no series for a site without votes today, so that
        yesterday's figure does not stay on the dashboards after midnight."""
        today = self.store.counters("site", site_id, "day", domain.day_start(now), now + timedelta(seconds=1))
        tally = domain.Tally.empty()
        for doc in today:
            tally.add_doc(doc)
        index = domain.happy_index(tally.score, tally.total)
        if index is not None:
            HAPPY_INDEX.labels(site_id).set(index)
        else:
            with contextlib.suppress(KeyError):  # never set
                HAPPY_INDEX.remove(site_id)

    def _evaluate_alert(self, site: dict, now: datetime, kiosks: list[dict] = (), site_too: bool = True) -> None:
        """The site's rule over the site's window and over each given kiosk's own window (one read for all),
        each raised and resolved once per episode."""
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
        counts, rule = domain.alert_counts(tally), domain.alert_rule(settings)
        base = {"site_id": site["_id"], "site_name": site["name"], "commune": site["commune"], "rule": rule,
                "counts": counts}
        if kiosk is not None:
            base.update(kiosk_id=kiosk["_id"], kiosk_name=kiosk.get("name"))
        what = site["_id"] if kiosk is None else f"{site['_id']} (kiosk {kiosk['_id']})"
        if holds and open_id is None:
            alert_id = f"alert-{uuid.uuid4().hex[:16]}"
            start = now - timedelta(minutes=rule["window_minutes"])
            event = self.events.build(c.AlertRaised.event_type, {**base, "alert_id": alert_id, "window_start": start,
                                                                 "window_end": now, "raised_at": now})
            alert = {"_id": alert_id, "site_id": site["_id"], "site_name": site["name"], "rule": rule,
                     "counts": counts, "raised_at": now, "resolved_at": None}
            if kiosk is not None:
                alert.update(kiosk_id=kiosk["_id"], kiosk_name=kiosk.get("name"))
            raised = (self.store.raise_alert(site["_id"], alert, event) if kiosk is None
                      else self.store.raise_kiosk_alert(kiosk["_id"], alert, event))
            if raised:
                holder["open_alert_id"] = alert_id  # the cached site (kiosk) follows (see KioskCache)
                log.info("satisfaction alert raised for %s", what)
            else:
                self._refresh(holder, kiosk is None)
        elif not holds and open_id is not None:
            alert = self.store.get_alert(open_id) or {"raised_at": now}
            event = self.events.build(c.AlertResolved.event_type, {**base, "alert_id": open_id,
                                                                   "raised_at": alert["raised_at"], "resolved_at": now})
            resolved = (self.store.resolve_alert(site["_id"], open_id, now, counts, event) if kiosk is None
                        else self.store.resolve_kiosk_alert(kiosk["_id"], open_id, now, counts, event))
            if resolved:
                holder["open_alert_id"] = None
                log.info("satisfaction alert resolved for %s", what)
            else:
                self._refresh(holder, kiosk is None)

    def _refresh(self, holder: dict, is_site: bool) -> None:
        """Another instance changed the alert state: take the stored one."""
        doc = self.store.get_site(holder["_id"]) if is_site else self.store.get_kiosk(holder["_id"])
        if doc is not None and is_site:
            holder.update(doc)
        elif doc is not None:
            holder["open_alert_id"] = doc.get("open_alert_id")

    def _seen(self, kiosk: dict, site: dict, sets: dict) -> None:
        event = None
        if kiosk.get("offline_since") is not None:
            event = self.events.build(c.KioskOnline.event_type, {
                "kiosk_id": kiosk["_id"], "kiosk_name": kiosk["name"], "site_id": site["_id"], "site_name": site["name"],
                "commune": site["commune"], "offline_since": kiosk["offline_since"], "back_at": utcnow()})
        self.store.kiosk_seen(kiosk["_id"], sets, event)

    @rpc
    @contract(c.HEARTBEAT)
    def heartbeat(self, req: c.Heartbeat) -> dict:
        kiosk, site = self._own_kiosk()
        KIOSKS.drop(kiosk["_id"])
        self._seen(kiosk, site, {k: v for k, v in req.model_dump().items() if v is not None})
        return {"id": kiosk["_id"], "name": kiosk["name"], "site_name": site["name"], "question": kiosk["question"],
                "scale": kiosk.get("scale", 4), "follow_up": kiosk.get("follow_up"),
                "comments": bool(kiosk.get("comments")), "server_time": utcnow()}

    # -- timers ---------------------------------------------------------------------------------
    @timer(interval=RECOVERY_INTERVAL, eager=True)
    def recover_batches(self) -> None:
        """Count the batches a crash left half-done (idempotent: the counters' markers skip what was applied)."""
        now = utcnow()
        horizon = max(STARTED_AT, now - RECOVERY_AGE)
        for batch in self.store.stale_batches(horizon):
            stored = [domain.vote_times(d) for d in self.store.votes_of_batch(batch)]
            for d in stored:  # batches of one kiosk (older ones) name it in the batch document only
                d.setdefault("kiosk_id", batch.get("kiosk_id"))
                d.setdefault("site_id", batch.get("site_id"))
                d.setdefault("scale", batch.get("scale", 4))
            sites, kiosks = {}, {}
            for site_id in {d["site_id"] for d in stored}:
                sites[site_id] = self.store.get_site(site_id) or {"_id": site_id, "name": "", "commune": "x"}
            for kiosk_id in {d["kiosk_id"] for d in stored}:
                kiosk = self.store.get_kiosk(kiosk_id)
                if kiosk is not None:
                    kiosks[kiosk_id] = kiosk
            log.info("recovering batch %s (%s votes)", batch["_id"], len(stored))
            self._observe(stored, self._count(batch["_id"], stored, sites, kiosks)[0])
        self._recover_recounts(horizon, now)
        self.store.flush_prunes()

    def _recover_recounts(self, horizon: datetime, now: datetime) -> None:
        """Finish the recounts a crash left with their plan written (each step is idempotent); drop the claims
        left without a plan long enough for their holder to be gone (it fails then, if it was not)."""
        for job in self.store.stale_recounts(horizon):
            if job.get("state") == "apply":
                log.info("recovering the recount of kiosk %s", job["_id"])
                self.store.apply_recount(job)
            elif job["created_ts"] < (now - RECOUNT_CLAIM_AGE).timestamp():
                log.warning("dropping the recount claim of kiosk %s (no plan after %s)", job["_id"], RECOUNT_CLAIM_AGE)
                self.store.drop_recount_claim(job["_id"], job["token"])

    @timer(interval=WATCH_INTERVAL, eager=True)
    def watch(self) -> None:
        """Kiosks silent during opening hours go offline (once); open alerts are re-checked as time passes;
        the sites' gauges (kiosks offline, Happy Index of the day) follow."""
        now = utcnow()
        sites = {s["_id"]: s for s in self.store.list_sites()}
        for kiosk in self.store.silent_kiosks(now - timedelta(seconds=KIOSK_SILENCE)):
            self.store.kiosk_times(kiosk)
            site = sites.get(kiosk["site_id"])
            if site is None or not domain.is_open(kiosk.get("opening_hours") or [], now):
                continue
            silent = int((now - kiosk["last_seen_at"]).total_seconds() // 60)
            event = self.events.build(c.KioskOffline.event_type, {
                "kiosk_id": kiosk["_id"], "kiosk_name": kiosk["name"], "site_id": site["_id"],
                "site_name": site["name"], "commune": site["commune"], "last_seen_at": kiosk["last_seen_at"],
                "silent_minutes": silent, "detected_at": now})
            self.store.mark_offline(kiosk["_id"], event)
        offline: dict[str, int] = {sid: 0 for sid in sites}
        for kiosk in self.store.list_kiosks(None):
            if kiosk.get("offline_ts") is not None and kiosk["site_id"] in offline:
                offline[kiosk["site_id"]] += 1
        for sid, n in offline.items():
            KIOSKS_OFFLINE.labels(sid).set(n)
            if GAUGE_AT.get(sid, 0.0) <= time.monotonic():  # not refreshed by a vote lately (e.g. a new day)
                self._index_gauge(sid, now)
        open_sites = self.store.sites_with_open_alerts()
        ALERTS_OPEN.set(len(open_sites))
        open_kiosks: dict[str, list[dict]] = {}
        for kiosk in self.store.kiosks_with_open_alerts():
            open_kiosks.setdefault(kiosk["site_id"], []).append(kiosk)
        for site in open_sites:
            self._evaluate_alert(site, now, open_kiosks.pop(site["_id"], []))
        for site_id, kiosks in open_kiosks.items():  # sites without an open alert of their own
            if site_id in sites:
                self._evaluate_alert(sites[site_id], now, kiosks, site_too=False)

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
        points: dict[datetime, domain.Tally] = {}
        total = domain.Tally.empty()
        for doc in docs:
            key = domain.week_start(doc["start"]) if req.granularity == "week" else doc["start"]
            points.setdefault(key, domain.Tally.empty()).add_doc(doc)
            total.add_doc(doc)
        profile: dict[int, domain.Tally] = {}
        for doc in (docs if gran == "hour" else self.store.counters(scope, ref, "hour", start, end)):
            hour = domain.as_utc(doc["start"]).astimezone(domain.PARIS).hour
            profile.setdefault(hour, domain.Tally.empty()).add_doc(doc)
        return {"points": [t.point(k) for k, t in sorted(points.items())], "total": total.point(start),
                "profile": [t.point(datetime(2000, 1, 1, h, tzinfo=domain.PARIS)) for h, t in sorted(profile.items())]}

    @rpc
    @contract(c.COMPARE_SITES)
    def compare_sites(self, req: c.CompareQuery) -> list[dict]:
        self.caller.require({"agent", "operator"})
        out = []
        for site in self.store.list_sites():
            tally = domain.Tally.empty()
            for doc in self.store.counters("site", site["_id"], "day", domain.as_utc(req.start), domain.as_utc(req.end)):
                tally.add_doc(doc)
            out.append({"site_id": site["_id"], "site_name": site["name"], "commune": site["commune"],
                        "total": tally.total, "negative": tally.negative,
                        "happy_index": domain.happy_index(tally.score, tally.total)})
        return sorted(out, key=lambda s: (s["happy_index"] is None, -(s["happy_index"] or 0)))

    @rpc
    @contract(c.LIST_ALERTS)
    def list_alerts(self, req: c.ListAlerts) -> list[dict]:
        self.caller.require({"agent", "operator"})
        return [{"id": a["_id"], "resolved_at": domain.from_ts(a.get("resolved_ts")),
                 **{k: a.get(k) for k in ("site_id", "site_name", "kiosk_id", "rule", "counts", "raised_at")}}
                for a in self.store.list_alerts(req.site_id, req.open_only)]

    @rpc
    @contract(c.RECOUNT_KIOSK)
    def recount_kiosk(self, req: c.RecountKiosk) -> dict:
        """Replay the kiosk's current repeated-press rule over its votes pressed in [start, end): the flags that
        change and the counters' deltas are written first (the plan), then applied (see store.py)."""
        self.caller.require({"agent"})
        start, end = domain.as_utc(req.start), domain.as_utc(req.end)
        if end <= start:
            raise BadInput("La fin de la période doit suivre son début.", "to")
        if end - start > domain.MAX_RECOUNT:
            raise BadInput("La période d'un recomptage est de 31 jours au plus.", "to")
        if self.store.get_kiosk(req.kiosk_id) is None:
            raise NotFound(f"Borne inconnue : {req.kiosk_id}", "kioskId")
        token = self.store.claim_recount(req.kiosk_id)
        if token is None:  # a recount is pending: help it finish when its plan is written, then try again
            job = self.store.get_recount(req.kiosk_id)
            if job is not None and job.get("state") == "apply":
                self.store.apply_recount(job)
            token = self.store.claim_recount(req.kiosk_id)
            if token is None:
                raise Conflict("Un recomptage de cette borne est déjà en cours ; réessayez dans un instant.", "kioskId")
        planned = False
        try:
            kiosk = self.store.get_kiosk(req.kiosk_id)  # its rule as of now, under our claim
            seconds = int(kiosk.get("repeat_seconds", 3))
            # The press before `start` matters only within `seconds` of it: one read covers both.
            docs = self.store.kiosk_votes(req.kiosk_id, start.timestamp() - seconds, end.timestamp())
            votes = [d for d in docs if domain.vote_pressed_ts(d) >= start.timestamp()]
            before = [domain.vote_pressed_ts(d) for d in docs if domain.vote_pressed_ts(d) < start.timestamp()]
            flags = domain.replay_flags(votes, max(before, default=None), seconds)
            flag, unflag = domain.flag_flips(votes, flags)
            report = {"examined": len(votes), "flagged": len(flag), "unflagged": len(unflag)}
            if not flag and not unflag:
                return report
            deltas = domain.recount_deltas(flag, unflag)
            planned = self.store.plan_recount(req.kiosk_id, token, [v["_id"] for v in flag],
                                              [v["_id"] for v in unflag], deltas, utcnow().timestamp())
            if not planned:
                raise ServiceUnavailable("Le recomptage a été interrompu ; relancez-le.")
        finally:
            if not planned:
                self.store.drop_recount_claim(req.kiosk_id, token)
        job = self.store.get_recount(req.kiosk_id)
        if job is not None and job.get("token") == token:  # else the recovery has already applied it
            self.store.apply_recount(job)
        site = self.store.get_site(kiosk["site_id"])
        if site is not None:  # the alert windows may have changed (when the period reaches them)
            self._evaluate_alert(site, utcnow(), [kiosk])
        log.info("kiosk %s recounted over %s - %s with %ss: %s", req.kiosk_id, start, end, seconds, report)
        return report

    @rpc
    @contract(c.SITE_SUMMARY)
    def site_summary(self, req: c.SiteRef) -> dict:
        self.caller.require({"agent", "operator"})
        site = self._site(req.site_id)
        now = utcnow()
        tally = domain.Tally.empty()
        updated = None
        for doc in self.store.counters("site", site["_id"], "day", domain.day_start(now), now + timedelta(days=1)):
            tally.add_doc(doc)
            updated = doc.get("updated_at")
        return {"site_id": site["_id"], "total_today": tally.total, "negative_today": tally.negative,
                "happy_index_today": domain.happy_index(tally.score, tally.total), "counts_today": tally.counts,
                "open_alert_id": site.get("open_alert_id"), "updated_at": updated}

    # -- demo data --------------------------------------------------------------------------------
    @rpc
    @contract(c.SEED_DEMO)
    def seed_demo_sites(self, req: c.SeedDemo) -> dict:
        """Demo sites and kiosks of the Sicoval; `token_ids` (kiosk id -> jti) sets the demo kiosks' tokens."""
        self.caller.require({"operator"})
        kiosks = 0
        for site, site_kiosks in domain.DEMO_SITES:
            if self.store.get_site(site["id"]) is None:
                self.store.upsert_site(c.SiteInput.model_validate(site).model_dump())
            for kiosk in site_kiosks:
                settings = c.KioskSettings.model_validate({k: v for k, v in kiosk.items() if k != "id"}).model_dump()
                token_id = req.token_ids.get(kiosk["id"])
                if self.store.get_kiosk(kiosk["id"]) is None:
                    self.store.insert_kiosk({"id": kiosk["id"], "site_id": site["id"], **settings,
                                             "token_id": token_id})
                elif token_id:
                    self.store.update_kiosk(kiosk["id"], {"token_id": token_id, "revoked_ts": None})
                kiosks += 1
        return {"sites": len(domain.DEMO_SITES), "kiosks": kiosks}
