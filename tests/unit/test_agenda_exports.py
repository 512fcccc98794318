"""The agenda's exports read the way their clients read them: the iCalendar file by Mozilla's ical.js (Thunderbird
and many web calendars; run through Node), the CSV by a French spreadsheet's rules, JSON-LD and the event page's
meta description as plain text. Each event is made by the agenda's own rules from what an organiser enters."""
import csv
import io
import json
import subprocess
from datetime import datetime, timezone

import pytest

from contracts.agenda import EventInput
from gateway.routes.agenda import plain_text, to_csv, to_event_page, to_ics, to_jsonld
from services.agenda import domain
from tests.support import ROOT

REF = domain.Reference({"labege": "Labège"}, {"concert": "Concert"}, {"culture": "Culture"})
NOW = datetime(2026, 11, 25, 12, tzinfo=timezone.utc)
BASE = "https://agenda.sicoval.example"
DESCRIPTION = "Concerts des écoles et **buvette** associative.\n\nProgramme sur [le site](https://labege.example/fete)."


def view(event_id="evt-1", **fields) -> dict:
    data = {"title": "Fête de la musique", "location": {"commune": "labege", "place": "Place de la mairie"},
            "category": "concert", "description": DESCRIPTION,
            "slots": [{"starts_at": "2027-07-10T19:30:00", "ends_at": "2027-07-10T23:00:00"}], **fields}
    stored = domain.validate_event(EventInput.model_validate(data), REF, NOW)
    return domain.event_view({"_id": event_id, **stored, "organizer": "org-commune-labege",
                              "organizer_name": "Mairie de Labège", "moderation_state": "published",
                              "status": "scheduled", "created_at": NOW, "updated_at": NOW})


def ical_js(ics: bytes) -> list[dict]:
    node_modules = ROOT / "tests" / "js" / "node_modules" / "ical.js"
    assert node_modules.exists(), "run `make js-deps` (npm ci --prefix tests/js)"
    out = subprocess.run(["node", str(ROOT / "tests" / "js" / "read-ics.mjs")], input=ics, capture_output=True,
                         timeout=60, cwd=ROOT / "tests" / "js")
    assert out.returncode == 0, out.stderr.decode()
    return json.loads(out.stdout)


def test_summer_and_winter_times_are_read_at_the_hour_entered_by_ical_js():
    """Europe/Paris was written as one RDATE of 61 dates, of which ical.js reads the first: +01:00 all year, so a
    19:30 event in July showed at 20:30 in Thunderbird."""
    summer, winter = view("evt-summer"), view("evt-winter", slots=[{"starts_at": "2027-01-10T19:30:00",
                                                                    "ends_at": "2027-01-10T21:00:00"}])
    weekly = view("evt-weekly", rrule="FREQ=WEEKLY;COUNT=30",
                  slots=[{"starts_at": "2027-03-07T10:00:00", "ends_at": "2027-03-07T12:00:00"}])
    events = {e["uid"]: e for e in ical_js(to_ics([summer, winter, weekly], BASE))}
    assert events["evt-summer@parvis.sicoval.fr"]["start"] == "2027-07-10T17:30:00.000Z"  # 19:30 CEST
    assert events["evt-summer@parvis.sicoval.fr"]["end"] == "2027-07-10T21:00:00.000Z"
    assert events["evt-winter@parvis.sicoval.fr"]["start"] == "2027-01-10T18:30:00.000Z"  # 19:30 CET
    assert events["evt-summer@parvis.sicoval.fr"]["zone"] == "Europe/Paris"
    # A recurrence crossing the change to summer time keeps its wall time: 10:00 in March (CET) and in April.
    ics = to_ics([weekly], BASE).decode()
    assert "RRULE:FREQ=YEARLY;BYMONTH=3;BYDAY=-1SU" in ics and "RDATE" not in ics
    script = """import ICAL from "ical.js"; let t = ""; for await (const c of process.stdin) t += c;
const cal = new ICAL.Component(ICAL.parse(t)); cal.getAllSubcomponents("vtimezone").forEach(z => ICAL.TimezoneService.register(z));
const it = new ICAL.Event(cal.getFirstSubcomponent("vevent")).iterator(); const out = [];
for (let n = 0; n < 6; n++) out.push(it.next().toJSDate().toISOString()); process.stdout.write(JSON.stringify(out));"""
    out = subprocess.run(["node", "--input-type=module", "-e", script], input=ics.encode(), capture_output=True,
                         timeout=60, cwd=ROOT / "tests" / "js")
    starts = json.loads(out.stdout)
    assert starts[:3] == ["2027-03-07T09:00:00.000Z", "2027-03-14T09:00:00.000Z", "2027-03-21T09:00:00.000Z"]
    assert starts[3:] == ["2027-03-28T08:00:00.000Z", "2027-04-04T08:00:00.000Z", "2027-04-11T08:00:00.000Z"]


@pytest.mark.parametrize("slot, days", [
    ({"starts_at": "2027-06-05T00:00:00", "ends_at": "2027-06-06T00:00:00"}, ("2027-06-05", "2027-06-06")),
    ({"starts_at": "2027-06-05T10:00:00", "ends_at": "2027-06-05T18:00:00"}, ("2027-06-05", "2027-06-06")),
    ({"starts_at": "2027-06-05T00:00:00", "ends_at": "2027-06-07T00:00:00"}, ("2027-06-05", "2027-06-07")),
    ({"starts_at": "2027-06-05T00:00:00", "ends_at": "2027-06-06T10:00:00"}, ("2027-06-05", "2027-06-07")),
])
def test_all_day_events_last_the_days_entered_in_every_output(slot, days):
    """One day entered as 00:00 to 00:00 the next day was written as two days (DTEND one day too far)."""
    ev = view(all_day=True, slots=[slot])
    [read] = ical_js(to_ics([ev], BASE))
    assert read["allDay"] and (read["start"], read["end"]) == days  # DTEND is exclusive
    page = to_event_page(ev, BASE)
    if days[1] == "2027-06-06":
        assert "<dd>Samedi 5 juin 2027</dd>" in page
    else:
        assert "<dd>Du samedi 5 juin 2027 au dimanche 6 juin 2027</dd>" in page


def test_an_online_event_tells_calendars_how_to_join():
    online = view("evt-online", attendance_mode="online", online_url="https://visio.example/reunion")
    mixed = view("evt-mixed", attendance_mode="mixed", online_url="https://visio.example/mixte")
    events = {e["uid"]: e for e in ical_js(to_ics([online, mixed], BASE))}
    assert events["evt-online@parvis.sicoval.fr"]["location"] == "https://visio.example/reunion"
    assert events["evt-online@parvis.sicoval.fr"]["conference"] == "https://visio.example/reunion"
    assert "Participer en ligne : https://visio.example/reunion" in events["evt-online@parvis.sicoval.fr"]["description"]
    assert events["evt-mixed@parvis.sicoval.fr"]["location"].startswith("Place de la mairie")
    assert events["evt-mixed@parvis.sicoval.fr"]["conference"] == "https://visio.example/mixte"


def test_descriptions_are_plain_text_outside_html_and_links_use_the_public_url():
    ev = view()
    expected = ("Concerts des écoles et buvette associative.\n\nProgramme sur le site "
                "(https://labege.example/fete).")
    assert plain_text(ev["description_html"]) == expected
    [read] = ical_js(to_ics([ev], BASE))
    assert read["description"] == expected and read["url"] == f"{BASE}/agenda/events/evt-1"
    rows = list(csv.DictReader(io.StringIO(to_csv([ev], BASE).decode("utf-8-sig"))))
    assert rows[0]["description"] == expected and rows[0]["url"] == f"{BASE}/agenda/events/evt-1"
    item = to_jsonld([ev], BASE)["@graph"][0]
    assert item["description"] == expected and item["url"] == f"{BASE}/agenda/events/evt-1"
    page = to_event_page(ev, BASE)
    assert '<meta name="description" content="Concerts des écoles et buvette associative.' in page
    assert "**" not in page.split("<body")[0]


def test_the_csv_opens_with_its_accents_in_a_french_spreadsheet():
    ev = view(title="Fête à Labège")
    data = to_csv([ev], BASE)
    assert data.startswith("\ufeff".encode())  # the byte-order mark a spreadsheet needs to read UTF-8
    rows = list(csv.reader(io.StringIO(data.decode("utf-8-sig"))))
    assert rows[1][1] == "Fête à Labège"
    semicolon = to_csv([ev], BASE, ";").decode("utf-8-sig")
    header, line = semicolon.splitlines()[:2]
    assert header.startswith("id;titre;description;") and line.split(";")[1] == "Fête à Labège"
