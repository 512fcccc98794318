"""Agenda service entrypoints: thin; rules in domain.py, storage in store.py."""
from __future__ import annotations

import uuid
from datetime import datetime, timezone

from contracts import agenda as c
from contracts import consultation as consultation_c
from contracts import agenda_public
from contracts.errors import BadInput, Conflict, Forbidden, NotFound
from services.agenda import domain, metrics
from services.agenda.meetings import publish_meetings
from services.agenda.store import AgendaStore
from services.common.events import Events, handle_event
from services.common.mongo import Mongo
from services.common.rpc import contract, rpc
from services.common.service import ServiceBase
from services.common.timers import timer


def _now() -> datetime:
    return datetime.now(timezone.utc)


ANNOUNCE_EVERY = 10  # seconds: how late a scheduled publication may be announced


def _ts(value) -> float:
    return domain.aware(value).timestamp()


class AgendaService(ServiceBase):
    name = "agenda"
    store: AgendaStore = Mongo(AgendaStore)
    events = Events()

    # -- reference data -------------------------------------------------------------------------
    @rpc
    @contract(c.IMPORT_REFERENCE_DATA)
    def import_reference_data(self, data: c.ReferenceData) -> c.ImportReport:
        self.caller.require({"agent", "operator"})
        created = updated = unchanged = 0
        for org in data.organizations:
            existing = self.store.get_organization(org.id)
            if not domain.organization_changed(existing, org):
                unchanged += 1
                continue
            event = self.events.build(c.OrganizationUpserted.event_type, org.model_dump())
            self.store.save_organization(org.model_dump(), event)
            if existing is None:
                created += 1
            else:
                updated += 1
        return c.ImportReport(
            communes=self.store.upsert_reference("communes", [x.model_dump() for x in data.communes]),
            organizations_created=created,
            organizations_updated=updated,
            organizations_unchanged=unchanged,
            categories=self.store.upsert_reference("categories", [x.model_dump() for x in data.categories]),
            themes=self.store.upsert_reference("themes", [x.model_dump() for x in data.themes]),
        )

    @rpc
    @contract(c.LIST_COMMUNES)
    def list_communes(self, _req) -> list[dict]:
        return self.store.list_reference("communes")

    @rpc
    @contract(c.LIST_ORGANIZATIONS)
    def list_organizations(self, req: c.ListOrganizations) -> list[dict]:
        return self.store.list_organizations(req.kind)

    @rpc
    @contract(c.LIST_CATEGORIES)
    def list_categories(self, _req) -> list[dict]:
        return self.store.list_reference("categories")

    @rpc
    @contract(c.LIST_THEMES)
    def list_themes(self, _req) -> list[dict]:
        return self.store.list_reference("themes")

    # -- writing events ---------------------------------------------------------------------------
    @rpc
    @contract(c.CREATE_EVENT)
    def create_event(self, req: c.CreateEvent) -> dict:
        caller = self.caller.require({"organizer", "agent"})
        organizer = caller.org if caller.role == "organizer" else (req.organizer or caller.org)
        if caller.role == "organizer" and req.organizer not in (None, caller.org):
            raise Forbidden("Vous ne pouvez proposer des événements que pour votre organisation.", "organizer")
        if not organizer:
            raise BadInput("Organisateur : indiquez l'organisation.", "organizer")
        org = self.store.get_organization(organizer)
        if org is None:
            raise BadInput(f"Organisation inconnue : {organizer}.", "organizer")
        fields = domain.validate_event(req.event, self.store.reference())
        now = _now()
        doc = {"_id": f"evt-{uuid.uuid4().hex[:16]}", **fields, "organizer": organizer,
               "organizer_name": org["name"], "moderation_state": "draft", "status": "scheduled", "queue": "none",
               "price_kind": "free" if fields["free"] else "paid", "created_at": now, "updated_at": now,
               "created_by": caller.subject, "version": 1}
        self.store.insert_event(doc, [])
        metrics.TRANSITIONS.labels("create", "draft").inc()
        return self._view(self.store.get_event(doc["_id"]))

    @rpc
    @contract(c.UPDATE_EVENT)
    def update_event(self, req: c.UpdateEvent) -> dict:
        doc = self._writable(req.id)
        if doc["moderation_state"] == "withdrawn":
            raise BadInput("Un événement retiré ne se modifie plus.", "id")
        fields = domain.validate_event(req.event, self.store.reference())
        fields["price_kind"] = "free" if fields["free"] else "paid"
        changed = domain.changed_fields(doc, fields)
        if doc["moderation_state"] == "published" and self.caller.role == "organizer":
            # The public keeps the published version; the edit waits for an agent as a revision.
            now = _now()
            env = self._event(c.EventSubmitted, {**doc, **fields}, revision=True,
                              duplicates=[d["id"] for d in self._duplicates({**doc, **fields})])
            self.store.update_event(doc["_id"], doc["version"],
                                    {"pending": fields, "pending_submitted_at": now, "queue": "revision",
                                     "queued_at": now}, [env])
            metrics.TRANSITIONS.labels("revise", "submitted").inc()
        else:
            events = []
            if doc["moderation_state"] == "published" and changed:
                events.append(self._event(c.EventUpdated, {**doc, **fields}, changed=changed))
            if doc["moderation_state"] == "submitted" and changed:
                # An edit while in the queue goes back to the end of it: the agent reviews what is there now (an
                # approval of the version read before is refused, see moderation_decision).
                now = _now()
                fields.update(queued_at=now, submitted_at=now, possible_duplicates=self._duplicates({**doc, **fields}))
            self.store.update_event(doc["_id"], doc["version"], fields, events)
            metrics.TRANSITIONS.labels("update", doc["moderation_state"]).inc()
        return self._view(self.store.get_event(doc["_id"]))

    @rpc
    @contract(c.SUBMIT_EVENT)
    def submit_event(self, req: c.EventRef) -> dict:
        doc = self._writable(req.id)
        new_state = domain.transition(doc["moderation_state"], "submit", self.caller.role)
        now = _now()
        duplicates = self._duplicates(doc)
        env = self._event(c.EventSubmitted, {**doc, "moderation_state": new_state},
                          duplicates=[d["id"] for d in duplicates])
        self.store.update_event(doc["_id"], doc["version"], {
            "moderation_state": new_state, "submitted_at": now, "queue": "event", "queued_at": now,
            "possible_duplicates": duplicates, "rejection_reason": None}, [env])
        metrics.TRANSITIONS.labels("submit", new_state).inc()
        return self._view(self.store.get_event(doc["_id"]))

    @rpc
    @contract(c.MODERATE_EVENT)
    def moderate_event(self, req: c.ModerateEvent) -> dict:
        self.caller.require({"agent"})
        doc = self._get(req.id)
        now = _now()
        decision = domain.moderation_decision(doc, req.decision, req.reason, now, self.caller.subject, req.version)
        self.store.update_event(doc["_id"], doc["version"], decision.sets,
                                [self._event(kind, event_doc, **extra) for kind, event_doc, extra in decision.announce],
                                unset=decision.unset)
        metrics.decided(req.decision, decision.outcome, domain.aware(doc.get("queued_at")), now)
        return self._view(self.store.get_event(doc["_id"]))

    @rpc
    @contract(c.WITHDRAW_EVENT)
    def withdraw_event(self, req: c.WithdrawEvent) -> dict:
        doc = self._writable(req.id)
        new_state = domain.transition(doc["moderation_state"], "withdraw", self.caller.role)
        env = self._event(c.EventWithdrawn, {**doc, "moderation_state": new_state})
        now = _now()
        sets = {"moderation_state": new_state, "queue": "none", "withdrawn_reason": (req.reason or "").strip() or None,
                "withdrawn_at": now}
        visible_from = domain.aware(doc.get("visible_from"))
        if visible_from is not None and visible_from > now:
            # Withdrawn before its scheduled publication: it never was public, so it leaves no tombstone (the public
            # copies keep it, never visible: visible_from None), and is never announced.
            sets.update(visible_from=None, announce_pending=False)
        self.store.update_event(doc["_id"], doc["version"], sets, [env], unset=("pending", "pending_submitted_at"))
        metrics.TRANSITIONS.labels("withdraw", new_state).inc()
        return self._view(self.store.get_event(doc["_id"]))

    @rpc
    @contract(c.SET_EVENT_STATUS)
    def set_event_status(self, req: c.SetEventStatus) -> dict:
        doc = self._writable(req.id)
        domain.check_status_change(doc["moderation_state"], doc.get("status", "scheduled"), req.status,
                                   bool(req.slots), doc.get("attendance_mode"), doc.get("online_url"))
        sets: dict = {"status": req.status, "status_reason": (req.reason or "").strip() or None}
        changed = ["status"]
        if req.slots:
            data = domain.event_input(doc)
            data.slots = req.slots
            fields = domain.validate_event(data, self.store.reference())
            sets.update({k: fields[k] for k in ("slots", "occurrences", "starts_at", "ends_at")})
            changed.append("slots")
        if req.status == "moved_online":
            sets["attendance_mode"] = "online"
        events = []
        if doc["moderation_state"] == "published":
            merged = {**doc, **sets}
            if req.status == "cancelled":
                events.append(self._event(c.EventCancelled, merged, reason=sets["status_reason"]))
            else:
                events.append(self._event(c.EventUpdated, merged, changed=changed))
        self.store.update_event(doc["_id"], doc["version"], sets, events)
        metrics.TRANSITIONS.labels(f"status_{req.status}", doc["moderation_state"]).inc()
        return self._view(self.store.get_event(doc["_id"]))

    # -- reading ---------------------------------------------------------------------------------
    @rpc
    @contract(c.GET_EVENT)
    def get_event(self, req: c.EventRef) -> dict:
        doc = self.store.get_event(req.id)
        if doc is None or not self._may_read(doc):
            raise NotFound("Événement introuvable.", "id")
        return self._view(doc)

    @rpc
    @contract(c.SEARCH_EVENTS)
    def search_events(self, req: c.SearchEvents) -> dict:
        """The public's search (contracts/agenda_public.py) over the read model; an agent who names moderation
        states searches every event in those states."""
        f = agenda_public.resolve_filter(req.filter, self.store.reference())
        if self.caller.role == "agent" and f.moderation_states:
            return self._page(lambda skip, limit: self.store.events_in_states(f, skip, limit), req.first, req.after)
        found = agenda_public.search(self.store.snapshot_docs(f.communes), f, _now())
        page, cursors, has_next = agenda_public.keyset_page(found, req.first, req.after, bool(f.updated_since))
        return {"items": [self._view(d) for d in page], "total": len(found), "cursors": cursors,
                "end_cursor": cursors[-1] if cursors else req.after, "has_next": has_next}

    @rpc
    @contract(c.PUBLIC_FEED)
    def public_feed(self, req: c.PublicFeedRequest) -> dict:
        """The documents of the public read model changed after (after_ts, after_id), oldest first, for the
        gateway's copy (gateway/readmodel.py)."""
        cursor = (req.after_ts, req.after_id)
        keyed = (((_ts(d["updated_at"]), d["_id"]), d) for d in self.store.snapshot_docs([]))
        changed = sorted(((key, d) for key, d in keyed if key > cursor), key=lambda kd: kd[0])
        return {"items": [{"view": domain.public_view(d), "visible_from": d.get("visible_from"),
                           "price_kind": d.get("price_kind"), "search": d.get("search") or "",
                           "updated_ts": key[0]} for key, d in changed[:req.first]],
                "complete": len(changed) <= req.first}

    @rpc
    @contract(c.MY_EVENTS)
    def my_events(self, req: c.MyEvents) -> dict:
        caller = self.caller.require({"organizer", "agent"})
        if not caller.org:
            raise Forbidden("Votre compte n'est rattaché à aucune organisation.")
        return self._page(lambda skip, limit: self.store.organization_events(caller.org, req.moderation_states, skip,
                                                                             limit), req.first, req.after)

    @rpc
    @contract(c.MODERATION_QUEUE)
    def moderation_queue(self, req: c.ModerationQueueRequest) -> dict:
        self.caller.require({"agent"})
        page = self._page(self.store.moderation_queue, req.first, req.after)
        counts = self.store.queue_counts()
        metrics.queue_size(counts)
        return {**page, "counts": counts}

    @timer(30, eager=True, exclusive=False)  # every replica's own gauge
    def refresh_queue_gauge(self) -> None:
        """Counting scans on nx-27017: done here and in moderation_queue, not on every transition; at start
        too, so that the dashboards show the queue from the first scrape."""
        metrics.queue_size(self.store.queue_counts())

    @timer(ANNOUNCE_EVERY, exclusive=True)
    def announce_scheduled(self) -> int:
        """Announces the scheduled publications whose time has come (`agenda.event_published`, through the
        outbox, in the same write that clears the flag: announced once even with several instances)."""
        now = _now()
        announced = 0
        for doc in self.store.due_announcements(now):
            env = self._event(c.EventPublished, doc, url=domain.PUBLIC_PATH.format(id=doc["_id"]))
            try:
                # updated_at moves to now: partners syncing with updatedSince get the event when it goes public.
                self.store.update_event(doc["_id"], doc["version"], {"announce_pending": False}, [env])
            except Conflict:
                continue  # changed meanwhile (or announced by another instance): the next round looks again
            metrics.TRANSITIONS.labels("announce", "published").inc()
            announced += 1
        return announced

    @timer(1, exclusive=False)  # every replica's own snapshot
    def refresh_public_snapshot(self) -> int:
        """Loads the read model at start, then follows the other instances' writes (≤ 1 s behind)."""
        return self.store.refresh_snapshot()

    # -- helpers ---------------------------------------------------------------------------------
    def _page(self, read, first: int, after: str | None) -> dict:
        """An offset page of a list from the database: `read(skip, limit)` gives (documents, total)."""
        kind, offset = agenda_public.parse_cursor(after)
        if kind != "o":
            raise BadInput("Curseur invalide ici : il vient d'une autre liste.", "after")
        docs, total = read(offset, first)
        end = offset + len(docs)
        return {"items": [self._view(d) for d in docs], "total": total,
                "cursors": [agenda_public.encode_cursor(offset + i + 1) for i in range(len(docs))],
                "end_cursor": agenda_public.encode_cursor(end) if docs else after, "has_next": end < total}

    def _get(self, event_id: str) -> dict:
        doc = self.store.get_event(event_id)
        if doc is None:
            raise NotFound("Événement introuvable.", "id")
        return doc

    def _writable(self, event_id: str) -> dict:
        caller = self.caller.require({"organizer", "agent"})
        doc = self._get(event_id)
        if not domain.may_touch(caller.role, caller.org, doc["organizer"]):
            raise Forbidden("Cet événement appartient à une autre organisation.", "id")
        return doc

    def _may_read(self, doc: dict) -> bool:
        caller = self.caller
        if caller.role == "agent":
            return True
        if caller.role == "organizer" and caller.org == doc["organizer"]:
            return True
        return domain.visible_to_public({**doc, "publish_at": domain.aware(doc.get("visible_from"))}, _now())

    def _duplicates(self, doc: dict) -> list[dict]:
        others = self.store.overlapping(doc["commune"], doc["starts_at"], doc["ends_at"])
        return domain.likely_duplicates(doc, others)

    def _event(self, contract_cls, doc: dict, **extra) -> dict:
        data = {"id": doc["_id"], "title": doc["title"], "organizer": doc["organizer"], "commune": doc["commune"],
                "category": doc["category"], "starts_at": doc["starts_at"], "ends_at": doc["ends_at"],
                "moderation_state": doc["moderation_state"], "status": doc.get("status", "scheduled"),
                "actor": self.caller.subject, **extra}
        return self.events.build(contract_cls.event_type, data)

    def _view(self, doc: dict) -> dict:
        """The caller's view: agents and the event's own organisers see all of it, the pending revision too; anybody
        else the public's view (domain.public_view)."""
        caller = self.caller
        if not (caller.role == "agent" or (caller.role == "organizer" and caller.org == doc["organizer"])):
            return domain.public_view(doc)
        view = domain.event_view(doc)
        if doc.get("pending"):
            view["pending_revision"] = domain.event_view({**doc, **doc["pending"], "pending": None})
        return view

    # -- a consultation's public meetings (meetings.py) ----------------------------------------------
    @handle_event("consultation", consultation_c.ConsultationScheduled.event_type)
    def on_consultation_scheduled(self, data: consultation_c.ConsultationScheduled, envelope) -> None:
        publish_meetings(self.store, self.events.build, data, self.settings.public_url, _now())
