"""The daily digest of the agenda, pure parts: who may have one, when it is due, which events it lists
(each once, by start), how it renders (French, Paris time, escaped HTML) and its one-click link."""
from datetime import date, datetime, timezone

import pytest

from contracts.errors import BadInput
from services.notification import domain


def item(eid, title, starts, topics, commune="Labège"):
    return {"_id": eid, "title": title, "commune": commune, "url": f"https://parvis.example/agenda/events/{eid}",
            "starts_ts": datetime.fromisoformat(starts).timestamp(), "topics": topics}


ITEMS = [
    item("e3", "Marché <bio>", "2026-12-06T09:00:00+00:00", ["agenda:commune:labege", "agenda:category:marche"]),
    item("e1", "Concert", "2026-12-05T17:30:00+00:00", ["agenda:commune:labege", "agenda:category:concert"]),
    item("e2", "Théâtre", "2026-12-05T19:00:00+00:00", ["agenda:commune:escalquens", "agenda:category:concert"],
         commune="Escalquens"),
    item("e4", "Loto", "2026-12-04T19:00:00+00:00", ["agenda:commune:ayguesvives", "agenda:category:loto"]),
]


def test_events_of_any_topic_are_listed_once_sorted_by_start_in_paris_time():
    events = domain.digest_events(ITEMS, ["agenda:commune:labege", "agenda:category:concert"])
    assert [e["id"] for e in events] == ["e1", "e2", "e3"], "e1 matches both topics: listed once"
    assert events[0] == {"id": "e1", "title": "Concert", "commune": "Labège",
                         "url": "https://parvis.example/agenda/events/e1",
                         "starts_at": "samedi 5 décembre 2026 à 18 h 30"}
    assert domain.digest_events(ITEMS, ["agenda:category:sport"]) == []


@pytest.mark.parametrize("topic, channel, field", [
    ("agenda:commune:labege", "sms", "digest"),
    ("consultation:new", "email", "digest"),
])
def test_a_digest_is_for_agenda_topics_by_email_or_in_app(topic, channel, field):
    with pytest.raises(BadInput) as exc:
        domain.check_digest(topic, channel, True)
    assert exc.value.field == field
    domain.check_digest("agenda:category:concert", "in_app", True)
    domain.check_digest("agenda:commune:labege", "email", True)
    domain.check_digest("consultation:new", "sms", False)


def test_the_email_lists_each_event_with_its_date_commune_and_link_escaped_in_html():
    events = domain.digest_events(ITEMS, ["agenda:commune:labege", "agenda:category:concert"])
    tpl = domain.template(domain.DIGEST_TEMPLATE)
    url = "https://parvis.example/notifications/unsubscribe?t=abc.def"
    parts = domain.render(tpl, "email", {**domain.digest_personalisation(events, date(2026, 11, 26)),
                                         "unsubscribe_url": url})
    assert parts["subject"] == "3 nouveaux événements dans votre agenda du jeudi 26 novembre 2026"
    text, html = parts["text"], parts["html"]
    assert text.index("Concert") < text.index("Théâtre") < text.index("Marché <bio>")
    assert "samedi 5 décembre 2026 à 18 h 30, Labège" in text and "https://parvis.example/agenda/events/e2" in text
    assert "Marché &lt;bio&gt;" in html and "<bio>" not in html
    assert '<a href="https://parvis.example/agenda/events/e3">' in html and url in text and url in html
    one = domain.render(tpl, "email", domain.digest_personalisation(events[:1], date(2026, 11, 26)))
    assert one["subject"].startswith("1 nouvel événement dans")
    in_app = domain.render(tpl, "in_app", domain.digest_personalisation(events, date(2026, 11, 26)))["text"]
    assert in_app.startswith("Agenda du jeudi 26 novembre 2026 : Concert (samedi 5 décembre 2026 à 18 h 30, Labège) ;")
    assert "sms" not in tpl.parts


def test_the_digest_is_due_from_the_hour_paris_time_and_can_be_off():
    assert domain.parse_digest_hour(None) == 7 and domain.parse_digest_hour("18") == 18
    assert domain.parse_digest_hour("off") is None
    with pytest.raises(ValueError):
        domain.parse_digest_hour("24")
    # 05:59 UTC in winter is 06:59 in Paris: not yet; 06:00 UTC is 07:00: due, for that Paris day.
    assert domain.digest_day_due(datetime(2026, 11, 26, 5, 59, tzinfo=timezone.utc), 7) is None
    assert domain.digest_day_due(datetime(2026, 11, 26, 6, 0, tzinfo=timezone.utc), 7) == date(2026, 11, 26)
    assert domain.digest_day_due(datetime(2026, 11, 26, 22, 30, tzinfo=timezone.utc), 7) == date(2026, 11, 26)
    assert domain.digest_day_due(datetime(2026, 11, 26, 23, 30, tzinfo=timezone.utc), 7) is None, "00:30 on the 27th"
    assert domain.digest_day_due(datetime(2026, 7, 1, 5, 0, tzinfo=timezone.utc), 7) == date(2026, 7, 1), "summer: UTC+2"
    assert domain.digest_day_due(datetime(2026, 11, 26, 12, 0, tzinfo=timezone.utc), None) is None
    assert domain.digest_event_id(date(2026, 11, 26)) == "digest:2026-11-26"


def test_the_digest_link_is_signed_and_names_the_recipient_and_channel():
    value = domain.digest_link_value("cit-abc", "email")
    token = domain.sign("s3cret", "unsubscribe", value)
    assert domain.parse_digest_link(domain.unsign("s3cret", "unsubscribe", token)) == ("cit-abc", "email")
    assert domain.unsign("other", "unsubscribe", token) is None
    assert domain.parse_digest_link("cit-abc|agenda:commune:labege|email") is None, "a subscription's own link"


def test_quiet_hours_of_any_subscription_hold_the_digest_until_the_latest_end():
    now = datetime(2026, 11, 26, 6, 0, tzinfo=timezone.utc)  # 07:00 in Paris
    subs = [{"quiet_from": "22:00", "quiet_to": "08:00"}, {"quiet_from": "06:00", "quiet_to": "09:30"}, {}]
    assert domain.quiet_until_any(now, subs) == datetime(2026, 11, 26, 8, 30, tzinfo=timezone.utc)
    assert domain.quiet_until_any(now, [{}]) is None
