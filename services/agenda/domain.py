"""Pure agenda rules: nothing here does I/O.

Validation of an event (sanitised Markdown, bounded recurrences, Europe/Paris wall time stored as UTC,
reference data, URLs, lengths), the moderation state machine and the event status, the normalised search
text, duplicate hints and the caller's view of an event. What the public sees of a search (filter, order,
cursors) is shared with the gateway: contracts/agenda_public.py.
"""
from __future__ import annotations

import difflib
import re
import unicodedata
from dataclasses import dataclass
from datetime import datetime, time, timedelta, timezone
from urllib.parse import urlparse

import nh3
from dateutil import rrule as dateutil_rrule
from markdown_it import MarkdownIt

from contracts.agenda import Contact, EventInput, EventPublished, EventRejected, ExternalId, Location, Organization, Slot
from contracts.agenda_public import PARIS, Reference, normalise, to_utc
from contracts.errors import BadInput, Conflict, Forbidden

MAX_RECURRENCE = timedelta(days=731)  # expanded at most 2 years ahead of the first occurrence
MAX_OCCURRENCES = 750
MAX_TITLE = 160
MAX_DESCRIPTION = 20_000
MAX_TAG = 40
PUBLIC_PATH = "/agenda/events/{id}"


def slugify(text: str) -> str:
    """'Belbèze-de-Lauragais' -> 'belbeze-de-lauragais'; stable, ASCII, for URLs and filters."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9]+", "-", ascii_text.lower()).strip("-")


def organization_changed(existing: dict | None, incoming: Organization) -> bool:
    if existing is None:
        return True
    fields = incoming.model_dump()
    return any(existing.get(k) != v for k, v in fields.items() if k != "id")


# -- time ----------------------------------------------------------------------------------------
def to_paris(value: datetime) -> datetime:
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    return value.astimezone(PARIS)


def _wall(value: datetime) -> datetime:
    """Naive Europe/Paris wall time of an input datetime."""
    return to_paris(to_utc(value)).replace(tzinfo=None)


# -- Markdown ------------------------------------------------------------------------------------
_MD = MarkdownIt("commonmark", {"html": False, "linkify": False}).enable("strikethrough")
_DANGEROUS = re.compile(r"<\s*/?\s*(script|iframe|object|embed|style|form|svg|math)\b|javascript\s*:|vbscript\s*:"
                        r"|data\s*:\s*text/html|\bon[a-z]+\s*=", re.IGNORECASE)
ALLOWED_TAGS = {"p", "br", "strong", "em", "del", "ul", "ol", "li", "a", "blockquote", "code", "pre", "h3", "h4",
                "h5", "h6", "hr"}


def render_markdown(text: str) -> str:
    """Markdown to HTML that is safe to show anywhere: raw HTML is escaped, then nh3 keeps an allow-list."""
    html = _MD.render(text)
    html = re.sub(r"<(/?)h[12]>", r"<\1h3>", html)  # the page owns its top headings
    return nh3.clean(html, tags=ALLOWED_TAGS, attributes={"a": {"href", "title"}},
                     url_schemes={"http", "https", "mailto", "tel"}, link_rel="noopener noreferrer nofollow")


# -- validation ----------------------------------------------------------------------------------
def _url(value: str | None, field: str, label: str) -> str | None:
    if value is None or not value.strip():
        return None
    value = value.strip()
    parsed = urlparse(value)
    if parsed.scheme not in ("http", "https") or not parsed.netloc or " " in value:
        raise BadInput(f"{label} : adresse web invalide (http:// ou https:// attendu).", field)
    return value


def _text(value: str | None, field: str, label: str, limit: int, required: bool = False) -> str | None:
    value = (value or "").strip()
    if required and not value:
        raise BadInput(f"{label} : obligatoire.", field)
    if len(value) > limit:
        raise BadInput(f"{label} : {limit} caractères au plus ({len(value)} reçus).", field)
    if value and _DANGEROUS.search(value):
        raise BadInput(f"{label} : le code HTML ou JavaScript n'est pas accepté.", field)
    return value or None


def all_day_end(start: datetime, end: datetime) -> datetime:
    """The exclusive end (midnight) of an all-day slot entered from `start` to `end` (wall times): the days from
    start's to end's, both included, except an end at midnight after the start, which closes the day before it
    (Saturday 00:00 to Sunday 00:00 is Saturday only, as calendars write it)."""
    last = end.date()
    if end.time() == time(0) and last > start.date():
        last -= timedelta(days=1)
    return datetime.combine(last, time(0)) + timedelta(days=1)


RRULE_PARTS = {"FREQ", "INTERVAL", "COUNT", "UNTIL", "BYDAY", "BYMONTHDAY", "BYMONTH", "BYSETPOS", "WKST"}
RRULE_FREQS = {"DAILY", "WEEKLY", "MONTHLY", "YEARLY"}  # an event does not recur every hour, minute or second


# The BY parts each frequency may use. A rule that can never match makes dateutil look for an occurrence until the
# year 9999 (seconds of CPU): these, with the checks below, leave only rules that match within a few periods.
RRULE_BY = {"DAILY": {"BYMONTH"}, "WEEKLY": {"BYDAY", "BYMONTH"},
            "MONTHLY": {"BYDAY", "BYMONTHDAY", "BYSETPOS", "BYMONTH"},
            "YEARLY": {"BYDAY", "BYMONTHDAY", "BYSETPOS", "BYMONTH"}}
MONTH_DAYS = (31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)


def _numbers(raw: str, low: int, high: int, refuse, name: str) -> list[int]:
    try:
        values = [int(v) for v in raw.split(",")]
    except ValueError:
        raise refuse(f"{name} : des nombres séparés par des virgules") from None
    if any(not low <= abs(v) <= high for v in values):
        raise refuse(f"{name} : de {low} à {high} (ou de -{high} à -{low})")
    return values


def _check_reachable(parts: dict[str, str], refuse) -> None:
    """Refuse the rules that can never match (February 30th, the 6th Monday…) or that a daily step could skip."""
    freq = parts["FREQ"]
    extra = {k for k in parts if k.startswith("BY")} - RRULE_BY[freq]
    if extra:
        raise refuse(f"{', '.join(sorted(extra))} ne va pas avec FREQ={freq} (utilisez MONTHLY ou YEARLY)")
    if freq == "DAILY" and int(parts.get("INTERVAL", "1")) > 28:
        raise refuse("une récurrence quotidienne a un intervalle de 28 jours au plus (ou utilisez WEEKLY, MONTHLY)")
    months = _numbers(parts["BYMONTH"], 1, 12, refuse, "BYMONTH") if "BYMONTH" in parts else range(1, 13)
    if any(m < 0 for m in months):
        raise refuse("BYMONTH : de 1 à 12")
    if "BYMONTHDAY" in parts:
        days = _numbers(parts["BYMONTHDAY"], 1, 31, refuse, "BYMONTHDAY")
        if not any(abs(d) <= MONTH_DAYS[m - 1] for m in months for d in days):
            raise refuse("aucun de ces jours n'existe dans ces mois (30 février…)")
    if "BYSETPOS" in parts:
        _numbers(parts["BYSETPOS"], 1, 5, refuse, "BYSETPOS")
        if "BYDAY" not in parts:
            raise refuse("BYSETPOS va avec BYDAY (le 2e mardi : BYDAY=TU;BYSETPOS=2)")


def recurrence_starts(rrule_text: str, start: datetime) -> list[datetime]:
    """The starts (wall times) of a recurrence from `start`, by an RFC 5545 RRULE that a person or a calendar
    writes: one line of known parts, at most daily, ending (COUNT or UNTIL) within two years and MAX_OCCURRENCES
    dates. Expanded within that window only: a rule that never matches (FREQ=DAILY;BYMONTH=2;BYMONTHDAY=30)
    costs two years of days, not the years to 9999 (an RRULE with `\nDTSTART:19000101` inside was accepted, and
    `FREQ=SECONDLY` took seconds of CPU)."""
    def refuse(why: str):
        return BadInput(f"Récurrence (RRULE) : {why}.", "rrule")

    if any(ch in rrule_text for ch in "\r\n") or len(rrule_text) > 300:
        raise refuse("une seule ligne attendue (FREQ=…;COUNT=… ou UNTIL=…)")
    parts: dict[str, str] = {}
    for item in rrule_text.split(";"):
        key, sep, value = item.partition("=")
        key = key.strip().upper()
        if not sep or key not in RRULE_PARTS or key in parts:
            raise refuse(f"partie inconnue ou répétée « {item.strip()} » (acceptées : {', '.join(sorted(RRULE_PARTS))})")
        parts[key] = value.strip().upper()
    if parts.get("FREQ") not in RRULE_FREQS:
        raise refuse("FREQ doit être DAILY, WEEKLY, MONTHLY ou YEARLY")
    if "COUNT" not in parts and "UNTIL" not in parts:
        raise refuse("indiquez une fin (COUNT ou UNTIL), deux ans au plus")
    if "COUNT" in parts and (not parts["COUNT"].isdigit() or not 1 <= int(parts["COUNT"]) <= MAX_OCCURRENCES):
        raise refuse(f"COUNT doit être un nombre de 1 à {MAX_OCCURRENCES}")
    if "INTERVAL" in parts and (not parts["INTERVAL"].isdigit() or not 1 <= int(parts["INTERVAL"]) <= 366):
        raise refuse("INTERVAL doit être un nombre de 1 à 366")
    _check_reachable(parts, refuse)
    try:
        rule = dateutil_rrule.rrulestr(";".join(f"{k}={v}" for k, v in parts.items()), dtstart=start,
                                       forceset=False, ignoretz=True)
    except (ValueError, TypeError) as exc:
        raise BadInput(f"Récurrence (RRULE) invalide : {exc}.", "rrule") from None
    limit = start + MAX_RECURRENCE
    if rule._until is not None and rule._until > limit:
        raise refuse("elle doit finir moins de deux ans après la première date")
    starts = rule.between(start, limit, inc=True)
    if not starts:
        raise refuse("aucune date produite")
    if rule._count is not None and len(starts) < rule._count:
        raise refuse("elle doit finir moins de deux ans après la première date")
    return starts


def expand_occurrences(slots: list[tuple[datetime, datetime]], rrule_text: str | None, all_day: bool,
                       ) -> list[tuple[datetime, datetime]]:
    """UTC (start, end) pairs. `slots` are naive Europe/Paris wall times; an RRULE repeats the first slot
    in wall time (so 19:00 stays 19:00 across daylight-saving changes), bounded to 2 years."""
    if all_day:
        slots = [(datetime.combine(s.date(), time(0)), all_day_end(s, e)) for s, e in slots]
    if not rrule_text:
        pairs = slots
    else:
        start, end = slots[0]
        duration = end - start
        starts = recurrence_starts(rrule_text, start)
        pairs = [(s, s + duration) for s in starts]
    out = []
    for s, e in pairs:
        out.append((s.replace(tzinfo=PARIS).astimezone(timezone.utc), e.replace(tzinfo=PARIS).astimezone(timezone.utc)))
    return sorted(out)


def validate_event(data: EventInput, ref: Reference, now: datetime | None = None) -> dict:
    """Checks an event and returns the fields to store; raises BadInput naming the first bad field."""
    now = now or datetime.now(timezone.utc)
    title = _text(data.title, "title", "Titre", MAX_TITLE, required=True)
    description = (data.description or "").strip()
    if len(description) > MAX_DESCRIPTION:
        raise BadInput(f"Description : {MAX_DESCRIPTION} caractères au plus ({len(description)} reçus).", "description")
    if _DANGEROUS.search(description) or re.search(r"<\s*[a-z!/]", description, re.IGNORECASE):
        raise BadInput("Description : le HTML et les scripts ne sont pas acceptés ; utilisez Markdown.", "description")
    if not data.slots:
        raise BadInput("Dates : au moins un créneau (début et fin) est obligatoire.", "slots")
    if data.rrule and len(data.slots) > 1:
        raise BadInput("Récurrence : un seul créneau avec une règle RRULE.", "rrule")
    wall = []
    for i, slot in enumerate(data.slots):
        start, end = _wall(slot.starts_at), _wall(slot.ends_at)
        if data.all_day:
            if end.date() < start.date():
                raise BadInput("Dates : la fin précède le début.", f"slots.{i}.ends_at")
        elif end <= start:
            raise BadInput("Dates : la fin doit être après le début.", f"slots.{i}.ends_at")
        if end - start > timedelta(days=366):
            raise BadInput("Dates : un créneau dure un an au plus.", f"slots.{i}.ends_at")
        if start.year < 2000 or start > _wall(now) + timedelta(days=3 * 366):
            raise BadInput("Dates : le début doit être dans les trois prochaines années.", f"slots.{i}.starts_at")
        wall.append((start, end))
    rrule_text = (data.rrule or "").strip() or None
    if rrule_text and rrule_text.upper().startswith("RRULE:"):
        rrule_text = rrule_text[6:]
    occurrences = expand_occurrences(sorted(wall), rrule_text, data.all_day)
    loc = data.location
    if loc.commune not in ref.communes:
        raise BadInput(f"Commune inconnue : « {loc.commune} » n'est pas une commune du Sicoval.", "location.commune")
    if data.category not in ref.categories:
        raise BadInput(f"Catégorie inconnue : « {data.category} ».", "category")
    if data.theme is not None and data.theme not in ref.themes:
        raise BadInput(f"Thème inconnu : « {data.theme} ».", "theme")
    if (loc.lat is None) != (loc.lon is None):
        raise BadInput("Position : latitude et longitude vont ensemble.", "location.lat")
    place = _text(loc.place, "location.place", "Lieu", 200)
    address = _text(loc.address, "location.address", "Adresse", 300)
    tags = []
    for i, tag in enumerate(data.tags):
        clean = _text(tag, f"tags.{i}", "Mot-clé", MAX_TAG, required=True)
        if clean.lower() not in (t.lower() for t in tags):
            tags.append(clean)
    online_url = _url(data.online_url, "online_url", "Lien de participation en ligne")
    if data.attendance_mode in ("online", "mixed") and not online_url:
        raise BadInput("Participation en ligne : le lien est obligatoire.", "online_url")
    contact = None
    if data.contact is not None:
        contact = {
            "name": _text(data.contact.name, "contact.name", "Contact", 200),
            "email": (data.contact.email or "").strip() or None,
            "phone": _text(data.contact.phone, "contact.phone", "Téléphone", 40),
        }
        if contact["email"] and not re.fullmatch(r"[^@\s<>]+@[^@\s<>]+\.[^@\s<>]+", contact["email"]):
            raise BadInput("Courriel de contact invalide.", "contact.email")
    price = _text(data.price, "price", "Tarif", 200)
    if not data.free and not price:
        raise BadInput("Tarif : indiquez le prix d'un événement payant.", "price")
    publish_at = to_utc(data.publish_at) if data.publish_at else None
    return {
        "title": title,
        "description": description,
        "description_html": render_markdown(description),
        "slots": [{"starts_at": s, "ends_at": e} for s, e in
                  (occurrences[:1] if rrule_text else occurrences)],
        "rrule": rrule_text,
        "all_day": data.all_day,
        "occurrences": [{"starts_at": s, "ends_at": e} for s, e in occurrences],
        "starts_at": occurrences[0][0],
        "ends_at": occurrences[-1][1],
        "location": {"place": place or "", "address": address or "", "commune": loc.commune,
                     "lat": loc.lat, "lon": loc.lon},
        "commune": loc.commune,
        "commune_name": ref.communes[loc.commune],
        "category": data.category,
        "category_name": ref.categories[data.category],
        "theme": data.theme,
        "tags": tags,
        "audience": _text(data.audience, "audience", "Public", 200),
        "free": data.free,
        "price": None if data.free else price,
        "registration_url": _url(data.registration_url, "registration_url", "Lien d'inscription"),
        "accessibility": sorted(set(data.accessibility)),
        "attendance_mode": data.attendance_mode,
        "online_url": online_url,
        "image_url": _url(data.image_url, "image_url", "Image"),
        "contact": contact,
        "external_ids": [x.model_dump() for x in data.external_ids],
        "publish_at": publish_at,
        "search": search_text(title, description, place, address, ref.communes[loc.commune], tags),
    }


def search_text(title, description, place, address, commune_name, tags) -> str:
    """The normalised field text search matches (no collation or text index needed)."""
    return " ".join(normalise(x or "") for x in (title, " ".join(tags or []), place, address, commune_name,
                                                 description[:2000] if description else ""))


# -- moderation state machine ------------------------------------------------------------------
# (state, action) -> new state, and who may do it. "Organizer" means the event's own organisation.
TRANSITIONS: dict[tuple[str, str], tuple[str, frozenset[str]]] = {
    ("draft", "submit"): ("submitted", frozenset({"organizer", "agent"})),
    ("rejected", "submit"): ("submitted", frozenset({"organizer", "agent"})),
    ("submitted", "approve"): ("published", frozenset({"agent"})),
    ("draft", "approve"): ("published", frozenset({"agent"})),  # agents may publish directly
    ("submitted", "reject"): ("rejected", frozenset({"agent"})),
    ("draft", "withdraw"): ("withdrawn", frozenset({"organizer", "agent"})),
    ("submitted", "withdraw"): ("withdrawn", frozenset({"organizer", "agent"})),
    ("published", "withdraw"): ("withdrawn", frozenset({"organizer", "agent"})),
    ("rejected", "withdraw"): ("withdrawn", frozenset({"organizer", "agent"})),
}


def transition(state: str, action: str, role: str) -> str:
    """The state after `action`, or Forbidden/Conflict (with a French message)."""
    entry = TRANSITIONS.get((state, action))
    if entry is None:
        raise Conflict(f"Action « {action} » impossible : l'événement est « {STATE_LABELS.get(state, state)} ».",
                       "moderation_state")
    new_state, roles = entry
    if role not in roles:
        raise Forbidden("Vous n'avez pas le droit de faire cette action.")
    return new_state


STATE_LABELS = {"draft": "brouillon", "submitted": "soumis", "published": "publié", "rejected": "refusé",
                "withdrawn": "retiré"}


def check_status_change(moderation_state: str, current: str, new: str, has_new_slots: bool,
                        attendance_mode: str, online_url: str | None) -> None:
    if moderation_state == "withdrawn":
        raise Conflict("Un événement retiré ne change plus de statut.", "status")
    if current == "cancelled" and new != "cancelled":
        raise Conflict("Un événement annulé ne peut pas être reprogrammé : créez-en un nouveau.", "status")
    if new == "rescheduled" and not has_new_slots:
        raise BadInput("Reprogrammé : indiquez les nouvelles dates.", "slots")
    if new == "moved_online" and not online_url:
        raise BadInput("En ligne : l'événement doit avoir un lien de participation (online_url).", "online_url")


def aware(value):
    """A stored datetime as UTC-aware (documents written by older versions may hold naive ones)."""
    if isinstance(value, datetime) and value.tzinfo is None:
        return value.replace(tzinfo=timezone.utc)
    return value


@dataclass(frozen=True)
class Decision:
    """What an agent's moderation decision writes: the fields set (and removed), the events announcing it
    (contract, the event's document, extra fields), and the transition (action, resulting state)."""

    sets: dict
    announce: list[tuple[type, dict, dict]]
    outcome: tuple[str, str]
    unset: tuple[str, ...] = ()


def moderation_decision(doc: dict, decision: str, reason: str | None, now: datetime, actor: str | None,
                        version: int | None = None) -> Decision:
    """Approve or reject a submitted event, or an organiser's revision of a published one (`queue: revision`).
    A refusal needs its reason, which the organiser receives. An approved event is public at once, or at its
    publishAt: then it is announced when it becomes public (`announce_pending`), so that subscribers never hear
    of an event they cannot see yet."""
    reason = (reason or "").strip()
    if version is not None and version != int(doc.get("version") or 0):
        raise Conflict("L'événement a changé depuis que vous l'avez relu : relisez-le et décidez à nouveau.", "version")
    if decision == "reject" and not reason:
        raise BadInput("Refus : indiquez la raison, l'organisateur la recevra.", "reason")
    decided = {"decided_at": now, "decided_by": actor, "queue": "none"}
    url = PUBLIC_PATH.format(id=doc["_id"])
    if doc.get("queue") == "revision":
        pending = doc.get("pending") or {}
        merged = {**doc, **pending}
        unset = ("pending", "pending_submitted_at")
        if decision == "approve":
            return Decision({**pending, **decided, "revision_rejection_reason": None},
                            [(EventPublished, merged, {"url": url, "revision": True})],
                            ("approve_revision", "published"), unset)
        return Decision({**decided, "revision_rejection_reason": reason},
                        [(EventRejected, merged, {"reason": reason, "revision": True})],
                        ("reject_revision", "published"), unset)
    new_state = transition(doc["moderation_state"], decision, "agent")
    decided_doc = {**doc, "moderation_state": new_state}
    if decision == "reject":
        return Decision({"moderation_state": new_state, **decided, "rejection_reason": reason},
                        [(EventRejected, decided_doc, {"reason": reason})], ("reject", new_state))
    publish_at = aware(doc.get("publish_at"))
    visible_from = max(now, publish_at) if publish_at else now
    sets = {"moderation_state": new_state, "visible_from": visible_from, **decided, "rejection_reason": None}
    if visible_from > now:
        return Decision({**sets, "announce_pending": True}, [], ("approve", new_state))
    return Decision(sets, [(EventPublished, decided_doc, {"url": url})], ("approve", new_state))


def may_touch(role: str, caller_org: str | None, organizer: str) -> bool:
    """Writes: agents on everything, organisers on their own organisation's events only."""
    return role == "agent" or (role == "organizer" and caller_org is not None and caller_org == organizer)


def visible_to_public(doc: dict, now: datetime) -> bool:
    publish_at = doc.get("publish_at")
    return doc.get("moderation_state") == "published" and (publish_at is None or publish_at <= now)


CHANGE_FIELDS = ("title", "description", "slots", "rrule", "all_day", "location", "category", "theme", "tags",
                 "audience", "free", "price", "registration_url", "accessibility", "attendance_mode", "online_url",
                 "image_url", "contact", "external_ids", "publish_at")


def changed_fields(old: dict, new: dict) -> list[str]:
    return [f for f in CHANGE_FIELDS if old.get(f) != new.get(f)]


# -- duplicates ----------------------------------------------------------------------------------
def title_similarity(a: str, b: str) -> float:
    na, nb = normalise(a), normalise(b)
    if not na or not nb:
        return 0.0
    ratio = difflib.SequenceMatcher(None, na, nb).ratio()
    ta, tb = set(na.split()), set(nb.split())
    jaccard = len(ta & tb) / len(ta | tb)
    return max(ratio, jaccard)


def likely_duplicates(candidate: dict, others: list[dict], threshold: float = 0.6) -> list[dict]:
    """Events in the same commune whose time overlaps and whose title looks alike."""
    out = []
    for other in others:
        if other["_id"] == candidate["_id"] or other.get("commune") != candidate.get("commune"):
            continue
        if not (other["starts_at"] < candidate["ends_at"] and candidate["starts_at"] < other["ends_at"]):
            continue
        if title_similarity(candidate["title"], other["title"]) >= threshold:
            out.append({"id": other["_id"], "title": other["title"], "starts_at": other["starts_at"],
                        "commune": other["commune"]})
    return out


def event_view(doc: dict) -> dict:
    location = doc.get("location") or {"commune": doc["commune"]}
    return {
        "id": doc["_id"], "title": doc["title"], "description": doc.get("description", ""),
        "description_html": doc.get("description_html", ""), "slots": doc.get("slots") or [],
        "rrule": doc.get("rrule"), "all_day": bool(doc.get("all_day")), "occurrences": doc.get("occurrences") or [],
        "starts_at": doc["starts_at"], "ends_at": doc["ends_at"], "location": location,
        "commune_name": doc.get("commune_name", doc["commune"]), "category": doc["category"],
        "category_name": doc.get("category_name", doc["category"]), "theme": doc.get("theme"),
        "tags": doc.get("tags") or [], "audience": doc.get("audience"), "free": bool(doc.get("free", True)),
        "price": doc.get("price"), "registration_url": doc.get("registration_url"),
        "accessibility": doc.get("accessibility") or [], "attendance_mode": doc.get("attendance_mode", "offline"),
        "online_url": doc.get("online_url"), "image_url": doc.get("image_url"), "contact": doc.get("contact"),
        "external_ids": doc.get("external_ids") or [], "publish_at": doc.get("publish_at"),
        "organizer": doc["organizer"], "organizer_name": doc.get("organizer_name", doc["organizer"]),
        "moderation_state": doc["moderation_state"], "status": doc.get("status", "scheduled"),
        "rejection_reason": doc.get("rejection_reason") or doc.get("revision_rejection_reason"),
        "status_reason": doc.get("status_reason"), "removed": doc["moderation_state"] == "withdrawn",
        "created_at": doc["created_at"], "updated_at": doc["updated_at"], "submitted_at": doc.get("submitted_at"),
        "decided_at": doc.get("decided_at"), "url": PUBLIC_PATH.format(id=doc["_id"]),
        "possible_duplicates": doc.get("possible_duplicates") or [],
        "version": int(doc.get("version") or 0),
    }


# What the public never sees of an event: moderation notes, other organisations' titles (duplicate hints), the
# internal version. A tombstone (a withdrawn event, for delta sync) says which event went, and little else.
PRIVATE_FIELDS = ("rejection_reason", "possible_duplicates", "submitted_at", "decided_at", "version")
TOMBSTONE_FIELDS = ("id", "starts_at", "ends_at", "slots", "occurrences", "location", "commune_name",
                    "category", "category_name", "organizer", "organizer_name", "moderation_state", "status",
                    "removed", "created_at", "updated_at", "url", "all_day")


def public_view(doc: dict) -> dict:
    """The public's view of a once-public event (the public feed, the public's searches and pages)."""
    view = event_view(doc)
    for field in PRIVATE_FIELDS:
        view.pop(field, None)
    if view["removed"]:
        view = {k: v for k, v in view.items() if k in TOMBSTONE_FIELDS}
        view["title"] = view["description"] = view["description_html"] = ""
        view["location"] = {"commune": view["location"]["commune"], "place": "", "address": ""}
    return view


def event_input(doc: dict) -> EventInput:
    """The stored event as input again (to re-validate it with new slots)."""
    return EventInput(
        title=doc["title"], description=doc.get("description", ""),
        slots=[Slot(starts_at=s["starts_at"], ends_at=s["ends_at"]) for s in doc.get("slots") or []],
        rrule=doc.get("rrule"), all_day=bool(doc.get("all_day")), location=Location(**doc["location"]),
        category=doc["category"], theme=doc.get("theme"), tags=doc.get("tags") or [], audience=doc.get("audience"),
        free=bool(doc.get("free", True)), price=doc.get("price"), registration_url=doc.get("registration_url"),
        accessibility=doc.get("accessibility") or [], attendance_mode=doc.get("attendance_mode", "offline"),
        online_url=doc.get("online_url"), image_url=doc.get("image_url"),
        contact=Contact(**doc["contact"]) if doc.get("contact") else None,
        external_ids=[ExternalId(**x) for x in doc.get("external_ids") or []], publish_at=None,
    )
