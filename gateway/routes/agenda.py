"""Agenda exports and the embeddable widget, over HTTP from the gateway (data through RPC to the agenda service).

- `/agenda.ics`: RFC 5545 (icalendar): stable UIDs `<event id>[-<slot>]@parvis.sicoval.fr`, VTIMEZONE
  Europe/Paris, `STATUS:CANCELLED` for cancelled events, recurrences as RRULE.
- `/agenda.csv`: open data under the Licence Ouverte 2.0 (Etalab), UTF-8, one line per event. Columns:
  id, titre, description (Markdown), debut, fin (ISO 8601, Europe/Paris), journee_entiere, recurrence (RRULE),
  commune_insee_slug, commune, lieu, adresse, latitude, longitude, categorie, theme, mots_cles (separated by
  "|"), public, gratuit, tarif, inscription, accessibilite ("|"), mode_participation, lien_en_ligne, image,
  organisateur_id, organisateur, statut, url, mis_a_jour.
- `/agenda.jsonld`: schema.org `Event` items (eventStatus, eventAttendanceMode, location, offers, organizer).
- `/agenda/print?commune=…`: a printable A4 page for notice boards.
- `/agenda/events/<id>`: the public page of one event (the `url` every event carries: in emails, the widget,
  JSON-LD), in French, with its schema.org JSON-LD and a link to add it to a calendar (`/agenda/events/<id>.ics`).
- `/embed/agenda.js` (+ `/embed/graphql`, the read-only GraphQL endpoint the widget reads across origins).

Every export takes the `events` filters as query parameters: commune (repeatable or comma-separated),
category, theme, from, to, text, accessibility, free, updated_since, include_removed, limit (≤ 2000).
"""
from __future__ import annotations

import csv
import html
import io
import json
import re
from html.parser import HTMLParser
from datetime import datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

from icalendar import Calendar, Event as IcsEvent, vRecur
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, JSONResponse, Response
from starlette.routing import Route


from contracts.agenda_public import SCHEMA_ORG_ATTENDANCE, SCHEMA_ORG_STATUS
from contracts.errors import BadInput, NotFound
from gateway.errors import route_error
from contracts.platform import Caller
from gateway.schema import MAX_DOCUMENT_BYTES, MAX_TOKENS

PARIS = ZoneInfo("Europe/Paris")
STATIC = Path(__file__).resolve().parent.parent / "static" / "agenda"
UID_DOMAIN = "parvis.sicoval.fr"
MAX_EXPORT = 2000
CSV_COLUMNS = ["id", "titre", "description", "debut", "fin", "journee_entiere", "recurrence", "commune_slug",
               "commune", "lieu", "adresse", "latitude", "longitude", "categorie", "theme", "mots_cles", "public",
               "gratuit", "tarif", "inscription", "accessibilite", "mode_participation", "lien_en_ligne", "image",
               "organisateur_id", "organisateur", "statut", "url", "mis_a_jour"]
MONTHS = ["janvier", "février", "mars", "avril", "mai", "juin", "juillet", "août", "septembre", "octobre",
          "novembre", "décembre"]
DAYS = ["lundi", "mardi", "mercredi", "jeudi", "vendredi", "samedi", "dimanche"]


def _paris(value: datetime) -> datetime:
    return value.astimezone(PARIS)


class _Text(HTMLParser):
    """The text of the sanitised description HTML (the agenda's render_markdown): paragraphs and list items on
    lines of their own, a link's address after its text."""

    BLOCKS = {"p", "br", "li", "h3", "h4", "h5", "h6", "blockquote", "pre", "hr", "ul", "ol"}

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.href: str | None = None

    def handle_starttag(self, tag, attrs):
        if tag == "li":
            self.parts.append("\n- ")
        elif tag in self.BLOCKS:
            self.parts.append("\n")
        if tag == "a":
            self.href = dict(attrs).get("href")

    def handle_endtag(self, tag):
        if tag == "a" and self.href:
            self.parts.append(f" ({self.href})")
            self.href = None
        if tag in self.BLOCKS and tag != "li":
            self.parts.append("\n")

    def handle_data(self, data):
        self.parts.append(data)


def plain_text(description_html: str) -> str:
    """A description as plain text, for what is not HTML (calendars, CSV, JSON-LD, a page's meta description):
    Markdown's `**` and `[text](url)` written as a person reads them."""
    parser = _Text()
    parser.feed(description_html or "")
    lines = [" ".join(line.split()) for line in "".join(parser.parts).splitlines()]
    text = re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()
    return re.sub(r"\n\n(?=- )", "\n", text)  # a list's items on consecutive lines


def _utc_text(value: datetime) -> str:
    """ISO 8601 in UTC with a Z, as the API writes instants."""
    return value.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")


QUERY_PARAMS = {"starts_after": "from", "starts_before": "to", "communes": "commune", "categories": "category",
                "themes": "theme"}  # the contract's field -> the query string's parameter


def filters_from_query(request: Request) -> tuple[dict, int]:
    q = request.query_params

    def many(name: str) -> list[str]:
        return [v for raw in q.getlist(name) for v in raw.split(",") if v.strip()]

    f: dict = {}
    for key, name in (("communes", "commune"), ("categories", "category"), ("themes", "theme"),
                      ("accessibility", "accessibility")):
        if many(name):
            f[key] = many(name)
    for key, name in (("starts_after", "from"), ("starts_before", "to"), ("updated_since", "updated_since"),
                      ("text", "text")):
        if q.get(name):
            f[key] = q[name]
    if q.get("free") in ("true", "false", "1", "0"):
        f["free"] = q["free"] in ("true", "1")
    if q.get("include_removed") in ("true", "1"):
        f["include_removed"] = True
    try:
        limit = min(MAX_EXPORT, max(1, int(q.get("limit", MAX_EXPORT))))
    except ValueError:
        raise BadInput("limit : nombre entier attendu.", "limit") from None
    return f, limit


def routes(gateway) -> list:
    base = gateway.settings.public_url  # every link the exports and pages give, whatever the request's Host
    async def fetch(request: Request, defaults: dict | None = None) -> list[dict]:
        """Public events matching the query's filters (the public's view, always): from the gateway's copy of
        the public agenda when it is ready, else through RPC."""
        f, limit = filters_from_query(request)
        try:
            return (await gateway.public_agenda.page({**(defaults or {}), **f}, limit, most=MAX_EXPORT)).views
        except BadInput as exc:  # named as the query string names it (`from`, not the contract's starts_after)
            field = (exc.field or "").split(".")[-1]
            param = QUERY_PARAMS.get(field, field)
            message = exc.message.removeprefix(f"{exc.field} : ").removeprefix(f"{exc.field}: ")
            raise BadInput(f"{param} : {message}" if param and not message.startswith(("Commune", "Catégorie",
                                                                                        "Thème")) else message,
                           param or None) from None

    def guarded(handler):
        async def endpoint(request: Request) -> Response:
            try:
                return await handler(request)
            except Exception as exc:  # noqa: BLE001 - a refusal says what to do; a fault is logged and masked
                status, code, message, field = route_error(exc, gateway.settings.production)
                return JSONResponse({"error": message, "code": code, "field": field}, status_code=status)
        return endpoint

    async def ics(request: Request) -> Response:
        return Response(to_ics(await fetch(request), base), media_type="text/calendar; charset=utf-8",
                        headers={"Content-Disposition": 'inline; filename="agenda.ics"', **CORS})

    async def csv_export(request: Request) -> Response:
        sep = request.query_params.get("sep", "comma")
        if sep not in CSV_SEPARATORS:
            raise BadInput("sep : « comma » (virgule) ou « semicolon » (point-virgule).", "sep")
        return Response(to_csv(await fetch(request), base, CSV_SEPARATORS[sep]), media_type="text/csv; charset=utf-8",
                        headers={"Content-Disposition": 'attachment; filename="agenda.csv"',
                                 "Link": '<https://www.etalab.gouv.fr/licence-ouverte-open-licence/>; rel="license"',
                                 **CORS})

    async def jsonld(request: Request) -> Response:
        body = json.dumps(to_jsonld(await fetch(request), base), ensure_ascii=False)
        return Response(body, media_type="application/ld+json; charset=utf-8", headers=CORS)

    async def print_page(request: Request) -> Response:
        # A notice board shows what is coming: from now, four weeks unless the query says otherwise.
        now = datetime.now(timezone.utc)
        try:
            items = await fetch(request, {"starts_after": now.isoformat(),
                                          "starts_before": (now + timedelta(days=28)).isoformat()})
        except BadInput as exc:  # a commune (category, theme) that does not exist: no such page
            if exc.field not in ("commune", "category", "theme"):
                raise
            return HTMLResponse(not_found_page("Agenda introuvable", exc.message), status_code=404)
        return HTMLResponse(to_print(items, request.query_params.get("commune")))

    async def widget(request: Request) -> Response:
        return FileResponse(STATIC / "widget.js", media_type="application/javascript; charset=utf-8",
                            headers={"Cache-Control": "public, max-age=300", **CORS})

    async def embed_graphql(request: Request) -> Response:
        """Read-only public GraphQL for embedded widgets on other sites (CORS, no credentials)."""
        if request.method == "OPTIONS":
            return Response(status_code=204, headers={**CORS, "Access-Control-Allow-Methods": "POST, OPTIONS",
                                                      "Access-Control-Allow-Headers": "content-type",
                                                      "Access-Control-Max-Age": "600"})
        try:
            body = await request.json()
            query, variables = body["query"], body.get("variables") or {}
        except (ValueError, KeyError, TypeError):
            return JSONResponse({"errors": [{"message": "JSON {query, variables} attendu.",
                                             "extensions": {"code": "BAD_REQUEST"}}]}, 400, headers=CORS)
        if not isinstance(query, str) or not query.strip():
            return JSONResponse({"errors": [{"message": "Aucune requête GraphQL : le champ « query » manque.",
                                             "extensions": {"code": "BAD_REQUEST"}}]}, 400, headers=CORS)
        if len(query.encode()) > MAX_DOCUMENT_BYTES:
            return JSONResponse({"errors": [{"message": f"Document GraphQL trop long : {MAX_DOCUMENT_BYTES // 1024} Kio "
                                             "au plus.", "extensions": {"code": "PAYLOAD_TOO_LARGE"}}]}, 413,
                                headers=CORS)
        if not isinstance(variables, dict):
            return JSONResponse({"errors": [{"message": "« variables » doit être un objet.",
                                             "extensions": {"code": "BAD_REQUEST"}}]}, 400, headers=CORS)
        if not _only_queries(query):
            return JSONResponse({"errors": [{"message": "Lecture seule : seules les requêtes (query) sont acceptées "
                                             "ici.", "extensions": {"code": "FORBIDDEN"}}]}, 403, headers=CORS)
        events = gateway.compiled.events
        fast = events.execute(body) if events is not None else None
        if fast is not None:
            return JSONResponse(fast, headers=CORS)
        request.scope.setdefault("state", {})["caller"] = Caller()
        context = gateway.context(request, None)
        result = await gateway.schema.execute(query, variable_values=variables, context_value=context)
        from gateway.errors import map_errors

        map_errors(result.errors, gateway.settings.production)
        out: dict = {"data": result.data}
        if result.errors:
            out["errors"] = [e.formatted for e in result.errors]
        return JSONResponse(out, headers=CORS)

    async def event_view(request: Request) -> dict | None:
        cid = request.scope.get("state", {}).get("correlation_id") or "agenda-page"
        try:
            return await gateway.call("agenda", "get_event", caller=Caller(), correlation_id=cid,
                                      id=request.path_params["id"])
        except NotFound:
            return None

    async def event_page(request: Request) -> Response:
        ev = await event_view(request)
        if ev is None:
            return HTMLResponse(not_found_page("Événement introuvable", "Cet événement n'existe pas, n'est pas encore "
                                               "publié ou a été retiré par son organisateur."), status_code=404)
        return HTMLResponse(to_event_page(ev, base))

    async def event_ics(request: Request) -> Response:
        ev = await event_view(request)
        if ev is None:
            return JSONResponse({"error": "Événement introuvable.", "code": "NOT_FOUND"}, status_code=404)
        return Response(to_ics([ev], base), media_type="text/calendar; charset=utf-8",
                        headers={"Content-Disposition": f'attachment; filename="{ev["id"]}.ics"', **CORS})

    return [
        Route("/agenda/events/{id:str}.ics", guarded(event_ics)),
        Route("/agenda/events/{id:str}", guarded(event_page)),
        Route("/agenda.ics", guarded(ics)),
        Route("/agenda.csv", guarded(csv_export)),
        Route("/agenda.jsonld", guarded(jsonld)),
        Route("/agenda/print", guarded(print_page)),
        Route("/embed/agenda.js", widget),
        Route("/embed/graphql", embed_graphql, methods=["POST", "OPTIONS"]),
    ]


CORS = {"Access-Control-Allow-Origin": "*"}


def _only_queries(query: str) -> bool:
    """Every operation of the document is a query (parsed, not read as text: `#x\nmutation{…}` or a leading comma
    got mutations through a textual check). A document that does not parse is left to GraphQL to explain."""
    from graphql import GraphQLSyntaxError, OperationDefinitionNode, OperationType, parse

    try:
        document = parse(query, max_tokens=MAX_TOKENS)
    except GraphQLSyntaxError:
        return True
    return all(d.operation is OperationType.QUERY for d in document.definitions
               if isinstance(d, OperationDefinitionNode))
CSV_SEPARATORS = {"comma": ",", "semicolon": ";"}


# -- formats -------------------------------------------------------------------------------------
# Europe/Paris as calendar servers write it: the rule of its changes (RRULE), not the list of past dates that
# icalendar's add_missing_timezones() writes as one RDATE with dozens of values, of which Mozilla's ical.js
# (Thunderbird, many web calendars) and vobject read only the first: they then put summer events an hour late.
# The rule has held since 1996; events are checked to start after 2000.
PARIS_VTIMEZONE = """BEGIN:VTIMEZONE\r
TZID:Europe/Paris\r
X-LIC-LOCATION:Europe/Paris\r
BEGIN:DAYLIGHT\r
TZNAME:CEST\r
TZOFFSETFROM:+0100\r
TZOFFSETTO:+0200\r
DTSTART:19700329T020000\r
RRULE:FREQ=YEARLY;BYMONTH=3;BYDAY=-1SU\r
END:DAYLIGHT\r
BEGIN:STANDARD\r
TZNAME:CET\r
TZOFFSETFROM:+0200\r
TZOFFSETTO:+0100\r
DTSTART:19701025T030000\r
RRULE:FREQ=YEARLY;BYMONTH=10;BYDAY=-1SU\r
END:STANDARD\r
END:VTIMEZONE\r
"""


def to_ics(items: list[dict], base: str) -> bytes:
    """`base`: the platform's public URL (PARVIS_PUBLIC_URL), for the events' links."""
    cal = Calendar()
    cal.add("prodid", "-//Sicoval//Parvis agenda//FR")
    cal.add("version", "2.0")
    cal.add("calscale", "GREGORIAN")
    cal.add("x-wr-calname", "Agenda du Sicoval")
    cal.add("x-wr-timezone", "Europe/Paris")
    for ev in items:
        slots = ev["slots"] or [{"starts_at": ev["starts_at"], "ends_at": ev["ends_at"]}]
        for i, slot in enumerate(slots):
            ve = IcsEvent()
            ve.add("uid", f"{ev['id']}@{UID_DOMAIN}" if i == 0 else f"{ev['id']}-{i}@{UID_DOMAIN}")
            ve.add("summary", ev["title"])
            online = ev.get("online_url") if ev["attendance_mode"] in ("online", "mixed") else None
            text = "\n\n".join(x for x in (plain_text(ev["description_html"]),
                                             f"Participer en ligne : {online}" if online else "") if x)
            if text:
                ve.add("description", text)
            start, end = _paris(slot["starts_at"]), _paris(slot["ends_at"])
            if ev["all_day"]:
                ve.add("dtstart", start.date())
                ve.add("dtend", end.date())
            else:
                ve.add("dtstart", start)
                ve.add("dtend", end)
            if ev.get("rrule") and i == 0:
                ve.add("rrule", vRecur.from_ical(ev["rrule"]))
            ve.add("dtstamp", ev["updated_at"])
            ve.add("last-modified", ev["updated_at"])
            ve.add("status", "CANCELLED" if ev["status"] == "cancelled" or ev["removed"] else
                   "TENTATIVE" if ev["status"] == "postponed" else "CONFIRMED")
            loc = ev["location"]
            if ev["attendance_mode"] == "online" and online:
                ve.add("location", online)  # where to go: clients make it a link
            else:
                ve.add("location", ", ".join(x for x in (loc.get("place"), loc.get("address"), ev["commune_name"]) if x))
            if online:  # RFC 7986: how to join, which clients show as a button
                ve.add("conference", online, parameters={"VALUE": "URI", "FEATURE": "VIDEO",
                                                          "LABEL": "Participer en ligne"})
            if loc.get("lat") is not None and ev["attendance_mode"] != "online":
                ve.add("geo", (loc["lat"], loc["lon"]))
            ve.add("categories", [ev["category_name"]])
            ve.add("url", f"{base}{ev['url']}")
            ve.add("organizer", f"urn:parvis:organization:{ev['organizer']}", parameters={"CN": ev["organizer_name"]})
            cal.add_component(ve)
    text = cal.to_ical().decode("utf-8")
    if items:  # the events' DTSTART/DTEND name TZID=Europe/Paris (all-day ones are dates, no zone)
        text = text.replace("BEGIN:VEVENT\r\n", PARIS_VTIMEZONE + "BEGIN:VEVENT\r\n", 1)
    return text.encode("utf-8")


FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _cell(value):
    """A text a spreadsheet would run as a formula (`=HYPERLINK(…)`, `+`, `-`, `@`, a tab or a CR first) is written
    with a leading apostrophe, which spreadsheets show as text (OWASP: CSV injection). Numbers stay numbers."""
    if isinstance(value, str) and value.startswith(FORMULA_START):
        return "'" + value
    return value


def to_csv(items: list[dict], base: str, delimiter: str = ",") -> bytes:
    """UTF-8 with a byte-order mark, which French spreadsheets need to read accents when the file is opened by a
    double click; `,`-separated (RFC 4180, as data.gouv.fr expects), or `;` (?sep=semicolon: what a French
    spreadsheet splits on by itself). Descriptions in plain text."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n", delimiter=delimiter)
    writer.writerow(CSV_COLUMNS)
    for ev in items:
        loc = ev["location"]
        writer.writerow([_cell(v) for v in [
            ev["id"], ev["title"], plain_text(ev["description_html"]), _paris(ev["starts_at"]).isoformat(),
            _paris(ev["ends_at"]).isoformat(), "oui" if ev["all_day"] else "non", ev.get("rrule") or "",
            loc["commune"], ev["commune_name"], loc.get("place") or "", loc.get("address") or "",
            "" if loc.get("lat") is None else loc["lat"], "" if loc.get("lon") is None else loc["lon"],
            ev["category"], ev.get("theme") or "", "|".join(ev["tags"]), ev.get("audience") or "",
            "oui" if ev["free"] else "non", ev.get("price") or "", ev.get("registration_url") or "",
            "|".join(ev["accessibility"]), ev["attendance_mode"], ev.get("online_url") or "",
            ev.get("image_url") or "", ev["organizer"], ev["organizer_name"],
            "retire" if ev["removed"] else ev["status"], f"{base}{ev['url']}", _utc_text(ev["updated_at"]),
        ]])
    return out.getvalue().encode("utf-8-sig")


def to_jsonld(items: list[dict], base: str) -> dict:
    graph = []
    for ev in items:
        loc = ev["location"]
        place = {"@type": "Place", "name": loc.get("place") or ev["commune_name"],
                 "address": {"@type": "PostalAddress", "streetAddress": loc.get("address") or None,
                             "addressLocality": ev["commune_name"], "addressRegion": "Occitanie",
                             "addressCountry": "FR"}}
        if loc.get("lat") is not None:
            place["geo"] = {"@type": "GeoCoordinates", "latitude": loc["lat"], "longitude": loc["lon"]}
        location = place
        if ev["attendance_mode"] in ("online", "mixed") and ev.get("online_url"):
            virtual = {"@type": "VirtualLocation", "url": ev["online_url"]}
            location = virtual if ev["attendance_mode"] == "online" else [place, virtual]
        item = {
            "@type": "Event", "@id": f"{base}{ev['url']}", "identifier": ev["id"], "name": ev["title"],
            "description": plain_text(ev["description_html"]) or None, "startDate": _paris(ev["starts_at"]).isoformat(),
            "endDate": _paris(ev["ends_at"]).isoformat(),
            "eventStatus": SCHEMA_ORG_STATUS[ev["status"]],
            "eventAttendanceMode": SCHEMA_ORG_ATTENDANCE[ev["attendance_mode"]],
            "location": location, "organizer": {"@type": "Organization", "name": ev["organizer_name"],
                                                "identifier": ev["organizer"]},
            "isAccessibleForFree": ev["free"], "keywords": ", ".join(ev["tags"]) or None,
            "image": ev.get("image_url"), "url": f"{base}{ev['url']}", "dateModified": _utc_text(ev["updated_at"]),
        }
        if ev.get("rrule"):
            item["eventSchedule"] = {"@type": "Schedule", "repeatFrequency": ev["rrule"],
                                     "scheduleTimezone": "Europe/Paris"}
        if not ev["free"] or ev["status"] == "full":
            item["offers"] = {"@type": "Offer", "description": ev.get("price"), "url": ev.get("registration_url"),
                              "availability": "https://schema.org/SoldOut" if ev["status"] == "full"
                              else "https://schema.org/InStock"}
        graph.append({k: v for k, v in item.items() if v is not None})
    return {"@context": "https://schema.org", "@graph": graph}


def french_date(d: datetime) -> str:
    return f"{DAYS[d.weekday()]} {d.day} {MONTHS[d.month - 1]} {d.year}"


def to_print(items: list[dict], commune: str | None) -> str:
    e = html.escape
    where = e(items[0]["commune_name"]) if items and commune and "," not in commune else "le Sicoval"
    rows, day = [], None
    for ev in items:
        start = _paris(ev["starts_at"])
        label = french_date(start)
        if label != day:
            rows.append(f"<h2>{e(label)}</h2>")
            day = label
        when = "Toute la journée" if ev["all_day"] else f"{start:%H:%M} – {_paris(ev['ends_at']):%H:%M}"
        status = {"cancelled": "ANNULÉ", "postponed": "REPORTÉ", "full": "COMPLET",
                  "rescheduled": "NOUVELLE DATE", "moved_online": "EN LIGNE"}.get(ev["status"])
        loc = ev["location"]
        rows.append(
            f'<article class="event{" cancelled" if ev["status"] == "cancelled" else ""}">'
            f'<p class="when">{e(when)}{f" <strong>{status}</strong>" if status else ""}</p>'
            f'<h3>{e(ev["title"])}</h3>'
            f'<p class="where">{e(", ".join(x for x in (loc.get("place"), ev["commune_name"]) if x))}'
            f' · {e(ev["category_name"])} · {"Gratuit" if ev["free"] else e(ev.get("price") or "Payant")}</p>'
            f'<p class="who">Organisé par {e(ev["organizer_name"])}</p></article>')
    body = "".join(rows) or "<p>Aucun événement à venir.</p>"
    return f"""<!doctype html><html lang="fr"><head><meta charset="utf-8">
<title>Agenda – {where}</title>
<style>
@page {{ size: A4; margin: 15mm; }}
body {{ font: 11pt/1.35 system-ui, sans-serif; color: #000; max-width: 180mm; margin: auto; }}
h1 {{ font-size: 20pt; border-bottom: 2pt solid #000; }} h2 {{ font-size: 13pt; margin: 8mm 0 2mm; }}
h3 {{ font-size: 12pt; margin: 0; }} article {{ break-inside: avoid; margin-bottom: 4mm; }}
.cancelled h3 {{ text-decoration: line-through; }} .when, .where, .who {{ margin: 0; }}
footer {{ margin-top: 10mm; font-size: 9pt; }}
@media print {{ a {{ color: #000; text-decoration: none; }} }}
</style></head><body><h1>Agenda – {where}</h1>{body}
<footer>Agenda du Sicoval, édité le {e(french_date(datetime.now(PARIS)))}. Données ouvertes : /agenda.csv (Licence Ouverte).</footer>
</body></html>"""


ACCESSIBILITY_FR = {"hearing": "handicap auditif", "visual": "handicap visuel", "psychic": "handicap psychique",
                    "motor": "handicap moteur", "intellectual": "handicap mental"}
STATUS_FR = {"cancelled": "Annulé", "postponed": "Reporté", "full": "Complet", "rescheduled": "Nouvelle date",
             "moved_online": "Se tient en ligne"}


def _when(ev: dict) -> list[str]:
    out = []
    for occ in (ev.get("occurrences") or ev.get("slots") or [])[:12]:
        start, end = _paris(occ["starts_at"]), _paris(occ["ends_at"])
        if ev["all_day"]:
            last = end - timedelta(days=1)  # the end of an all-day occurrence is the next midnight
            out.append(french_date(start).capitalize() if last.date() <= start.date()
                       else f"Du {french_date(start)} au {french_date(last)}")
        elif start.date() == end.date():
            out.append(f"{french_date(start).capitalize()}, {start:%H:%M} – {end:%H:%M}")
        else:
            out.append(f"Du {french_date(start)} {start:%H:%M} au {french_date(end)} {end:%H:%M}")
    return out


def to_event_page(ev: dict, base: str) -> str:
    """The public page of one event: what a person needs to go there, and the JSON-LD search engines read."""
    e = html.escape
    loc = ev["location"]
    status = STATUS_FR.get(ev["status"])
    rows = [("Quand", "<br>".join(e(w) for w in _when(ev)) + (" <em>(et d'autres dates)</em>"
                                                           if len(ev.get("occurrences") or []) > 12 else "")),
            ("Où", e(", ".join(x for x in (loc.get("place"), loc.get("address"), ev["commune_name"]) if x))),
            ("Catégorie", e(ev["category_name"])),
            ("Tarif", "Gratuit" if ev["free"] else e(ev.get("price") or "Payant")),
            ("Organisé par", e(ev["organizer_name"]))]
    if ev.get("audience"):
        rows.append(("Public", e(ev["audience"])))
    if ev.get("accessibility"):
        rows.append(("Accessibilité", e(", ".join(ACCESSIBILITY_FR.get(a, a) for a in ev["accessibility"]))))
    if ev["attendance_mode"] in ("online", "mixed") and ev.get("online_url"):
        rows.append(("En ligne", f'<a href="{e(ev["online_url"])}" rel="nofollow">{e(ev["online_url"])}</a>'))
    if ev.get("registration_url"):
        rows.append(("Inscription", f'<a href="{e(ev["registration_url"])}" rel="nofollow">S\'inscrire</a>'))
    if ev.get("status_reason"):
        rows.append(("Information", e(ev["status_reason"])))
    details = "".join(f"<dt>{k}</dt><dd>{v}</dd>" for k, v in rows)
    ld = json.dumps(to_jsonld([ev], base)["@graph"][0] | {"@context": "https://schema.org"}, ensure_ascii=False)
    ld = ld.replace("</", "<\\/")  # never closes the script element
    image = f'<img src="{e(ev["image_url"])}" alt="" style="max-width:100%">' if ev.get("image_url") else ""
    head = (f'<meta name="description" content="{e(plain_text(ev["description_html"])[:160])}">\n'
            f'<script type="application/ld+json">{ld}</script>')
    body = f"""<p><a class="back" href="/agenda?commune={e(loc["commune"])}">Agenda de {e(ev["commune_name"])}</a></p>
{f'<p><strong class="tag bad">{e(status)}</strong></p>' if status else ""}
<article class="{"cancelled" if ev["status"] == "cancelled" else ""}"><h1>{e(ev["title"])}</h1>{image}
<dl class="summary">{details}</dl>
<div class="description">{ev["description_html"]}</div></article>
<ul class="actions" style="list-style:none;padding:0">
<li><a class="button secondary" href="{e(ev["url"])}.ics">Ajouter à mon agenda</a> (fichier iCalendar)</li>
<li><a href="/compte/abonnements?sujet=agenda:commune:{e(loc["commune"])}">Être prévenu des événements de {e(ev["commune_name"])}</a></li>
</ul>
<p class="hint">Mis à jour le {e(french_date(_paris(ev["updated_at"])))} · données ouvertes sous Licence Ouverte :
<a href="/agenda.csv">/agenda.csv</a></p>"""
    return public_page(f'{ev["title"]} – Agenda', body, head)


def public_page(title: str, body: str, head: str = "") -> str:
    """A public page of the agenda in the site's layout (gateway/web/templates/base.html)."""
    from gateway.web.render import render

    return render("plain.html", title=title, head_extra=head, body=body, ctx=None,
                  nav={"public": [{"label": "Accueil", "path": "/"}, {"label": "Agenda", "path": "/agenda"}]})


def not_found_page(title: str, message: str) -> str:
    e = html.escape
    return public_page(title, f'<h1>{e(title)}</h1><p>{e(message)}</p><p><a href="/agenda">Voir l\'agenda</a></p>')
