"""Pure agenda rules: the moderation state machine as a table, validation naming the field, recurrences."""
from datetime import datetime, timezone

import pytest

from contracts import agenda_public
from contracts.agenda import EventInput
from contracts.errors import BadInput, Conflict, Forbidden
from services.agenda import domain

REF = domain.Reference({"labege": "Labège"}, {"concert": "Concert"}, {"culture": "Culture"})
NOW = datetime(2026, 11, 25, 12, tzinfo=timezone.utc)

STATES = ["draft", "submitted", "published", "rejected", "withdrawn"]
ACTIONS = ["submit", "approve", "reject", "withdraw"]
# (state, action): (organizer's outcome, agent's outcome); a state name, or Conflict/Forbidden.
TABLE = {
    ("draft", "submit"): ("submitted", "submitted"),
    ("draft", "approve"): (Forbidden, "published"),
    ("draft", "reject"): (Conflict, Conflict),
    ("draft", "withdraw"): ("withdrawn", "withdrawn"),
    ("submitted", "submit"): (Conflict, Conflict),
    ("submitted", "approve"): (Forbidden, "published"),
    ("submitted", "reject"): (Forbidden, "rejected"),
    ("submitted", "withdraw"): ("withdrawn", "withdrawn"),
    ("published", "submit"): (Conflict, Conflict),
    ("published", "approve"): (Conflict, Conflict),
    ("published", "reject"): (Conflict, Conflict),
    ("published", "withdraw"): ("withdrawn", "withdrawn"),
    ("rejected", "submit"): ("submitted", "submitted"),
    ("rejected", "approve"): (Conflict, Conflict),
    ("rejected", "reject"): (Conflict, Conflict),
    ("rejected", "withdraw"): ("withdrawn", "withdrawn"),
    ("withdrawn", "submit"): (Conflict, Conflict),
    ("withdrawn", "approve"): (Conflict, Conflict),
    ("withdrawn", "reject"): (Conflict, Conflict),
    ("withdrawn", "withdraw"): (Conflict, Conflict),
}


def test_the_table_covers_every_state_and_action():
    assert set(TABLE) == {(s, a) for s in STATES for a in ACTIONS}


@pytest.mark.parametrize("state, action", sorted(TABLE))
@pytest.mark.parametrize("role", ["organizer", "agent", "public"])
def test_moderation_state_machine(state, action, role):
    expected = {"organizer": TABLE[(state, action)][0], "agent": TABLE[(state, action)][1]}.get(role)
    if role == "public":
        expected = Conflict if TABLE[(state, action)][1] is Conflict else Forbidden
    if isinstance(expected, type):
        with pytest.raises(expected):
            domain.transition(state, action, role)
    else:
        assert domain.transition(state, action, role) == expected


@pytest.mark.parametrize("current, new, slots, error", [
    ("scheduled", "cancelled", False, None),
    ("scheduled", "postponed", False, None),
    ("scheduled", "full", False, None),
    ("scheduled", "rescheduled", True, None),
    ("scheduled", "rescheduled", False, BadInput),
    ("scheduled", "moved_online", False, BadInput),
    ("cancelled", "scheduled", False, Conflict),
])
def test_event_status_changes(current, new, slots, error):
    if error:
        with pytest.raises(error):
            domain.check_status_change("published", current, new, slots, "offline", None)
    else:
        domain.check_status_change("published", current, new, slots, "offline", None)
    assert agenda_public.SCHEMA_ORG_STATUS[new].startswith("https://schema.org/Event")


def make(**over):
    base = {"title": "Fête de la musique", "slots": [{"starts_at": "2027-03-20T19:00:00", "ends_at": "2027-03-20T22:00:00"}],
            "location": {"commune": "labege"}, "category": "concert"}
    base.update(over)
    return EventInput.model_validate(base)


def test_wall_time_is_stored_as_utc_and_recurrences_keep_the_wall_time_across_dst():
    fields = domain.validate_event(make(rrule="RRULE:FREQ=WEEKLY;COUNT=3"), REF, NOW)
    starts = [o["starts_at"] for o in fields["occurrences"]]
    assert starts[0] == datetime(2027, 3, 20, 18, tzinfo=timezone.utc)   # 19:00 CET
    assert starts[2] == datetime(2027, 4, 3, 17, tzinfo=timezone.utc)    # 19:00 CEST
    assert fields["rrule"] == "FREQ=WEEKLY;COUNT=3" and fields["ends_at"] == datetime(2027, 4, 3, 20, tzinfo=timezone.utc)


@pytest.mark.parametrize("over, field", [
    ({"slots": [{"starts_at": "2027-03-20T19:00:00", "ends_at": "2027-03-20T18:00:00"}]}, "slots.0.ends_at"),
    ({"slots": []}, "slots"),
    ({"location": {"commune": "toulouse"}}, "location.commune"),
    ({"category": "rave"}, "category"),
    ({"theme": "nope"}, "theme"),
    ({"rrule": "FREQ=DAILY"}, "rrule"),
    ({"rrule": "FREQ=MONTHLY;UNTIL=20300101T000000"}, "rrule"),
    ({"rrule": "FREQ=SOMETIMES"}, "rrule"),
    ({"title": "  "}, "title"),
    ({"title": "t" * 161}, "title"),
    ({"description": "<img src=x onerror=alert(1)>"}, "description"),
    ({"description": "[x](javascript:alert(1))"}, "description"),
    ({"image_url": "ftp://example.org/a.png"}, "image_url"),
    ({"attendance_mode": "online"}, "online_url"),
    ({"free": False}, "price"),
    ({"contact": {"email": "not-an-email"}}, "contact.email"),
])
def test_bad_input_names_the_field(over, field):
    with pytest.raises(BadInput) as exc:
        domain.validate_event(make(**over), REF, NOW)
    assert exc.value.field == field


def test_markdown_is_rendered_and_sanitised():
    html = domain.render_markdown("# Titre\n\n**gras** [lien](https://example.org) ![i](https://x/y.png)")
    assert "<h3>Titre</h3>" in html and "<strong>gras</strong>" in html and 'rel="noopener noreferrer nofollow"' in html
    assert "<img" not in html


def test_search_text_is_accent_and_case_insensitive():
    fields = domain.validate_event(make(tags=["Musique"]), REF, NOW)
    assert "fete de la musique" in fields["search"] and "labege" in fields["search"]
    assert agenda_public.text_terms("FÊTE  de la Musique") == ["fete", "de", "la", "musique"]


def test_likely_duplicates_same_commune_overlapping_similar_title():
    a = {"_id": "a", "title": "Marché de Noël", "commune": "labege", "starts_at": NOW, "ends_at": NOW.replace(hour=18)}
    b = {**a, "_id": "b", "title": "Marche de noel !"}
    c = {**a, "_id": "c", "title": "Conseil municipal"}
    d = {**a, "_id": "d", "commune": "escalquens"}
    assert [x["id"] for x in domain.likely_duplicates(a, [a, b, c, d])] == ["b"]


def test_cursors_round_trip_and_refuse_garbage():
    assert agenda_public.parse_cursor(agenda_public.encode_cursor(40)) == ("o", 40)
    with pytest.raises(BadInput):
        agenda_public.parse_cursor("garbage!")


def test_the_read_model_filter_follows_the_query_rules():
    from datetime import timedelta

    from contracts.agenda import EventFilter

    def doc(i, **over):
        f = domain.validate_event(make(title=over.pop("title", f"Fête {i}")), REF, NOW)
        return {"_id": f"e{i}", **f, "moderation_state": "published", "visible_from": NOW - timedelta(days=1),
                "price_kind": "free", "updated_at": NOW, **over}

    docs = [doc(1), doc(2, title="Concert"), doc(3, moderation_state="submitted"),
            doc(4, visible_from=NOW + timedelta(days=1)), doc(5, moderation_state="withdrawn"),
            doc(6, commune="escalquens"), doc(7, price_kind="paid")]
    ids = lambda f: [d["_id"] for d in agenda_public.search(docs, f, NOW)]  # noqa: E731
    assert ids(EventFilter()) == ["e1", "e2", "e6", "e7"]
    assert ids(EventFilter(text="FETE", communes=["labege"])) == ["e1", "e7"]
    assert ids(EventFilter(include_removed=True, text="fête")) == ["e1", "e5", "e6", "e7"]
    assert ids(EventFilter(free=False)) == ["e7"]
    assert ids(EventFilter(starts_after=datetime(2027, 3, 21))) == []
    assert ids(EventFilter(starts_before=datetime(2027, 3, 20, 20))) == ["e1", "e2", "e6", "e7"]


def test_keyset_cursors_never_skip_an_event_that_changes_between_two_pages():
    """Partners' delta sync pages through `updatedSince` results: with offset cursors, an event of page 1
    updated before page 2 is fetched moves to the end and shifts the rest left, so one event is skipped."""
    from datetime import datetime, timedelta, timezone

    base = datetime(2026, 11, 1, tzinfo=timezone.utc)
    docs = [{"_id": f"e{i:02d}", "updated_at": base + timedelta(minutes=i // 2)} for i in range(30)]  # ties too
    page1, cursors1, more = agenda_public.keyset_page(docs, 10, None, by_update=True)
    assert [d["_id"] for d in page1] == [f"e{i:02d}" for i in range(10)] and more
    docs = [d for d in docs if d["_id"] != "e03"] + [{"_id": "e03", "updated_at": base + timedelta(hours=5)}]
    page2, cursors2, _ = agenda_public.keyset_page(docs, 10, cursors1[-1], by_update=True)
    assert [d["_id"] for d in page2] == [f"e{i:02d}" for i in range(10, 20)]
    rest, _, more = agenda_public.keyset_page(docs, 50, cursors2[-1], by_update=True)
    assert [d["_id"] for d in rest] == [f"e{i:02d}" for i in range(20, 30)] + ["e03"] and not more
    # Offset cursors (agents' lists) are still read; garbage is refused naming the field.
    assert [d["_id"] for d in agenda_public.keyset_page(docs, 2, agenda_public.encode_cursor(4), True)[0]] == ["e05", "e06"]
    with pytest.raises(BadInput) as exc:
        agenda_public.keyset_page(docs, 2, "bm9wZQ==", True)
    assert exc.value.field == "after"
