"""The web's pure parts: how a person in France reads dates and amounts, the event form read into EventInput (and
its mistakes tied to their fields), and the session's CSRF tokens, origin check and signed cookies."""
from datetime import date, datetime, timezone
from types import SimpleNamespace

import pytest

from gateway.web import render
from gateway.web.core import Form, FormErrors
from gateway.web.eventform import to_input
from gateway.web.operations import Problem
from gateway.web.pages.public import parse_day
from gateway.web.session import Sessions


# -- dates and amounts --------------------------------------------------------------------------------------

def test_dates_read_in_paris_time_winter_and_summer():
    assert render.span("2027-03-06T09:00:00Z", "2027-03-06T11:00:00Z") == "samedi 6 mars 2027, 10 h – 12 h"
    assert render.span("2027-07-01T17:30:00Z", "2027-07-01T21:00:00Z") == "jeudi 1er juillet 2027, 19 h 30 – 23 h"
    assert render.when("2027-10-31T00:59:00Z") == "dimanche 31 octobre 2027 à 2 h 59"  # still summer time
    assert render.when("2027-10-31T01:00:00Z") == "dimanche 31 octobre 2027 à 2 h"  # now winter time
    assert render.span("2027-03-06T09:00:00Z", "2027-03-07T11:00:00Z") == \
        "du samedi 6 mars 2027, 10 h au dimanche 7 mars 2027, 12 h"
    assert render.short_date("2027-03-06T09:30:00Z") == "06/03/2027 à 10:30"
    assert render.when(None) == "" and render.span(None, None) == ""


def test_an_all_day_event_shows_the_days_entered():
    one = render.span(datetime(2027, 3, 6), datetime(2027, 3, 7), all_day=True)
    assert one == "samedi 6 mars 2027"
    two = render.span(datetime(2027, 3, 6), datetime(2027, 3, 8), all_day=True)
    assert two == "du samedi 6 mars 2027 au dimanche 7 mars 2027"


def test_amounts_and_numbers_in_french():
    assert render.amount(123450) == "1\u202f234,50\u00a0€"
    assert render.amount(5) == "0,05\u00a0€" and render.amount(-1250) == "-12,50\u00a0€"
    assert render.amount(None) == ""
    assert render.number(72500) == "72\u202f500" and render.number(87.25, 1) == "87,2"
    assert render.number(None) == "–"


@pytest.mark.parametrize("text,expected", [
    ("2027-03-06", date(2027, 3, 6)), ("06/03/2027", date(2027, 3, 6)), ("6/3/2027", date(2027, 3, 6)),
    (" 06/03/2027 ", date(2027, 3, 6)), ("30/02/2027", None), ("03-06-2027", None), ("demain", None), ("", None),
])
def test_a_day_as_a_person_types_it(text, expected):
    assert parse_day(text) == expected


# -- the event form -----------------------------------------------------------------------------------------

def form(**fields) -> Form:
    base = {"titre": "Concert", "categorie": "concert", "commune": "labege", "creneaux": "1",
            "debut-date-0": "06/03/2027", "debut-heure-0": "20h30", "fin-date-0": "", "fin-heure-0": "23:00"}
    base.update(fields)
    return Form([(k, v) for k, v in base.items() if v is not None])


def test_a_filled_form_becomes_the_apis_event_input():
    errors = FormErrors()
    event = to_input(form(acces="MOTOR", prix="payant", tarif="5 €", **{"mots-cles": "jazz, , plein air"}), errors)
    assert not errors, errors.summary()
    assert event["slots"] == [{"startsAt": "2027-03-06T20:30:00", "endsAt": "2027-03-06T23:00:00"}]
    assert event["free"] is False and event["price"] == "5 €" and event["tags"] == ["jazz", "plein air"]
    assert event["accessibility"] == ["MOTOR"] and event["location"]["commune"] == "labege"
    assert event["rrule"] is None and event["contact"] is None


def test_an_all_day_event_and_a_repetition():
    errors = FormErrors()
    event = to_input(form(journee="oui", **{"fin-date-0": "07/03/2027", "repetition": "WEEKLY",
                                            "repetition-fois": "4"}), errors)
    assert not errors
    assert event["allDay"] is True
    assert event["slots"] == [{"startsAt": "2027-03-06T00:00:00", "endsAt": "2027-03-08T00:00:00"}]
    assert event["rrule"] == "FREQ=WEEKLY;COUNT=4"


def test_the_forms_mistakes_are_tied_to_their_fields():
    errors = FormErrors()
    to_input(form(titre=" ", **{"debut-heure-0": "25h", "repetition": "DAILY", "repetition-fois": "1"}), errors)
    assert set(errors.fields) == {"titre", "debut-heure-0", "repetition-fois"}
    assert "14:30" in errors.fields["debut-heure-0"]
    errors = FormErrors()
    to_input(form(**{"debut-date-0": "31/02/2027"}), errors)
    assert list(errors.fields) == ["debut-date-0"]


def test_the_services_errors_land_on_the_forms_fields():
    from gateway.web.eventform import error_fields

    problems = [Problem(code="BAD_USER_INPUT", message="Fin avant le début.", field="slots.0.ends_at"),
                Problem(code="BAD_USER_INPUT", message="Commune inconnue.", field="location.commune"),
                Problem(code="CONFLICT", message="Changé entre-temps.", field=None)]
    errors = FormErrors.of(problems, error_fields(1))
    assert errors.fields == {"fin-date-0": "Fin avant le début.", "commune": "Commune inconnue."}
    assert errors.general == ["Changé entre-temps."]


# -- sessions: CSRF, origins, signed cookies --------------------------------------------------------------------

def sessions(public_url="https://parvis.sicoval.example", production=True) -> Sessions:
    settings = SimpleNamespace(secret="s" * 40, production=production, public_url=public_url)
    return Sessions(SimpleNamespace(settings=settings))


def request(headers=None, cookies=None, scheme="https", host="parvis.sicoval.example"):
    return SimpleNamespace(headers={"host": host, **(headers or {})}, cookies=cookies or {},
                           url=SimpleNamespace(scheme=scheme))


def test_csrf_tokens_are_bound_to_the_session_or_the_visit():
    s = sessions()
    signed_in = SimpleNamespace(token_id="jti-1")
    binding, new_visit = s.binding(request(), signed_in)
    assert binding == "session:jti-1" and new_visit is None
    token = s.csrf(binding)
    assert s.csrf_ok(binding, token)
    assert not s.csrf_ok("session:jti-2", token), "another session's token"
    assert not s.csrf_ok(binding, None) and not s.csrf_ok(binding, "") and not s.csrf_ok(binding, token[:-1] + "0")
    anonymous = SimpleNamespace(token_id=None)
    first, visit = s.binding(request(), anonymous)
    assert visit and len(visit) == 32 and first == f"visit:{visit}"
    again, none = s.binding(request(cookies={"parvis_visit": visit}), anonymous)
    assert again == first and none is None
    assert s.csrf(first) != token, "the token changes at sign-in"
    assert sessions().csrf(binding) == token and Sessions(SimpleNamespace(settings=SimpleNamespace(
        secret="t" * 40, production=True, public_url="https://x.example"))).csrf(binding) != token


@pytest.mark.parametrize("headers,ok", [
    ({"origin": "https://parvis.sicoval.example"}, True),
    ({"origin": "https://evil.example"}, False),
    ({"origin": "null", "referer": "https://parvis.sicoval.example/agenda"}, True),
    ({"origin": "null"}, False),
    ({"referer": "https://evil.example/x"}, False),
    ({}, True),  # no header at all: the token decides
    ({"origin": "https://parvis.sicoval.example", "sec-fetch-site": "cross-site"}, False),
])
def test_posts_come_from_this_site(headers, ok):
    assert sessions().same_origin(request(headers)) is ok


def test_signed_cookies_refuse_tampering_and_age():
    s = sessions()
    raw = s.sign({"email": "alice@example.org"})
    assert s.unsign(raw, 60)["email"] == "alice@example.org"
    body, mac = raw.rsplit(".", 1)
    assert s.unsign(body + "." + ("0" * len(mac)), 60) is None
    assert s.unsign(body[:-2] + "xx." + mac, 60) is None
    assert s.unsign(raw, -1) is None, "too old"
    assert s.unsign(None, 60) is None and s.unsign("nodot", 60) is None


def test_cookies_are_secure_outside_dev():
    assert sessions("https://parvis.sicoval.example", production=False).secure
    assert sessions("http://127.0.0.1:8000", production=True).secure
    assert not sessions("http://127.0.0.1:8000", production=False).secure


def test_dates_of_timezone_aware_and_naive_values_agree():
    aware = datetime(2027, 3, 6, 9, tzinfo=timezone.utc)
    assert render.when(aware) == render.when("2027-03-06T09:00:00Z") == render.when(datetime(2027, 3, 6, 10))
