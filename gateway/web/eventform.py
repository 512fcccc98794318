"""The event form: what an organiser types (French, a day and a time per field, a simple repetition) turned into
the API's `EventInput`, an event read back into the form's values, and the service's error fields tied to the
form's."""
from __future__ import annotations

import re
from datetime import datetime, timedelta

from gateway.web.core import FormErrors, Form
from gateway.web.pages.public import ACCESSIBILITY, parse_day
from gateway.web.render import instant

REPEATS = [("", "Ne se répète pas"), ("DAILY", "Chaque jour"), ("WEEKLY", "Chaque semaine"),
           ("MONTHLY", "Chaque mois")]
MODES = [("OFFLINE", "Sur place"), ("ONLINE", "En ligne"), ("MIXED", "Sur place et en ligne")]
SIMPLE_RRULE = re.compile(r"^FREQ=(DAILY|WEEKLY|MONTHLY);COUNT=(\d+)$")
TIME = re.compile(r"^([01]?\d|2[0-3])\s*(?::|h)?\s*([0-5]\d)?$")
MAX_SLOTS = 20
TEXT_FIELDS = ("titre", "description", "categorie", "theme", "commune", "lieu", "adresse", "journee", "repetition",
               "repetition-fois", "prix", "tarif", "inscription", "participation", "lien-en-ligne", "image", "public",
               "mots-cles", "contact-nom", "contact-courriel", "contact-telephone", "regle")


def error_fields(slots: int) -> dict[str, str]:
    """The service's names of fields (contracts, domain) → the form's."""
    fields = {"title": "titre", "description": "description", "category": "categorie", "theme": "theme",
              "location": "commune", "location.commune": "commune", "location.place": "lieu",
              "location.address": "adresse", "location.lat": "adresse", "slots": "debut-date-0", "rrule": "repetition",
              "price": "tarif", "free": "prix", "registration_url": "inscription", "online_url": "lien-en-ligne",
              "attendance_mode": "participation", "image_url": "image", "contact": "contact-courriel",
              "contact.email": "contact-courriel", "audience": "public", "tags": "mots-cles",
              "accessibility": "acces", "event": "titre", "organizer": "titre"}
    for i in range(slots):
        fields[f"slots.{i}"] = f"debut-date-{i}"
        fields[f"slots.{i}.starts_at"] = f"debut-date-{i}"
        fields[f"slots.{i}.ends_at"] = f"fin-date-{i}"
    fields.update({f"event.{k}": v for k, v in list(fields.items())})
    return fields


def _clock(text: str) -> str | None:
    m = TIME.match(text.strip().lower())
    return f"{int(m.group(1)):02d}:{m.group(2) or '00'}" if m else None


def slot_rows(form: Form) -> list[dict]:
    try:
        count = min(MAX_SLOTS, max(1, int(form.get("creneaux") or 1)))
    except ValueError:
        count = 1
    rows = [{k: form.text(f"{k}-{i}") for k in ("debut-date", "debut-heure", "fin-date", "fin-heure")}
            for i in range(count)]
    return rows


def to_input(form: Form, errors: FormErrors) -> dict:
    """The EventInput of a posted form; what cannot be read (a day, a time) is added to `errors` by field."""
    all_day = form.get("journee") == "oui"
    for name, message in (("titre", "Titre : obligatoire."), ("categorie", "Catégorie : choisissez-en une."),
                          ("commune", "Commune : choisissez-en une.")):
        if not form.text(name):
            errors.add(name, message)
    slots = []
    for i, row in enumerate(slot_rows(form)):
        if not any(row.values()):
            continue  # the empty row for one more slot
        start_day, end_day = parse_day(row["debut-date"]), parse_day(row["fin-date"] or row["debut-date"])
        if start_day is None:
            errors.add(f"debut-date-{i}", "Date de début : indiquez une date comme 06/03/2027.")
            continue
        if end_day is None:
            errors.add(f"fin-date-{i}", "Date de fin : indiquez une date comme 06/03/2027.")
            continue
        if all_day:
            starts, ends = datetime.combine(start_day, datetime.min.time()), \
                datetime.combine(end_day + timedelta(days=1), datetime.min.time())
        else:
            start_time, end_time = _clock(row["debut-heure"]), _clock(row["fin-heure"])
            if start_time is None:
                errors.add(f"debut-heure-{i}", "Heure de début : indiquez une heure comme 14:30.")
                continue
            if end_time is None:
                errors.add(f"fin-heure-{i}", "Heure de fin : indiquez une heure comme 18:00.")
                continue
            starts = datetime.fromisoformat(f"{start_day.isoformat()}T{start_time}")
            ends = datetime.fromisoformat(f"{end_day.isoformat()}T{end_time}")
        slots.append({"startsAt": starts.isoformat(), "endsAt": ends.isoformat()})
    if not slots and not any(k.startswith(("debut-", "fin-")) for k in errors.fields):
        errors.add("debut-date-0", "Dates : indiquez au moins le jour de début.")
    rrule = None
    repeat = form.get("repetition") or ""
    if repeat == "garder":
        rrule = form.text("regle") or None
    elif repeat:
        try:
            count = int(form.text("repetition-fois") or "0")
        except ValueError:
            count = 0
        if not 2 <= count <= 750:
            errors.add("repetition-fois", "Nombre de fois : indiquez un nombre entre 2 et 750.")
        rrule = f"FREQ={repeat};COUNT={count}"
    known = {k for k, _ in ACCESSIBILITY}
    contact = {k: form.text(f"contact-{f}") or None for k, f in (("name", "nom"), ("email", "courriel"),
                                                                 ("phone", "telephone"))}
    return {
        "title": form.text("titre"), "description": form.text("description"), "category": form.text("categorie"),
        "theme": form.text("theme") or None,
        "location": {"commune": form.text("commune"), "place": form.text("lieu"), "address": form.text("adresse")},
        "slots": slots, "allDay": all_day, "rrule": rrule, "free": form.get("prix") != "payant",
        "price": form.text("tarif") or None, "registrationUrl": form.text("inscription") or None,
        "accessibility": [a for a in form.all("acces") if a in known],
        "attendanceMode": form.get("participation") if form.get("participation") in dict(MODES) else "OFFLINE",
        "onlineUrl": form.text("lien-en-ligne") or None, "imageUrl": form.text("image") or None,
        "audience": form.text("public") or None,
        "tags": [t.strip() for t in form.text("mots-cles").split(",") if t.strip()][:20],
        "contact": contact if any(contact.values()) else None,
    }


def form_values(form: Form) -> dict:
    """What was posted, to show back with its errors."""
    values = {k: form.text(k) for k in TEXT_FIELDS}
    values["acces"] = form.all("acces")
    values["slots"] = slot_rows(form)
    return values


def event_values(ev: dict | None) -> dict:
    """An event (EventForOrganizer) as the form's values; a new event's defaults without one."""
    if ev is None:
        return {**{k: "" for k in TEXT_FIELDS}, "prix": "gratuit", "participation": "OFFLINE", "acces": [],
                "slots": [{"debut-date": "", "debut-heure": "", "fin-date": "", "fin-heure": ""}]}
    rows = []
    for slot in ev["slots"]:
        s, e = instant(slot["startsAt"]), instant(slot["endsAt"])
        if ev["allDay"]:
            e = e - timedelta(days=1) if (e.hour, e.minute) == (0, 0) and e > s else e
        rows.append({"debut-date": s.date().isoformat(), "debut-heure": "" if ev["allDay"] else f"{s:%H:%M}",
                     "fin-date": e.date().isoformat(), "fin-heure": "" if ev["allDay"] else f"{e:%H:%M}"})
    rrule = ev.get("rrule") or ""
    simple = SIMPLE_RRULE.match(rrule)
    contact = ev.get("contact") or {}
    return {
        "titre": ev["title"], "description": ev["description"], "categorie": ev["category"], "theme": ev.get("theme") or "",
        "commune": ev["commune"]["slug"], "lieu": ev["location"]["place"], "adresse": ev["location"]["address"],
        "journee": "oui" if ev["allDay"] else "", "repetition": simple.group(1) if simple else ("garder" if rrule else ""),
        "repetition-fois": simple.group(2) if simple else "", "regle": rrule, "prix": "gratuit" if ev["free"] else "payant",
        "tarif": ev.get("price") or "", "inscription": ev.get("registrationUrl") or "",
        "participation": ev["attendanceMode"], "lien-en-ligne": ev.get("onlineUrl") or "", "image": ev.get("imageUrl") or "",
        "public": ev.get("audience") or "", "mots-cles": ", ".join(ev.get("tags") or []),
        "contact-nom": contact.get("name") or "", "contact-courriel": contact.get("email") or "",
        "contact-telephone": contact.get("phone") or "", "acces": list(ev.get("accessibility") or []), "slots": rows,
    }


def with_empty_slot(values: dict) -> dict:
    """One more empty row of dates: without JavaScript, another slot is added by filling it and saving."""
    slots = [s for s in values["slots"] if any(s.values())]
    if len(slots) < MAX_SLOTS:
        slots.append({"debut-date": "", "debut-heure": "", "fin-date": "", "fin-heure": ""})
    return {**values, "slots": slots}


STATE_LABELS = {"DRAFT": ("Brouillon", "muted"), "SUBMITTED": ("En attente de modération", "warn"),
                "PUBLISHED": ("Publié", "ok"), "REJECTED": ("Refusé", "bad"), "WITHDRAWN": ("Retiré", "muted")}
STATUS_LABELS = {"SCHEDULED": "Prévu", "RESCHEDULED": "Nouvelle date", "MOVED_ONLINE": "En ligne",
                 "POSTPONED": "Reporté", "FULL": "Complet", "CANCELLED": "Annulé"}
ACCESS_LABELS = dict(ACCESSIBILITY)


def summary_rows(ev: dict) -> list[tuple[str, str]]:
    """An event as a person reads it, field by field (the organiser's page, the moderators' comparison)."""
    from gateway.web.render import span

    when = [span(s["startsAt"], s["endsAt"], ev["allDay"]) for s in ev["slots"]]
    repeat = ev.get("rrule") or ""
    simple = SIMPLE_RRULE.match(repeat)
    if simple:
        repeat = f"{dict(REPEATS)[simple.group(1)]}, {simple.group(2)} fois"
    contact = ev.get("contact") or {}
    return [
        ("Titre", ev["title"]), ("Dates", "\n".join(when)), ("Répétition", repeat or "Aucune"),
        ("Commune", ev["commune"]["name"]),
        ("Lieu", ", ".join(x for x in (ev["location"]["place"], ev["location"]["address"]) if x) or "–"),
        ("Catégorie", ev["categoryName"]), ("Tarif", "Gratuit" if ev["free"] else (ev.get("price") or "Payant")),
        ("Participation", dict(MODES).get(ev["attendanceMode"], ev["attendanceMode"])
         + (f" : {ev['onlineUrl']}" if ev.get("onlineUrl") else "")),
        ("Accessibilité", ", ".join(ACCESS_LABELS.get(a, a) for a in ev["accessibility"]) or "Non précisée"),
        ("Inscription", ev.get("registrationUrl") or "–"), ("Image", ev.get("imageUrl") or "–"),
        ("Public", ev.get("audience") or "–"), ("Mots-clés", ", ".join(ev.get("tags") or []) or "–"),
        ("Contact", " · ".join(x for x in (contact.get("name"), contact.get("email"), contact.get("phone")) if x) or "–"),
        ("Description", ev["description"] or "–"),
    ]
