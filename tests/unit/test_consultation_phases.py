"""Pure rules of a budget's phases over time: the current phase at an instant in Europe/Paris (across daylight
saving), enabled phases joined end to start, the budget's window, the timer's announcements, an agent moving on, and
what stays written once a budget runs."""
from datetime import datetime

import pytest

from contracts.errors import BadInput, Conflict
from services.consultation import phases as P
from services.consultation.domain import to_utc
from tests.unit.consultation_samples import UTC, paris, phases

PHASES = P.validate_phases(phases())


def at(y, mo, d, h=0, mi=0) -> datetime:
    return to_utc(paris(y, mo, d, h, mi))


# -- phases -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("instant, phase", [
    (datetime(2026, 1, 4, 22, 59, tzinfo=UTC), None),                   # 4 Jan 23:59 Paris: not begun
    (datetime(2026, 1, 4, 23, 0, tzinfo=UTC), "INFORMING"),             # 5 Jan 00:00 Paris (UTC+1)
    (datetime(2026, 3, 1, 22, 59, tzinfo=UTC), "REVIEWING"),
    (datetime(2026, 3, 1, 23, 0, tzinfo=UTC), "SELECTING"),             # 2 Mar 00:00 Paris, winter time
    (datetime(2026, 4, 19, 21, 59, tzinfo=UTC), "VALUATING"),
    (datetime(2026, 4, 19, 22, 0, tzinfo=UTC), "PUBLISHING_PRICES"),    # 20 Apr 00:00 Paris, summer time
    (datetime(2026, 4, 30, 22, 0, tzinfo=UTC), "BALLOTING"),
    (datetime(2026, 5, 31, 21, 59, tzinfo=UTC), "BALLOTING"),
    (datetime(2026, 5, 31, 22, 0, tzinfo=UTC), "REVIEWING_BALLOTS"),
    (datetime(2027, 1, 1, tzinfo=UTC), "FINISHED"),                      # the last phase stays
])
def test_the_current_phase_follows_paris_dates_across_daylight_saving(instant, phase):
    assert P.current_phase(PHASES, instant) == phase


def test_disabled_phases_are_skipped_and_the_rest_must_join():
    skipping = phases(REVIEWING={"enabled": False})
    with pytest.raises(BadInput, match="« soutiens » doit commencer quand « dépôt des projets » finit") as err:
        P.validate_phases(skipping)
    assert err.value.field == "phases.SELECTING"
    joined = [p.model_copy(update={"starts_at": paris(2026, 2, 16)}) if p.kind == "SELECTING" else p for p in skipping]
    checked = P.validate_phases(joined)
    assert P.current_phase(checked, at(2026, 2, 20)) == "SELECTING"
    assert [p.kind for p in P.enabled_phases(checked)] == [k for k in P.PHASES if k != "REVIEWING"]


def test_only_some_phases_may_be_given_the_others_being_disabled():
    short = [p for p in phases(FINISHED={"starts_at": paris(2026, 6, 1)}) if p.kind in ("BALLOTING", "FINISHED")]
    checked = P.validate_phases(short)
    assert len(checked) == 9 and [p.kind for p in P.enabled_phases(checked)] == ["BALLOTING", "FINISHED"]
    assert P.current_phase(checked, at(2026, 4, 1)) is None


@pytest.mark.parametrize("override, field, words", [
    ({"BALLOTING": {"enabled": False}}, "phases.BALLOTING", "obligatoire"),
    ({"FINISHED": {"enabled": False}}, "phases.FINISHED", "obligatoire"),
    ({"ACCEPTING": {"ends_at": None}}, "phases.ACCEPTING", "date de fin obligatoire"),
    ({"ACCEPTING": {"starts_at": None}}, "phases.ACCEPTING", "date de début obligatoire"),
    ({"ACCEPTING": {"ends_at": paris(2026, 1, 19)}}, "phases.ACCEPTING", "la fin doit suivre le début"),
    ({"VALUATING": {"starts_at": paris(2026, 3, 22)}}, "phases.VALUATING", "doit commencer quand"),
])
def test_bad_phases_are_refused_naming_the_phase(override, field, words):
    with pytest.raises(BadInput) as err:
        P.validate_phases(phases(**override))
    assert err.value.field == field and words in err.value.message, err.value.message
    with pytest.raises(BadInput, match="donnée deux fois"):
        P.validate_phases(phases() + phases()[:1])


def test_a_budget_is_open_from_its_first_phase_to_the_end_of_its_vote():
    assert P.budget_window(PHASES) == (datetime(2026, 1, 4, 23, tzinfo=UTC), datetime(2026, 5, 31, 22, tzinfo=UTC))


def test_the_timer_announces_the_phase_the_budget_is_in_not_those_it_missed():
    assert P.due_phase_change(None, PHASES, at(2026, 1, 1)) is None
    first = P.due_phase_change(None, PHASES, at(2026, 1, 10))
    assert (first.previous, first.phase, first.starts_at) == (None, "INFORMING", at(2026, 1, 5))
    assert P.due_phase_change("INFORMING", PHASES, at(2026, 1, 10)) is None
    missed = P.due_phase_change("INFORMING", PHASES, at(2026, 3, 25))
    assert (missed.previous, missed.phase, missed.ends_at) == ("INFORMING", "VALUATING", at(2026, 4, 20))


def test_an_agent_moves_on_to_the_next_enabled_phase_now():
    now = at(2026, 1, 10, 14, 30)
    moved = P.advance_phase(PHASES, "ACCEPTING", now)
    assert P.current_phase(moved, now) == "ACCEPTING"
    by = {p.kind: p for p in moved}
    assert by["INFORMING"].ends_at == now and by["ACCEPTING"].starts_at == now
    assert by["ACCEPTING"].ends_at == at(2026, 2, 16), "the next phase keeps its end"
    P.validate_phases(moved)  # still joined
    with pytest.raises(Conflict, match="La phase suivante est « dépôt des projets »"):
        P.advance_phase(PHASES, "BALLOTING", now)
    assert P.current_phase(P.advance_phase(PHASES, "INFORMING", at(2026, 1, 1)), at(2026, 1, 1)) == "INFORMING"
    with pytest.raises(Conflict, match="dernière phase"):
        P.advance_phase(PHASES, "FINISHED", at(2026, 7, 1))
    short = P.validate_phases([p.model_copy(update={"ends_at": paris(2026, 1, 6)}) if p.kind == "INFORMING" else
                               p.model_copy(update={"starts_at": paris(2026, 1, 6)}) if p.kind == "ACCEPTING" else p
                               for p in phases()])
    assert P.current_phase(short, at(2026, 1, 5, 12)) == "INFORMING"
    late = [p.model_copy(update={"ends_at": at(2026, 1, 5, 13)}) if p.kind == "ACCEPTING" else p for p in short]
    with pytest.raises(Conflict, match="finirait avant de commencer"):
        P.advance_phase(late, "ACCEPTING", at(2026, 1, 5, 14))


def test_what_has_happened_in_a_running_budget_stays_written():
    now = at(2026, 3, 10)  # during SELECTING
    future = [p.model_copy(update={"ends_at": paris(2026, 6, 8)}) if p.kind == "BALLOTING" else
              p.model_copy(update={"starts_at": paris(2026, 6, 8)}) if p.kind == "REVIEWING_BALLOTS" else p
              for p in PHASES]
    P.check_phase_edit(PHASES, P.normalise_phases(future), now)
    moved_start = [p.model_copy(update={"starts_at": at(2026, 1, 6)}) if p.kind == "INFORMING" else p for p in PHASES]
    with pytest.raises(Conflict, match="a commencé"):
        P.check_phase_edit(PHASES, moved_start, now)
    moved_end = [p.model_copy(update={"ends_at": at(2026, 1, 20)}) if p.kind == "INFORMING" else p for p in PHASES]
    with pytest.raises(Conflict, match="est finie"):
        P.check_phase_edit(PHASES, moved_end, now)
    ends_past = [p.model_copy(update={"ends_at": at(2026, 3, 5)}) if p.kind == "SELECTING" else p for p in PHASES]
    with pytest.raises(BadInput, match="à venir"):
        P.check_phase_edit(PHASES, ends_past, now)
