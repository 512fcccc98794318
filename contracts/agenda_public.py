"""The public agenda's search rules, shared on purpose by the agenda service (its snapshot) and the gateway (its
copy of the public feed): which events the public sees, the `events` filter as a predicate, the order, and the
keyset cursors. One copy of these rules, so that both answer a public query the same way; pure functions over
the documents of the public feed (the fields `agenda.public_feed` sends), no I/O.
"""
from __future__ import annotations

import base64
import bisect
import re
import unicodedata
from dataclasses import dataclass
from datetime import datetime, timezone
from zoneinfo import ZoneInfo

from contracts.agenda import EventFilter
from contracts.errors import BadInput

PARIS = ZoneInfo("Europe/Paris")

# Event status, the second axis (OpenAgenda), mapped to schema.org: the GraphQL `schemaOrgStatus` and JSON-LD.
SCHEMA_ORG_STATUS = {
    "scheduled": "https://schema.org/EventScheduled",
    "rescheduled": "https://schema.org/EventRescheduled",
    "moved_online": "https://schema.org/EventMovedOnline",
    "postponed": "https://schema.org/EventPostponed",
    "full": "https://schema.org/EventScheduled",  # schema.org has no "full": the offer is SoldOut
    "cancelled": "https://schema.org/EventCancelled",
}
SCHEMA_ORG_ATTENDANCE = {
    "offline": "https://schema.org/OfflineEventAttendanceMode",
    "online": "https://schema.org/OnlineEventAttendanceMode",
    "mixed": "https://schema.org/MixedEventAttendanceMode",
}


def to_utc(value: datetime) -> datetime:
    """A naive datetime is Europe/Paris wall time; an aware one is converted. Result: aware UTC."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=PARIS)
    return value.astimezone(timezone.utc)


def normalise(text: str) -> str:
    """Accent- and case-insensitive search form: 'Fête  de LA musique' -> 'fete de la musique'."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode().lower()
    return " ".join(re.sub(r"[^a-z0-9]+", " ", ascii_text).split())


def text_terms(text: str | None) -> list[str]:
    return [t for t in normalise(text or "").split() if t][:8]


@dataclass(frozen=True)
class Reference:
    """The agenda's reference data: slug -> name of the communes, the categories and the themes."""

    communes: dict[str, str]
    categories: dict[str, str]
    themes: dict[str, str]


REFERENCE_WORDS = {  # (what, field, hint) of each kind, for messages a person can act on
    "communes": ("Commune inconnue", "communes", "une des communes du Sicoval, par son nom ou son identifiant "
                 "(« Labège » ou « labege »)"),
    "categories": ("Catégorie inconnue", "categories", "voir la liste des catégories (`categories`)"),
    "themes": ("Thème inconnu", "themes", "voir la liste des thèmes (`themes`)"),
}


def resolve(values, known: dict[str, str], kind: str) -> list[str]:
    """The slugs of values a person typed (a slug, or a name with or without accents and capitals); an unknown
    one is refused by name, never answered with an empty result."""
    out: list[str] = []
    by_form: dict[str, str] | None = None  # only when a value is not a slug (the agenda page sends slugs)
    for value in values:
        slug = value if value in known else None
        if slug is None:
            if by_form is None:
                by_form = {normalise(slug): slug for slug in known}
                by_form.update({normalise(name): slug for slug, name in known.items()})
            slug = by_form.get(normalise(value))
        if slug is None:
            what, field, hint = REFERENCE_WORDS[kind]
            raise BadInput(f"{what} : « {value} » ({hint}).", field)
        if slug not in out:
            out.append(slug)
    return out


def resolve_filter(f: EventFilter, ref: Reference) -> EventFilter:
    """The filter with its communes, categories and themes as slugs, each checked against the reference data."""
    return f.model_copy(update={kind: resolve(getattr(f, kind), getattr(ref, kind), kind)
                                for kind in REFERENCE_WORDS if getattr(f, kind)})


def compile_filter(f: EventFilter, now: datetime):
    """The public's view of a search as a predicate on a document of the public feed; the filter's values are
    prepared once, not per document. The public sees published events whose publication time has come
    (`visible_from`); `include_removed` adds the tombstones of once-public events, for delta sync."""
    states = ("published", "withdrawn") if f.include_removed else ("published",)
    communes, categories, themes = set(f.communes), set(f.categories), set(f.themes)
    accessibility = set(f.accessibility)
    price_kind = None if f.free is None else ("free" if f.free else "paid")
    after = to_utc(f.starts_after) if f.starts_after else None
    before = to_utc(f.starts_before) if f.starts_before else None
    updated_since = to_utc(f.updated_since) if f.updated_since else None
    terms = text_terms(f.text)

    def matches(doc: dict) -> bool:
        visible_from = doc.get("visible_from")
        if doc.get("moderation_state") not in states or visible_from is None or visible_from > now:
            return False
        if (communes and doc.get("commune") not in communes) or (categories and doc.get("category") not in categories):
            return False
        if (themes and doc.get("theme") not in themes) or (f.organizer and doc.get("organizer") != f.organizer):
            return False
        if accessibility and not accessibility <= set(doc.get("accessibility") or ()):
            return False
        if price_kind and doc.get("price_kind") != price_kind:
            return False
        if updated_since and not doc["updated_at"] > updated_since:
            return False
        if after or before:
            if (after and doc["ends_at"] <= after) or (before and doc["starts_at"] >= before):
                return False  # outside the event's whole span: no occurrence can match
            occurrences = doc.get("occurrences") or ()
            if len(occurrences) == 1:  # most events: one occurrence, no generator
                o = occurrences[0]
                if (after and o["ends_at"] <= after) or (before and o["starts_at"] >= before):
                    return False
            elif not any((after is None or o["ends_at"] > after) and (before is None or o["starts_at"] < before)
                         for o in occurrences):
                return False
        if terms:
            search = doc.get("search") or ""
            return all(t in search for t in terms)
        return True

    return matches


def sort_field(by_update: bool) -> str:
    return "updated_at" if by_update else "starts_at"


def search(docs, f: EventFilter, now: datetime) -> list[dict]:
    """The documents the public sees that match, by start (by update time with `updated_since`), then id."""
    matches = compile_filter(f, now)
    field = sort_field(bool(f.updated_since))
    return sorted((d for d in docs if matches(d)), key=lambda d: (d[field], d["_id"]))


# -- Relay cursors -------------------------------------------------------------------------------
def encode_cursor(offset: int) -> str:
    return base64.urlsafe_b64encode(f"o:{offset}".encode()).decode()


def encode_key_cursor(key: datetime, event_id: str) -> str:
    return base64.urlsafe_b64encode(f"k:{key.isoformat()}|{event_id}".encode()).decode()


def parse_cursor(cursor: str | None) -> tuple[str, object]:
    """("o", offset) for an offset cursor (agents' and organisers' lists), ("k", (key, id)) for a keyset
    cursor (public searches: the sort key and the id of the last item seen)."""
    if not cursor:
        return "o", 0
    try:
        kind, _, value = base64.urlsafe_b64decode(cursor.encode()).decode().partition(":")
        if kind == "o":
            offset = int(value)
            if offset < 0:
                raise ValueError
            return "o", offset
        if kind == "k":
            key, _, event_id = value.partition("|")
            moment = datetime.fromisoformat(key)
            if not event_id or moment.tzinfo is None:
                raise ValueError
            return "k", (moment, event_id)
        raise ValueError
    except (ValueError, UnicodeDecodeError):
        raise BadInput("Curseur invalide.", "after") from None


def keyset_page(found: list[dict], first: int, after: str | None, by_update: bool) -> tuple[list[dict], list[str], bool]:
    """A page of search results sorted by (key, _id), after a cursor: (items, their cursors, has_next).

    The cursors are keyset cursors — the sort key and the id of the item — so that an event changed or
    removed between two requests neither shifts the next page nor makes it skip one: what partners'
    delta sync (`updatedSince`, sorted by update) needs. Offset cursors are still read."""
    field = sort_field(by_update)
    kind, value = parse_cursor(after)
    if kind == "o":
        start = value
    else:
        start = bisect.bisect_right(found, value, key=lambda d: (d[field], d["_id"]))
    page = found[start:start + first]
    return page, [encode_key_cursor(d[field], d["_id"]) for d in page], start + len(page) < len(found)
