"""Notification service entrypoints: thin; rules in domain.py, storage in store.py, sending in dispatch.py."""
from __future__ import annotations

import logging
import time

from contracts import agenda as agenda_c
from contracts import consultation as consultation_c
from contracts import notification as c
from contracts import satisfaction as satisfaction_c
from contracts.errors import BadInput, Forbidden, NotFound
from services.common.events import Events, handle_event
from services.common.mongo import Mongo, utcnow
from services.common.rpc import contract, rpc
from services.common.service import ServiceBase
from services.common.settings import Settings
from services.common.timers import timer
from services.notification import accounts, domain, signin, views
from services.notification.compose import Composer
from services.notification.consultations import ConsultationNews
from services.notification.dispatch import BACKLOG, Dispatcher, new_notification
from services.notification.partners import PartnerEntrypoints
from services.notification.settings import NotificationSettings
from services.notification.store import NotificationStore
from services.notification.webhooks import Receipts
from services.notification.templates import LATEST

log = logging.getLogger(__name__)

DIGEST_CHECK_INTERVAL = 30.0  # seconds between two looks at whether the day's digest is due


class NotificationService(PartnerEntrypoints, ServiceBase):
    name = "notification"
    store: NotificationStore = Mongo(NotificationStore)
    events = Events()
    settings: NotificationSettings = Settings(NotificationSettings)

    @property
    def compose(self) -> Composer:
        return Composer(self.store, self.settings)

    # -- token revocations and contacts (foundation) --------------------------------------------
    @rpc
    @contract(c.REVOKE_TOKEN)
    def revoke_token(self, req: c.RevokeToken) -> dict:
        """Operators revoke any token; anybody signed in revokes their own (signing out)."""
        if not (self.caller.token_id and self.caller.token_id == req.token_id):
            self.caller.require({"operator"})
        return self.store.revoke(req.token_id, req.expires_at, req.reason)

    @rpc
    @contract(c.LIST_REVOKED_TOKENS)
    def list_revoked_tokens(self, _req) -> list[dict]:
        return self.store.revoked()

    @rpc
    @contract(c.GET_ORGANIZATION_CONTACT)
    def get_organization_contact(self, req: c.GetOrganizationContact) -> dict:
        doc = self.store.organization_contact(req.id)
        if doc is None:
            raise NotFound(f"Organisation inconnue : {req.id}", "id")
        return {"id": doc["_id"], "name": doc["name"], "contact_email": doc.get("contact_email")}

    @handle_event("agenda", agenda_c.OrganizationUpserted.event_type)
    def on_organization_upserted(self, data: agenda_c.OrganizationUpserted, envelope) -> None:
        self.store.save_organization_contact(data.model_dump(), envelope.event_id, envelope.occurred_at)

    # -- sign-in codes, accounts and sessions (signin.py, accounts.py) -------------------------------
    @rpc
    @contract(c.REQUEST_LOGIN_CODE)
    def request_login_code(self, req: c.RequestLoginCode) -> dict:
        return signin.request_code(self.store, self.settings, req, utcnow())

    @rpc
    @contract(c.VERIFY_LOGIN_CODE)
    def verify_login_code(self, req: c.VerifyLoginCode) -> dict:
        return signin.verify_code(self.store, self.settings, req, utcnow())

    @rpc
    @contract(c.GRANT_ROLE)
    def grant_role(self, req: c.GrantRole) -> dict:
        caller = self.caller.require({"agent", "operator"})
        return accounts.grant(self.store, caller, self.settings.secret, req, utcnow())

    @rpc
    @contract(c.REVOKE_ROLE)
    def revoke_role(self, req: c.AccountRef) -> dict:
        caller = self.caller.require({"agent", "operator"})
        return accounts.revoke(self.store, caller, self.settings.secret, req, utcnow())

    @rpc
    @contract(c.LIST_ACCOUNTS)
    def list_accounts(self, req: c.ListAccounts) -> list[dict]:
        return accounts.list_accounts(self.store, self.caller.require({"agent", "operator"}), req)

    @rpc
    @contract(c.LIST_SESSIONS)
    def list_sessions(self, req: c.ListSessions) -> list[dict]:
        self.caller.require({"operator"})
        return accounts.sessions(self.store, req, utcnow())

    # -- subscriptions -----------------------------------------------------------------------------
    @rpc
    @contract(c.SUBSCRIBE)
    def subscribe(self, req: c.Subscribe) -> dict:
        caller = self.caller.require({"citizen", "agent"})
        topic = domain.check_topic(req.topic, caller.role)
        domain.check_digest(topic, req.channel, req.digest)  # before the channel's own fields: SMS has none
        recipient = caller.subject
        if not recipient:
            raise Forbidden("Jeton sans sujet : reconnectez-vous.")
        address = None
        if req.channel == "email":
            if caller.role == "citizen":
                citizen = self.store.citizen(recipient)
                address = citizen["email"] if citizen else None
                if req.email is not None and domain.normalise_email(req.email) != address:
                    raise BadInput("Les messages partent à l'adresse vérifiée à la connexion.", "email")
            elif req.email:
                address = domain.normalise_email(req.email)
            if not address:
                raise BadInput("Indiquez une adresse électronique.", "email")
        elif req.channel == "sms":
            if not req.phone:
                raise BadInput("Indiquez un numéro de téléphone pour les SMS.", "phone")
            address = domain.normalise_phone(req.phone)
            if caller.role == "citizen":
                self.store.set_citizen_phone(recipient, address)
        if bool(req.quiet_from) != bool(req.quiet_to):
            raise BadInput("Indiquez le début et la fin des heures calmes.", "quiet_to" if req.quiet_from else "quiet_from")
        sub_id = f"{recipient}|{topic}|{req.channel}"
        doc = self.store.subscribe({"_id": sub_id, "recipient": recipient, "topic": topic, "channel": req.channel,
                                    "address": address, "quiet_from": req.quiet_from, "quiet_to": req.quiet_to,
                                    "digest": req.digest, "created_at": utcnow()})
        return views.subscription(doc)

    @rpc
    @contract(c.UNSUBSCRIBE)
    def unsubscribe(self, req: c.Unsubscribe) -> dict:
        if req.token:
            sub_id = domain.unsign(self.settings.secret, "unsubscribe", req.token)
            if sub_id is None:
                raise BadInput("Lien de désabonnement invalide.", "token")
            digest = domain.parse_digest_link(sub_id)
            if digest is not None:  # a digest's link: all the digest subscriptions it was sent for
                topics = self.store.unsubscribe_digests(*digest)
                return {"unsubscribed": bool(topics), "topic": ", ".join(topics) or None}
            done = self.store.unsubscribe(sub_id)
        elif req.id:
            caller = self.caller.require({"citizen", "agent"})
            sub_id = req.id
            done = self.store.unsubscribe(sub_id, caller.subject)
        else:
            raise BadInput("Indiquez l'abonnement (id) ou le jeton du lien.", "id")
        parts = sub_id.split("|")
        return {"unsubscribed": done, "topic": parts[1] if len(parts) == 3 else None}

    @rpc
    @contract(c.MY_SUBSCRIPTIONS)
    def my_subscriptions(self, _req) -> list[dict]:
        caller = self.caller.require({"citizen", "agent"})
        return [views.subscription(d) for d in self.store.subscriptions_of(caller.subject)]

    @rpc
    @contract(c.MY_NOTIFICATIONS)
    def my_notifications(self, req: c.MyNotifications) -> list[dict]:
        caller = self.caller.require({"citizen", "agent"})
        return [views.notification(d) for d in self.store.notifications_for(caller.subject, "in_app", req.limit, req.unread_only)]

    @rpc
    @contract(c.MARK_READ)
    def mark_notifications_read(self, req: c.MarkRead) -> dict:
        caller = self.caller.require({"citizen", "agent"})
        return {"count": self.store.mark_read(caller.subject, req.ids, utcnow())}

    # -- templates and direct sends ----------------------------------------------------------------
    @rpc
    @contract(c.LIST_TEMPLATES)
    def list_templates(self, _req) -> list[dict]:
        return [{"name": t.name, "version": t.version, "description": t.description, "channels": t.channels,
                 "variables": sorted(set().union(*(domain.required_variables(t, ch) for ch in t.channels)))}
                for t in sorted(LATEST.values(), key=lambda t: t.name)]

    @rpc
    @contract(c.PREVIEW_TEMPLATE)
    def preview_template(self, req: c.PreviewTemplate) -> dict:
        self.caller.require({"agent"})
        tpl = domain.template(req.name, req.version, "name")
        parts = domain.render(tpl, req.channel, req.personalisation)
        return {"name": tpl.name, "version": tpl.version, "channel": req.channel, "subject": parts.get("subject"),
                "text": parts["text"], "html": parts.get("html"), "length": len(parts["text"])}

    @rpc
    @contract(c.SEND_NOTIFICATION)
    def send_notification(self, req: c.SendNotification) -> dict:
        caller = self.caller.require({"agent", "operator", "service"})
        # A partner application (role service) sends for itself: its receipts go to its own webhooks only.
        partner = caller.subject if caller.role == "service" else req.partner
        if req.template in domain.PRIVATE_TEMPLATES:
            raise BadInput("Ce modèle n'est envoyé que par la plateforme elle-même.", "template")
        tpl = domain.template(req.template)
        if req.channel == "email":
            address = recipient = domain.normalise_email(req.to, "to")
        elif req.channel == "sms":
            address = recipient = domain.normalise_phone(req.to, "to")
        else:
            address = recipient = req.to
        parts = domain.render(tpl, req.channel, req.personalisation)
        doc = new_notification(event_id=req.reference, event_type=None, template=tpl, channel=req.channel,
                               recipient=recipient, address=address, parts=parts, now=utcnow(), partner=partner)
        self.store.insert_notifications([doc])
        return views.notification(self.store.get_notification(doc["_id"]))

    @rpc
    @contract(c.DELIVERIES)
    def notification_deliveries(self, req: c.DeliveryFilter) -> list[dict]:
        self.caller.require({"agent", "operator"})
        query = {k: v for k, v in {"status": req.status, "channel": req.channel, "event_id": req.event_id,
                                   "template": req.template}.items() if v is not None}
        return [views.notification(d) for d in self.store.deliveries(query, req.limit)]

    # -- the daily digest of the agenda ------------------------------------------------------------------
    @rpc
    @contract(c.SEND_DIGESTS)
    def send_digests(self, req: c.SendDigests) -> dict:
        self.caller.require({"agent", "operator"})
        today = utcnow().astimezone(domain.PARIS).date()
        if req.day is not None and req.day > today:
            raise BadInput("Le résumé d'un jour à venir ne peut pas encore être envoyé.", "day")
        return self.compose.send_digests(req.day or today)

    @timer(DIGEST_CHECK_INTERVAL, eager=True, exclusive=True)
    def daily_digest(self) -> None:
        """From PARVIS_DIGEST_HOUR (Paris time) on, the day's digests, once: a run stopped mid-way (restart)
        is done again by the next tick, and what it had created already is not created twice."""
        day = domain.digest_day_due(utcnow(), self.settings.digest_hour)
        if day is None or self.store.digest_done(day.isoformat()):
            return
        result = self.compose.send_digests(day)
        log.info("digest of %s: %s events, %s recipients, %s created", day, result["events"], result["recipients"],
                 result["created"])

    # -- delivery ------------------------------------------------------------------------------------
    @timer("dispatch_interval", exclusive=False)  # each message claimed by one replica (store.claim_due)
    def dispatch(self) -> int:
        """Send what is due: new notifications and temporary failures whose retry time has come."""
        sent = Dispatcher(self.store, self.settings, self.events).run()
        now = time.monotonic()
        if now - getattr(NotificationService, "_backlog_at", 0.0) > 15:
            NotificationService._backlog_at = now
            counts = self.store.backlog()
            for channel in domain.CHANNELS:
                BACKLOG.labels(channel).set(counts.get(channel, 0))
        return sent

    @timer("dispatch_interval", exclusive=False)  # each receipt claimed by one replica (store.claim_callbacks)
    def callbacks(self) -> int:
        """Delivery receipts POSTed to partners' webhooks, signed, retried with backoff (webhooks.py)."""
        return Receipts(self.store, self.settings).deliver()

    # -- what the other services announce -------------------------------------------------------------
    @handle_event("agenda", agenda_c.EventPublished.event_type)
    def on_event_published(self, data: agenda_c.EventPublished, envelope) -> None:
        self.compose.tell_organizer(envelope, data, published=True)
        if data.revision:  # a corrected revision is not news for subscribers; a digest to come lists it as it is
            self.store.refresh_digest_item(data.id, self.compose.digest_fields(data))
            return
        # For the digests: one small document per event, whatever the number of digest subscribers
        # (they are read at the day's run), kept under the event's id (a redelivery stores nothing more).
        personalisation = self.compose.event_personalisation(data)
        self.store.save_digest_item({"_id": data.id, **self.compose.digest_fields(data, personalisation), "ts": time.time()})
        self.compose.fan_out(envelope, [f"agenda:commune:{data.commune}", f"agenda:category:{data.category}"],
                      "event_published", personalisation)

    @handle_event("agenda", agenda_c.EventRejected.event_type)
    def on_event_rejected(self, data: agenda_c.EventRejected, envelope) -> None:
        self.compose.tell_organizer(envelope, data, published=False, reason=data.reason)

    @handle_event("agenda", agenda_c.EventCancelled.event_type)
    def on_event_cancelled(self, data: agenda_c.EventCancelled, envelope) -> None:
        self.store.drop_digest_item(data.id)
        self.compose.fan_out(envelope, [f"agenda:commune:{data.commune}", f"agenda:category:{data.category}"],
                      "event_cancelled", {**self.compose.event_personalisation(data), "reason": data.reason or ""})

    # Submitted, updated and withdrawn events tell nobody yet: agents see submissions in their queue,
    # and subscribers are told of publications and cancellations only (no digest of edits).
    @handle_event("agenda", agenda_c.EventSubmitted.event_type)
    def on_event_submitted(self, data: agenda_c.EventSubmitted, envelope) -> None:
        log.info("event %s submitted by %s: nothing to send", data.id, data.organizer)

    @handle_event("agenda", agenda_c.EventUpdated.event_type)
    def on_event_updated(self, data: agenda_c.EventUpdated, envelope) -> None:
        log.info("event %s updated (%s): nothing to send", data.id, ", ".join(data.changed))
        self.store.refresh_digest_item(data.id, self.compose.digest_fields(data))

    @handle_event("agenda", agenda_c.EventWithdrawn.event_type)
    def on_event_withdrawn(self, data: agenda_c.EventWithdrawn, envelope) -> None:
        log.info("event %s withdrawn: nothing to send", data.id)
        self.store.drop_digest_item(data.id)

    def _site_alert(self, envelope, data, headline: str, detail: str) -> None:
        self.compose.fan_out(envelope, [f"satisfaction:site:{data.site_id}"], "satisfaction_alert", {
            "headline": headline, "site": data.site_name, "commune": self.store.commune_name(data.commune),
            "detail": detail})

    @handle_event("satisfaction", satisfaction_c.AlertRaised.event_type)
    def on_alert_raised(self, data: satisfaction_c.AlertRaised, envelope) -> None:
        where = f" (borne {data.kiosk_name})" if data.kiosk_name else ""
        self._site_alert(envelope, data, "Alerte satisfaction", (
            f"{data.counts.negative} avis négatifs sur {data.counts.votes} ({data.counts.negative_percent:.0f} %) "
            f"en {data.rule.window_minutes} minutes{where}."))

    @handle_event("satisfaction", satisfaction_c.AlertResolved.event_type)
    def on_alert_resolved(self, data: satisfaction_c.AlertResolved, envelope) -> None:
        where = f" à la borne {data.kiosk_name}" if data.kiosk_name else ""
        self._site_alert(envelope, data, "Fin d'alerte satisfaction",
                         f"La satisfaction est revenue au-dessus du seuil{where} "
                         f"({data.counts.negative_percent:.0f} % d'avis négatifs).")

    @handle_event("satisfaction", satisfaction_c.KioskOffline.event_type)
    def on_kiosk_offline(self, data: satisfaction_c.KioskOffline, envelope) -> None:
        self._site_alert(envelope, data, "Borne hors ligne",
                         f"La borne {data.kiosk_name} ne répond plus depuis {data.silent_minutes} minutes.")

    @handle_event("satisfaction", satisfaction_c.KioskOnline.event_type)
    def on_kiosk_online(self, data: satisfaction_c.KioskOnline, envelope) -> None:
        self._site_alert(envelope, data, "Borne de nouveau en ligne", f"La borne {data.kiosk_name} répond de nouveau.")

    # Consultations: openings, results and budget phases to their topics, decisions on a project to its author
    # (consultations.py). Scheduled, closed and archived consultations and proposed projects tell nobody.
    @handle_event("consultation", consultation_c.ConsultationOpened.event_type)
    def on_consultation_opened(self, data: consultation_c.ConsultationOpened, envelope) -> None:
        ConsultationNews(self.store, self.compose).opened(envelope, data)

    @handle_event("consultation", consultation_c.ResultsPublished.event_type)
    def on_consultation_results(self, data: consultation_c.ResultsPublished, envelope) -> None:
        ConsultationNews(self.store, self.compose).results(envelope, data)

    @handle_event("consultation", consultation_c.BudgetPhaseChanged.event_type)
    def on_budget_phase_changed(self, data: consultation_c.BudgetPhaseChanged, envelope) -> None:
        ConsultationNews(self.store, self.compose).phase(envelope, data)

    @handle_event("consultation", consultation_c.ProjectModerated.event_type)
    def on_project_moderated(self, data: consultation_c.ProjectModerated, envelope) -> None:
        ConsultationNews(self.store, self.compose).moderated(envelope, data)

    @handle_event("consultation", consultation_c.ProjectAssessed.event_type)
    def on_project_assessed(self, data: consultation_c.ProjectAssessed, envelope) -> None:
        ConsultationNews(self.store, self.compose).assessed(envelope, data)
