"""A consultation's public meetings in the agenda: when the consultation service announces a consultation scheduled,
each of its meetings becomes a published event of the authority ("Réunion publique : …", category réunion publique,
linking to the consultation), once (its id is derived from the consultation's and the meeting's number). The
authority's own meetings need no moderation: they are published as an agent's approved event would be."""
from __future__ import annotations

import logging
from datetime import datetime

from contracts import agenda as c
from contracts.errors import BadInput
from services.agenda import domain

log = logging.getLogger(__name__)

ORGANIZER = "org-sicoval"
CATEGORY = "reunion-publique"
SOURCE = "parvis-consultation"


def publish_meetings(store, build, data, public_url: str, now: datetime) -> int:
    """Publish the meetings of a scheduled consultation not in the agenda yet; returns how many."""
    org = store.get_organization(ORGANIZER)
    if org is None:
        log.warning("no organisation %s: the meetings of %s are not in the agenda", ORGANIZER, data.id)
        return 0
    ref = store.reference()
    published = 0
    for n, meeting in enumerate(data.meetings, start=1):
        event_id = f"evt-{data.id}-{n}"
        if store.get_event(event_id) is not None:
            continue
        event = c.EventInput(
            title=f"Réunion publique : {meeting.title}"[:160],
            description=f"Dans le cadre de « {data.title} ». Pour participer : {public_url}{data.url}",
            slots=[{"starts_at": domain.to_paris(meeting.starts_at).replace(tzinfo=None),
                    "ends_at": domain.to_paris(meeting.ends_at).replace(tzinfo=None)}],
            location={"commune": meeting.commune, "place": meeting.place}, category=CATEGORY, free=True,
            external_ids=[{"source": SOURCE, "id": f"{data.id}:{n}"}])
        try:
            fields = domain.validate_event(event, ref, now)
        except BadInput as exc:  # reference data missing (a commune, the category): said, not retried forever
            log.warning("meeting %s of %s not in the agenda: %s", n, data.id, exc)
            continue
        doc = {"_id": event_id, **fields, "organizer": org["_id"], "organizer_name": org["name"],
               "moderation_state": "published", "status": "scheduled", "queue": "none", "price_kind": "free",
               "created_at": now, "updated_at": now, "visible_from": now, "decided_at": now,
               "decided_by": "consultation", "version": 1}
        envelope = build(c.EventPublished.event_type, {
            "id": event_id, "title": doc["title"], "organizer": doc["organizer"], "commune": doc["commune"],
            "category": doc["category"], "starts_at": doc["starts_at"], "ends_at": doc["ends_at"],
            "moderation_state": "published", "status": "scheduled", "actor": None,
            "url": domain.PUBLIC_PATH.format(id=event_id)})
        store.insert_event(doc, [envelope])
        published += 1
    return published
