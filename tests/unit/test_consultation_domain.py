"""Pure consultation rules: the window on the clock (Europe/Paris, daylight saving), states and agents' actions,
what an update may change, who sees what, one participation per citizen, identities, cursors, euros, contracts."""
from datetime import datetime, timedelta, timezone

import pytest

from contracts import build_envelope, event_contracts, parse_envelope, rpc_contracts
from contracts.consultation import ConsultationInput, Meeting, Scope
from contracts.errors import BadInput, Conflict, Forbidden
from services.consultation import domain
from tests.unit.consultation_samples import COMMUNES, budget

UTC = timezone.utc
# Saturday 28 March 2026 10:00 in Paris (UTC+1) to Monday 30 March 10:00 (UTC+2): clocks go forward on the 29th.
OPENS = domain.to_utc(datetime(2026, 3, 28, 10, 0))
CLOSES = domain.to_utc(datetime(2026, 3, 30, 10, 0))


# -- time --------------------------------------------------------------------------------------------
def test_paris_wall_time_becomes_utc_across_daylight_saving():
    assert OPENS == datetime(2026, 3, 28, 9, 0, tzinfo=UTC)
    assert CLOSES == datetime(2026, 3, 30, 8, 0, tzinfo=UTC)
    assert CLOSES - OPENS == timedelta(hours=47), "the night of the change has 23 hours"
    aware = datetime(2026, 7, 1, 12, 0, tzinfo=timezone(timedelta(hours=2)))
    assert domain.to_utc(aware) == datetime(2026, 7, 1, 10, 0, tzinfo=UTC)
    assert domain.french_datetime(CLOSES) == "30/03/2026 à 10:00"


def test_wall_times_that_do_not_exist_or_happen_twice_are_read_as_documented():
    # 29 March 2026 02:30 does not exist in Paris: read with the winter offset (= 03:30 summer time).
    assert domain.to_utc(datetime(2026, 3, 29, 2, 30)) == datetime(2026, 3, 29, 1, 30, tzinfo=UTC)
    # 25 October 2026 02:30 happens twice: its first occurrence (summer time), the earlier instant.
    assert domain.to_utc(datetime(2026, 10, 25, 2, 30)) == datetime(2026, 10, 25, 0, 30, tzinfo=UTC)


# -- the clock and the states -----------------------------------------------------------------------------
@pytest.mark.parametrize("now, expected", [
    (datetime(2026, 3, 28, 8, 59, tzinfo=UTC), "SCHEDULED"),
    (datetime(2026, 3, 28, 9, 0, tzinfo=UTC), "OPEN"),          # 10:00 Paris: opens on the minute
    (datetime(2026, 3, 30, 7, 59, tzinfo=UTC), "OPEN"),         # 09:59 Paris (summer time)
    (datetime(2026, 3, 30, 8, 0, tzinfo=UTC), "CLOSED"),        # 10:00 Paris, not 11:00
    (datetime(2026, 4, 30, tzinfo=UTC), "CLOSED"),
])
def test_a_scheduled_consultation_follows_the_clock(now, expected):
    assert domain.state_at("SCHEDULED", OPENS, CLOSES, now) == expected


def test_a_timer_that_was_down_announces_every_missed_transition_in_order():
    moves = domain.clock_transitions("SCHEDULED", OPENS, CLOSES, datetime(2026, 4, 2, tzinfo=UTC))
    assert [(m.before, m.after, m.at) for m in moves] == [("SCHEDULED", "OPEN", OPENS), ("OPEN", "CLOSED", CLOSES)]
    assert [m.event_type for m in moves] == ["consultation.opened", "consultation.closed"]
    assert domain.clock_transitions("OPEN", OPENS, CLOSES, OPENS + timedelta(hours=1)) == []


@pytest.mark.parametrize("state", ["DRAFT", "CLOSED", "RESULTS_PUBLISHED", "ARCHIVED"])
def test_only_scheduled_and_open_consultations_follow_the_clock(state):
    assert domain.clock_transitions(state, OPENS, CLOSES, CLOSES + timedelta(days=1)) == []


def test_the_full_life_of_a_consultation_by_agents_actions():
    now = datetime(2026, 3, 1, tzinfo=UTC)
    acted = domain.apply_action("DRAFT", "schedule", OPENS, CLOSES, now)
    assert acted.state == "SCHEDULED" and acted.transition.event_type == "consultation.scheduled"
    assert domain.apply_action("SCHEDULED", "unschedule", OPENS, CLOSES, now).state == "DRAFT"
    assert domain.apply_action("SCHEDULED", "unschedule", OPENS, CLOSES, now).transition.event_type is None
    early = domain.apply_action("SCHEDULED", "open", OPENS, CLOSES, now)
    assert early.state == "OPEN" and early.opens_at == now, "opening early moves the window"
    during = OPENS + timedelta(hours=3)
    closed = domain.apply_action("OPEN", "close", OPENS, CLOSES, during)
    assert closed.state == "CLOSED" and closed.closes_at == during
    assert domain.apply_action("CLOSED", "publish_results", OPENS, during, CLOSES).state == "RESULTS_PUBLISHED"
    assert domain.apply_action("RESULTS_PUBLISHED", "archive", OPENS, during, CLOSES).state == "ARCHIVED"


@pytest.mark.parametrize("state, action", [
    ("DRAFT", "open"), ("DRAFT", "publish_results"), ("OPEN", "publish_results"), ("OPEN", "archive"),
    ("SCHEDULED", "close"), ("CLOSED", "open"), ("ARCHIVED", "schedule"), ("RESULTS_PUBLISHED", "close"),
])
def test_actions_that_do_not_apply_are_conflicts_naming_the_state(state, action):
    with pytest.raises(Conflict) as err:
        domain.apply_action(state, action, OPENS, CLOSES, OPENS)
    assert domain.STATE_LABELS[state] in err.value.message and err.value.field == "state"


def test_scheduling_needs_a_whole_window_closing_in_the_future():
    now = datetime(2026, 3, 1, tzinfo=UTC)
    with pytest.raises(BadInput, match="ouverture") as err:
        domain.apply_action("DRAFT", "schedule", None, CLOSES, now)
    assert err.value.field == "opens_at"
    with pytest.raises(BadInput, match="doit suivre"):
        domain.apply_action("DRAFT", "schedule", CLOSES, OPENS, now)
    with pytest.raises(BadInput, match="passée"):
        domain.apply_action("DRAFT", "schedule", OPENS, CLOSES, CLOSES + timedelta(seconds=1))
    with pytest.raises(Conflict, match="clôture est passée"):
        domain.apply_action("SCHEDULED", "open", OPENS, CLOSES, CLOSES)


# -- the consultation's fields --------------------------------------------------------------------------
def consultation(**kw) -> ConsultationInput:
    base = dict(title="  Horaires de la piscine  ", kind="SURVEY", opens_at=datetime(2026, 3, 28, 10),
                closes_at=datetime(2026, 3, 30, 10))
    base.update(kw)
    return ConsultationInput(**base)


def test_a_consultation_is_stored_with_utc_times_and_its_scope():
    stored = domain.validate_consultation(consultation(scope=Scope(kind="COMMUNES", communes=["labege", "auzielle"])),
                                          COMMUNES)
    assert stored["title"] == "Horaires de la piscine" and stored["opens_at"] == OPENS
    assert stored["scope"] == {"kind": "COMMUNES", "communes": ["auzielle", "labege"]}
    assert stored["secret"] is False
    as_budget = consultation(kind="BUDGET", budget=budget(), opens_at=None, closes_at=None)
    assert domain.validate_consultation(as_budget, COMMUNES)["secret"] is True


@pytest.mark.parametrize("kw, field, words", [
    ({"title": "  "}, "title", "obligatoire"),
    ({"title": "x" * 161}, "title", "160 caractères"),
    ({"summary": "<script>alert(1)</script>"}, "summary", "HTML"),
    ({"scope": Scope(kind="COMMUNES")}, "scope.communes", "au moins une"),
    ({"scope": Scope(kind="COMMUNES", communes=["toulouse"])}, "scope.communes", "pas une commune du Sicoval"),
    ({"scope": Scope(kind="TERRITORY", communes=["labege"])}, "scope.communes", "ne listez pas"),
    ({"kind": "BUDGET"}, "budget", "budget participatif"),
    ({"budget": budget()}, "budget", "budget participatif"),
    ({"kind": "BUDGET", "budget": budget()}, "opens_at", "avec ses phases"),
    ({"closes_at": datetime(2026, 3, 28, 9)}, "closes_at", "doit suivre"),
    ({"meetings": [Meeting(title="Réunion", starts_at=datetime(2026, 3, 29, 18), ends_at=datetime(2026, 3, 29, 20),
                           commune="paris")]}, "meetings.0.commune", "pas une commune"),
])
def test_bad_consultation_fields_name_the_field_in_french(kw, field, words):
    with pytest.raises(BadInput) as err:
        domain.validate_consultation(consultation(**kw), COMMUNES)
    assert err.value.field == field and words in err.value.message


def test_what_an_update_may_change_depends_on_the_state():
    old = {"title": "A", "audience": "PUBLIC", "closes_at": CLOSES, "scope": {"kind": "TERRITORY"}}
    assert domain.check_update("DRAFT", old, {**old, "audience": "PANEL"}, OPENS) == ["audience"]
    assert domain.check_update("OPEN", old, {**old, "title": "B", "closes_at": CLOSES + timedelta(days=2)}, OPENS) == [
        "title", "closes_at"]
    with pytest.raises(Conflict, match="le public ne peut plus changer") as err:
        domain.check_update("OPEN", old, {**old, "audience": "PANEL"}, OPENS)
    assert err.value.field == "audience"
    with pytest.raises(BadInput, match="à venir"):
        domain.check_update("OPEN", old, {**old, "closes_at": OPENS - timedelta(hours=1)}, OPENS)
    with pytest.raises(Conflict, match="la clôture"):
        domain.check_update("CLOSED", old, {**old, "closes_at": CLOSES + timedelta(days=1)}, CLOSES)
    assert domain.check_update("CLOSED", old, {**old, "title": "Typo"}, CLOSES) == ["title"]
    with pytest.raises(Conflict):
        domain.check_update("ARCHIVED", old, {**old, "title": "Typo"}, CLOSES)


# -- who sees what -------------------------------------------------------------------------------------
def test_drafts_are_the_agents_and_results_hide_until_published_for_everyone():
    assert "DRAFT" in domain.visible_states("agent") and "DRAFT" not in domain.visible_states("citizen")
    assert "DRAFT" not in domain.visible_states("public") and "OPEN" in domain.visible_states("public")
    for state in ("DRAFT", "SCHEDULED", "OPEN", "CLOSED"):
        assert not domain.results_visible(state, None)
    assert domain.results_visible("RESULTS_PUBLISHED", CLOSES)
    assert domain.results_visible("ARCHIVED", CLOSES) and not domain.results_visible("ARCHIVED", None)
    assert domain.participation_visible("OPEN") and not domain.participation_visible("SCHEDULED")


# -- taking part ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("role, state, audience, member, error, words", [
    ("public", "OPEN", "PUBLIC", False, Forbidden, "Connectez-vous"),
    ("organizer", "OPEN", "PUBLIC", False, Forbidden, "organisation ne votent pas"),
    ("agent", "OPEN", "PUBLIC", False, Forbidden, "Seuls les citoyens"),
    ("citizen", "CLOSED", "PUBLIC", False, Conflict, "n'est pas ouverte"),
    ("citizen", "OPEN", "PANEL", False, Forbidden, "membres de son panel"),
])
def test_who_may_take_part(role, state, audience, member, error, words):
    with pytest.raises(error, match=words):
        domain.check_can_take_part(role, state, audience, member)


def test_citizens_and_panel_members_take_part_while_open():
    domain.check_can_take_part("citizen", "OPEN", "PUBLIC", False)
    domain.check_can_take_part("citizen", "OPEN", "PANEL", True)


def test_one_participation_per_citizen_whatever_the_channel():
    domain.check_participation(None, "WEB", final=True)
    domain.check_participation("WEB", "WEB", final=False)  # a survey response changed before closing
    with pytest.raises(Conflict, match="vote secret est définitif"):
        domain.check_participation("WEB", "WEB", final=True)
    with pytest.raises(Conflict, match="déjà voté au bureau de vote") as err:
        domain.check_participation("BOOTH", "WEB", final=False)
    assert err.value.field == "participation"
    with pytest.raises(Conflict, match="par courrier"):
        domain.check_participation("LETTER", "WEB", final=False)
    with pytest.raises(Conflict, match="Cette personne a déjà voté en ligne"):
        domain.check_participation("WEB", "BOOTH", final=False)
    with pytest.raises(Conflict, match="au bureau de vote"):
        domain.check_participation("BOOTH", "LETTER", final=False)


def test_participation_counts_offline_voters_once():
    assert domain.participation_total(web=100, booth=20, letter=5, paper_ballots=25) == 125
    assert domain.participation_total(web=100, booth=0, letter=0, paper_ballots=40) == 140, "totals without check-ins"
    assert domain.participation_total(web=100, booth=30, letter=0, paper_ballots=28) == 130


# -- identities ------------------------------------------------------------------------------------------
def test_emails_and_phones_are_normalised_then_only_keyed_hashes_kept():
    assert domain.normalise_email("  Jeanne.Dupont@Exemple.FR ") == "jeanne.dupont@exemple.fr"
    assert domain.normalise_email("Jeanne Dupont <jd@mairie-labege.fr>") == "jd@mairie-labege.fr"
    assert domain.normalise_email("jeanne@localhost") is None and domain.normalise_email("@x.fr") is None
    assert domain.normalise_phone("06 12 34 56 78") == "+33612345678"
    assert domain.normalise_phone("0033 6 12 34 56 78") == "+33612345678"
    assert domain.normalise_phone("+32 470 12 34 56") == "+32470123456"
    assert domain.normalise_phone("12") is None
    key = domain.identity_key(b"s" * 32, "email", "jd@mairie-labege.fr")
    assert len(key) == 64 and "jd" not in key
    assert key == domain.identity_key(b"s" * 32, "email", "jd@mairie-labege.fr")
    assert key != domain.identity_key(b"t" * 32, "email", "jd@mairie-labege.fr"), "keyed: no secret, no test"


def test_a_pasted_panel_list_gives_valid_addresses_once_and_the_lines_to_fix():
    valid, invalid = domain.parse_panel_emails(["a@x.fr, B@X.fr; c@x.fr", "Jeanne <a@x.fr>", "pas-une-adresse", ""])
    assert valid == ["a@x.fr", "b@x.fr", "c@x.fr"] and invalid == ["pas-une-adresse"]


# -- cursors and euros ------------------------------------------------------------------------------------
def test_keyset_cursors_round_trip_and_bad_ones_are_refused():
    cursor = domain.encode_cursor(1774688400.0, "c-12")
    assert domain.decode_cursor(cursor, 2) == (1774688400.0, "c-12")
    assert domain.decode_cursor(None, 2) is None
    for bad in ("not base64!", domain.encode_cursor("a"), "e30="):
        with pytest.raises(BadInput, match="Curseur invalide") as err:
            domain.decode_cursor(bad, 2)
        assert err.value.field == "after"


def test_amounts_in_cents_are_written_in_french():
    assert domain.format_euros(150_000_00) == "150\u202f000\u00a0€"
    assert domain.format_euros(1_234_56) == "1\u202f234,56\u00a0€"
    assert domain.format_euros(5) == "0,05\u00a0€" and domain.format_euros(-100) == "-1\u00a0€"


# -- contracts -------------------------------------------------------------------------------------------
def test_every_consultation_event_is_the_services_own_and_round_trips():
    events = {t for t in event_contracts() if t.startswith("consultation.")}
    assert {"consultation.opened", "consultation.closed", "consultation.results_published",
            "consultation.budget_phase_changed", "consultation.project_submitted"} <= events
    facts = {"id": "c1", "title": "Piscine", "kind": "SURVEY", "audience": "PUBLIC", "scope": {"kind": "TERRITORY"},
             "secret": False, "opens_at": OPENS, "closes_at": CLOSES, "url": "/consultations/c1", "participants": 12}
    envelope, data = parse_envelope(build_envelope("consultation.closed", facts, "consultation"))
    assert data.participants == 12 and data.scope.kind == "TERRITORY"


def test_every_act_of_the_issue_has_an_rpc_contract():
    names = {n.split(".", 1)[1] for n in rpc_contracts() if n.startswith("consultation.")}
    assert {"ping", "create_consultation", "update_consultation", "schedule_consultation", "open_consultation",
            "close_consultation", "publish_results", "archive_consultation", "add_question", "reorder_questions",
            "save_response", "submit_response", "propose_project", "support_project", "assess_project",
            "price_project", "cast_budget_ballot", "import_panel_members", "enter_paper_ballots",
            "enter_paper_totals", "check_in_voter", "list_consultations", "get_consultation", "my_participations",
            "consultation_results", "list_projects"} <= names
