"""Turning what happened into messages: one per subscriber, channel and event (fan-out), an organiser's
moderation news, and the daily digest of the agenda; each stored as a notification that the dispatcher sends."""
from __future__ import annotations

import logging
import time
from datetime import date

import eventlet

from services.common.mongo import utcnow
from services.notification import domain
from services.notification.dispatch import NOTIFICATIONS, new_notification
from services.notification.settings import NotificationSettings

log = logging.getLogger(__name__)

DIGEST_SETTLE = 1.0  # seconds left to events stored just before a run's cutoff to be written
DIGEST_BATCH = 500  # digest notifications inserted at once


class Composer:
    """Takes the store and the service's settings (links are built from PARVIS_PUBLIC_URL and signed)."""

    def __init__(self, store, settings: NotificationSettings):
        self.store, self.settings = store, settings

    def unsubscribe_url(self, value: str) -> str:
        """The signed one-click link that ends a subscription (or, for a digest, the digest subscriptions)."""
        return (f"{self.settings.public_url}/notifications/unsubscribe?t="
                + domain.sign(self.settings.secret, "unsubscribe", value))

    def fan_out(self, envelope, topics: list[str], template_name: str, personalisation: dict) -> int:
        """One notification per (event, subscriber, channel), inserted in batches; duplicates are done already."""
        tpl = domain.template(template_name)
        now = utcnow()
        inserted = 0
        rendered: dict[str, dict] = {}
        email = domain.FanOutRenderer(tpl, "email", personalisation) if "email" in tpl.parts else None
        for topic in topics:
            for page in self.store.subscribers(topic):
                docs = []
                for sub in page:
                    channel = sub["channel"]
                    if channel not in tpl.parts or sub.get("digest"):  # digest: told in the day's digest
                        continue
                    if channel == "email":
                        unsubscribe_url = self.unsubscribe_url(sub["_id"])
                        parts = email(unsubscribe_url)
                    else:
                        unsubscribe_url = None
                        if channel not in rendered:
                            rendered[channel] = domain.render(tpl, channel, personalisation)
                        parts = rendered[channel]
                    doc = new_notification(
                        event_id=envelope.event_id, event_type=envelope.type, template=tpl, channel=channel,
                        recipient=sub["recipient"], address=sub.get("address") or sub["recipient"], parts=parts,
                        now=now, topic=topic, unsubscribe_url=unsubscribe_url)
                    quiet = domain.quiet_until(now, sub.get("quiet_from"), sub.get("quiet_to"))
                    if quiet is not None and channel != "in_app":  # held until the quiet hours end
                        doc["due"], doc["next_attempt_at"], doc["held_until"] = quiet.timestamp(), quiet, quiet.timestamp()
                    docs.append(doc)
                inserted += self.store.insert_notifications(docs)
        NOTIFICATIONS.labels("all", domain.CREATED).inc(inserted)
        return inserted

    def tell_organizer(self, envelope, data, published: bool, reason: str = "") -> None:
        org = self.store.organization_contact(data.organizer)
        if org is None or not org.get("contact_email"):
            log.warning("no contact for organisation %s: moderation decision not sent", data.organizer)
            return
        tpl = domain.template("event_moderated")
        parts = domain.render(tpl, "email", {"organization": org["name"], "title": data.title, "published": published,
                                             "reason": reason, "url": self.event_url(data)})
        self.store.insert_notifications([new_notification(
            event_id=envelope.event_id, event_type=envelope.type, template=tpl, channel="email",
            recipient=data.organizer, address=org["contact_email"], parts=parts, now=utcnow())])

    def event_url(self, data) -> str:
        path = getattr(data, "url", None) or f"/agenda/events/{data.id}"
        return path if path.startswith("http") else self.settings.public_url + path

    def event_personalisation(self, data) -> dict:
        return {"title": data.title, "commune": self.store.commune_name(data.commune),
                "starts_at": domain.french_datetime(data.starts_at), "url": self.event_url(data)}

    def digest_fields(self, data, personalisation: dict | None = None) -> dict:
        commune = personalisation["commune"] if personalisation else self.store.commune_name(data.commune)
        return {"topics": [f"agenda:commune:{data.commune}", f"agenda:category:{data.category}"],
                "title": data.title, "commune": commune, "starts_ts": data.starts_at.timestamp(),
                "url": self.event_url(data)}

    def send_digests(self, day: date) -> dict:
        """One notification per (recipient, channel) with digest subscriptions to the topics of the events
        stored in the day's window, listing those events; its id (`digest:<day>`, recipient, channel)
        makes it once per day whoever runs it, as often as it runs."""
        now = time.time()
        run = self.store.digest_run(day.isoformat(), now, 86400.0, domain.DIGEST_LOOKBACK.total_seconds())
        wait = float(run["cutoff"]) + DIGEST_SETTLE - time.time()
        if wait > 0:  # an event stamped just before the cutoff may still be being written
            eventlet.sleep(wait)
        items = self.store.digest_items(float(run["start"]), float(run["cutoff"]))
        created = recipients = 0
        if items:
            groups: dict[tuple[str, str], dict[str, dict]] = {}  # (recipient, channel) -> subscriptions by id
            for sub in self.store.digest_subscribers(sorted({t for i in items for t in i.get("topics") or ()})):
                if sub["channel"] in domain.DIGEST_CHANNELS:
                    groups.setdefault((sub["recipient"], sub["channel"]), {})[sub["_id"]] = sub
            tpl = domain.template(domain.DIGEST_TEMPLATE)
            event_id = domain.digest_event_id(day)
            created_at = utcnow()
            rendered: dict[tuple, object] = {}  # recipients following the same topics get the same list
            docs: list[dict] = []
            for (recipient, channel), by_id in groups.items():
                subs = list(by_id.values())
                events = domain.digest_events(items, [s["topic"] for s in subs])
                if not events:
                    continue
                recipients += 1
                key = (channel, tuple(e["id"] for e in events))
                if key not in rendered:
                    personalisation = domain.digest_personalisation(events, day)
                    rendered[key] = (domain.FanOutRenderer(tpl, channel, personalisation) if channel == "email"
                                     else domain.render(tpl, channel, personalisation))
                unsubscribe_url = None
                if channel == "email":
                    unsubscribe_url = self.unsubscribe_url(domain.digest_link_value(recipient, channel))
                    parts = rendered[key](unsubscribe_url)
                else:
                    parts = rendered[key]
                doc = new_notification(
                    event_id=event_id, event_type=None, template=tpl, channel=channel, recipient=recipient,
                    address=next((s["address"] for s in subs if s.get("address")), recipient), parts=parts,
                    now=created_at, unsubscribe_url=unsubscribe_url)
                quiet = domain.quiet_until_any(created_at, subs) if channel != "in_app" else None
                if quiet is not None:  # held until the quiet hours end, as the other messages
                    doc["due"], doc["next_attempt_at"], doc["held_until"] = quiet.timestamp(), quiet, quiet.timestamp()
                docs.append(doc)
                if len(docs) >= DIGEST_BATCH:
                    created += self.store.insert_notifications(docs)
                    docs = []
            created += self.store.insert_notifications(docs)
        NOTIFICATIONS.labels("all", domain.CREATED).inc(created)
        self.store.finish_digest_run(day.isoformat(), created, now - 2 * domain.DIGEST_LOOKBACK.total_seconds())
        return {"day": day, "events": len(items), "recipients": recipients, "created": created}
