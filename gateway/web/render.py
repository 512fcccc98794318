"""Templates (Jinja2, autoescaped) and how a person in France reads dates, times and amounts.

« samedi 6 mars 2027, 10 h – 12 h » (Europe/Paris), « 12,50 € ». The GraphQL answers carry instants as ISO 8601
text (UTC); they are read here, at the edge, and nowhere before.
"""
from __future__ import annotations

from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from jinja2 import Environment, FileSystemLoader, select_autoescape
from markupsafe import Markup

from core import french

PARIS = ZoneInfo("Europe/Paris")
TEMPLATES = Path(__file__).resolve().parent / "templates"
MONTHS = ["janvier", "février", "mars", "avril", "mai", "juin", "juillet", "août", "septembre", "octobre",
          "novembre", "décembre"]
DAYS = ["lundi", "mardi", "mercredi", "jeudi", "vendredi", "samedi", "dimanche"]


def instant(value) -> datetime | None:
    """A GraphQL DateTime (ISO text, or a datetime) in Paris time."""
    if value is None or value == "":
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if value.tzinfo is None:
        return value.replace(tzinfo=PARIS)
    return value.astimezone(PARIS)


def day(value) -> str:
    """« samedi 6 mars 2027 »"""
    d = instant(value) if not isinstance(value, date) or isinstance(value, datetime) else value
    if d is None:
        return ""
    return f"{DAYS[d.weekday()]} {'1er' if d.day == 1 else d.day} {MONTHS[d.month - 1]} {d.year}"


def hour(value) -> str:
    """« 10 h », « 10 h 30 »"""
    d = instant(value)
    if d is None:
        return ""
    return f"{d.hour} h" if d.minute == 0 else f"{d.hour} h {d.minute:02d}"


def when(value) -> str:
    """« samedi 6 mars 2027 à 10 h 30 »"""
    return f"{day(value)} à {hour(value)}" if value else ""


def span(start, end, all_day: bool = False) -> str:
    """« samedi 6 mars 2027, 10 h – 12 h »; over several days « du … au … »."""
    s, e = instant(start), instant(end)
    if s is None:
        return ""
    if e is None:
        return f"{day(s)}, {hour(s)}"
    if all_day:
        last = e - timedelta(days=1) if (e.hour, e.minute) == (0, 0) and e > s else e
        return day(s) if last.date() <= s.date() else f"du {day(s)} au {day(last)}"
    if s.date() == e.date():
        return f"{day(s)}, {hour(s)} – {hour(e)}"
    return f"du {day(s)}, {hour(s)} au {day(e)}, {hour(e)}"


def short_date(value) -> str:
    """« 06/03/2027 à 10:30 », for tables."""
    d = instant(value)
    return f"{d:%d/%m/%Y à %H:%M}" if d else ""


def amount(cents: int | None) -> str:
    """« 1 234,50 € » (non-breaking spaces)."""
    return "" if cents is None else french.euros(cents)


def number(value, decimals: int = 0) -> str:
    if value is None:
        return "–"
    text = f"{value:,.{decimals}f}".replace(",", "\u202f").replace(".", ",")
    return text


def capital(text: str) -> str:
    return text[:1].upper() + text[1:] if text else text


ENV = Environment(loader=FileSystemLoader(str(TEMPLATES)), autoescape=select_autoescape(default=True),
                  trim_blocks=True, lstrip_blocks=True, auto_reload=False)
def options(rows: list[dict], key: str = "slug", label: str = "name") -> list[tuple[str, str]]:
    """Rows of reference data as a select's (value, text) pairs."""
    return [(r[key], r[label]) for r in rows]


ENV.filters.update(pairs=lambda values: [(v, v) for v in values], options=options, day=day, hour=hour, when=when, short_date=short_date, amount=amount, number=number,
                   capital=capital)
ROLE_LABELS = {"public": "Visiteur", "citizen": "Habitant", "organizer": "Organisateur", "agent": "Agent",
               "operator": "Opérateur"}
ENV.globals.update(span=span, role_label=lambda role: ROLE_LABELS.get(role, role))


ITEMS_KEPT = 20_000  # rendered events kept (a few hundred bytes each)
_items: dict[tuple, str] = {}


def event_items(events: list[dict], heading: str = "h3") -> Markup:
    """The `<li>` of each event of a list. A list of 50 events was half of the agenda page's time: each item is
    rendered once for what it shows (the key holds every value the item reads, so a changed event is rendered
    anew, never shown stale) and kept, up to ITEMS_KEPT."""
    macro = ENV.get_template("events.html").module.event_item
    out = []
    for ev in events:
        location, commune = ev.get("location") or {}, ev.get("commune") or {}
        key = (heading, ev.get("url"), ev.get("title"), ev.get("startsAt"), ev.get("endsAt"), ev.get("allDay"),
               location.get("place"), commune.get("name"), ev.get("categoryName"), ev.get("free"), ev.get("price"),
               ev.get("status"), bool(ev.get("accessibility")))
        html = _items.get(key)
        if html is None:
            if len(_items) >= ITEMS_KEPT:
                _items.clear()
            html = _items[key] = str(macro(ev, heading))
        out.append(html)
    return Markup("".join(out))


ENV.globals["event_items"] = event_items


def render(template_name: str, /, **values) -> str:
    return ENV.get_template(template_name).render(**values)
