"""The consultation service's stored documents read as the domain's values (records.py): the clock's next instant,
why a ballot may not be cast now; and the ballot box's empty slots (casting.py), drawn at random, never twice."""
from datetime import datetime, timedelta, timezone

from contracts.consultation import BudgetPhase, BudgetSettings, Heading
from services.consultation import records
from services.consultation.casting import CHUNK, PIECE, Cast, Rounds, UrnState

NOW = datetime(2026, 3, 10, 12, tzinfo=timezone.utc)
H = timedelta(hours=1)


def budget(**states) -> dict:
    kinds = ("INFORMING", "ACCEPTING", "BALLOTING", "FINISHED")
    phases = [BudgetPhase(kind=k, starts_at=NOW + (i - 1) * H, ends_at=None if k == "FINISHED" else NOW + i * H)
              for i, k in enumerate(kinds)]
    settings = BudgetSettings(phases=phases, headings=[Heading(id="h", name="H", amount_cents=10_000)])
    return {"_id": "b", "kind": "BUDGET", "state": "OPEN", "opens_at": NOW - H, "closes_at": NOW + 2 * H,
            "budget": settings.model_dump(), **states}


def test_the_clock_is_due_at_the_next_move_of_a_consultation():
    survey = {"_id": "s", "kind": "SURVEY", "opens_at": NOW + H, "closes_at": NOW + 5 * H}
    assert records.next_due({**survey, "state": "DRAFT"}, NOW) is None, "a draft does not follow the clock"
    assert records.next_due({**survey, "state": "SCHEDULED"}, NOW) == (NOW + H).timestamp()
    assert records.next_due({**survey, "state": "OPEN"}, NOW) == (NOW + 5 * H).timestamp()
    assert records.next_due({**survey, "state": "CLOSED"}, NOW) is None
    assert records.next_due({**survey, "state": "ARCHIVED"}, NOW) is None


def test_a_budget_is_due_now_when_its_current_phase_is_not_announced_yet_then_at_the_next_phase():
    assert records.next_due(budget(announced_phase="INFORMING"), NOW) == NOW.timestamp(), "ACCEPTING began at NOW"
    assert records.next_due(budget(announced_phase="ACCEPTING"), NOW) == (NOW + H).timestamp()
    # Once closed, its last phases are still announced.
    assert records.next_due(budget(state="CLOSED", announced_phase="BALLOTING"), NOW + 2 * H) == (NOW + 2 * H).timestamp()


def test_why_a_ballot_may_not_be_cast_now():
    assert records.cast_refusal(budget(), NOW + 1.5 * H, "ballot") is None
    assert records.cast_refusal(budget(), NOW, "ballot") == ("Le vote n'est pas ouvert : le budget est en phase "
                                                              "« dépôt des projets ».")
    assert records.cast_refusal(budget(), NOW + 3 * H, "ballot") == ("La consultation n'est pas ouverte (elle est "
                                                                     "« close »).")
    secret = {"_id": "c", "kind": "CONSULTATION", "state": "OPEN", "opens_at": NOW - H, "closes_at": NOW + H}
    assert records.cast_refusal(secret, NOW, "response") is None
    assert records.cast_refusal({**secret, "state": "CLOSED"}, NOW, "response") is not None


class Slots:
    def __init__(self):
        self.added: list[list[str]] = []

    def add_slots(self, consultation_id, ids):
        self.added.append(list(ids))


def test_empty_slots_are_drawn_at_random_and_never_twice():
    store, urn = Slots(), UrnState()
    taken = [s for _ in range(40) for s in urn.take_slots(store, "c", 5)]
    added = [s for piece in store.added for s in piece]
    assert len(added) == CHUNK, "one chunk, added when the first round needed it"
    sizes = [len(piece) for piece in store.added]
    assert set(sizes[:-1]) == {PIECE} and 0 < sizes[-1] <= PIECE, "in pieces: other writes pass between them"
    assert len(set(taken)) == 200 and set(taken) <= set(added)
    assert taken != sorted(taken), "not in id order"
    order = {s: i for i, s in enumerate(added)}
    positions = [order[s] for s in taken]
    assert positions != sorted(positions), "not in the order they were stored in"
    assert max(positions) > CHUNK // 2, "drawn from the whole chunk, not from one end of it"
    assert urn.take_slots(store, "c", 0) == []


def test_two_ballots_of_one_voter_in_one_round_share_the_first_ones_fate():
    """A resend meeting its original in one round: refused as a second ballot once the first is written, but
    given the first's error when it is not (else a voter told "already voted" would never be counted)."""
    from contracts.errors import ServiceUnavailable

    ballot = {"consultation_id": "c", "receipt": "R"}
    first, second, other = (Cast(dict(ballot), v, {}, "ballot") for v in ("v1", "v1", "v2"))
    firsts, copies = Rounds._unique([first, second, other])
    assert firsts == [first, other] and copies == [(second, first)]
    Rounds._answer_copies(copies)
    assert second.error.code == "CONFLICT"
    first.error = ServiceUnavailable("Votre bulletin précédent est en cours d'enregistrement.")
    Rounds._answer_copies(copies)
    assert second.error is first.error, "the copy is retried as the first would be"


def test_a_draft_budget_has_no_phase_yet():
    assert records.phase_now(budget(state="DRAFT"), NOW) is None
    assert records.phase_now(budget(), NOW) == "ACCEPTING"


def test_a_voter_whose_participation_was_undone_meanwhile_is_asked_to_try_again():
    """Our insert met his key, then the recovery undid that crashed round's participation before we read it: he has
    not voted; he is told to try again, never that he already voted."""
    job = Cast({"consultation_id": "c", "receipt": "R"}, "v", {}, "ballot")
    Rounds._refuse(job, None)
    assert job.error.code == "SERVICE_UNAVAILABLE"
    Rounds._refuse(job, {"origin": "WEB"})
    assert job.error.code == "CONFLICT"
    Rounds._refuse(job, {"origin": "BOOTH"})
    assert job.error.code == "CONFLICT" and "bureau de vote" in job.error.message


def test_a_secret_response_once_cast_is_final_even_while_its_draft_is_being_deleted():
    """Under load, the draft of a secret response goes in the round after the one that cast it (casting.py):
    meanwhile the citizen is told his response was cast, not shown the draft as if still his to change."""
    from services.consultation import views

    draft = {"_id": "c:v", "draft": [{"question_id": "q", "text": "brouillon"}], "saved_ts": 1.0}
    cast = views.response(draft, "c", True, True)
    assert cast["status"] == "SUBMITTED" and cast["final"] is True and cast["answers"] == []
    assert views.response(draft, "c", True, False)["status"] == "DRAFT", "not cast yet: still his draft"
    assert views.response(draft, "c", False, True)["status"] == "DRAFT", "not secret: a draft replaces nothing yet"


def test_a_process_refuses_at_once_a_second_ballot_of_a_voter_it_wrote_a_ballot_for():
    """UrnState.remember: a voter whose ballot this process wrote is refused before the round touches the database, as
    the database would refuse him; the oldest voters are forgotten beyond the bound (then the database refuses)."""
    from contracts.errors import Conflict
    from services.consultation.casting import Cast, Rounds, UrnState

    state = UrnState(remembered=3)
    state.remember(["c1:a", "c1:b", "c1:c", "c1:d"])
    assert list(state.voted) == ["c1:b", "c1:c", "c1:d"], "the oldest forgotten first"
    jobs = [Cast({"consultation_id": "c1", "receipt": f"r{n}"}, voter, {}, "ballot")
            for n, voter in enumerate(["b", "a", "e"])]
    jobs.append(Cast({"consultation_id": "c2", "receipt": "r9"}, "b", {}, "ballot"))  # another consultation
    left = Rounds(None, state)._not_known(jobs)
    assert left == jobs[1:]
    assert isinstance(jobs[0].error, Conflict) and "déjà voté" in str(jobs[0].error)
    assert all(j.error is None for j in left)
