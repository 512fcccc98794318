"""Pure participatory budget rules: the budget's settings, projects' moderation, supports and assessment, both voting
rules with their edge cases, paper totals, and the winners with ties (phases: test_consultation_phases.py)."""
import random

import pytest

from contracts.consultation import (EnterPaperTotals, Heading, HeadingBallot, OptionTotal, ProjectInput, ProjectTotal,
                                    VotingRule)
from contracts.errors import BadInput, Conflict
from services.consultation import budget as B
from tests.unit.consultation_samples import COMMUNES, budget, project

KNAPSACK = B.validate_budget(budget(), COMMUNES)
LABEGE = KNAPSACK.headings[0]


# -- the budget's settings -----------------------------------------------------------------------------------
def test_a_budget_normalises_its_headings_and_knows_where_communes_vote():
    assert [h.id for h in KNAPSACK.headings] == ["labege", "escalquens", "sicoval"]
    assert B.heading_of_commune(KNAPSACK, "labege") == "labege"
    assert B.heading_of_commune(KNAPSACK, "auzielle") == "sicoval", "no heading of its own: the territory's"
    half = budget(headings=[Heading(id="h", name="H", communes=["labege"], amount_cents=100_000_01)],
                  rule=VotingRule(min_share_percent=70))
    assert B.min_share_cents(half, half.headings[0]) == 70_000_01, "rounded up: 70 000,007 € asks 70 000,01 €"
    assert B.min_share_cents(KNAPSACK, LABEGE) is None


@pytest.mark.parametrize("settings, field, words", [
    (budget(headings=[Heading(id="a", name="A", communes=["labege"], amount_cents=100),
                      Heading(id="a", name="B", amount_cents=100)]), "headings.a", "Deux sections"),
    (budget(headings=[Heading(id="a", name="A", communes=["labege"], amount_cents=100),
                      Heading(id="b", name="B", communes=["labege"], amount_cents=100)]), "headings.b", "deux sections"),
    (budget(headings=[Heading(id="a", name="A", communes=["toulouse"], amount_cents=100)]), "headings.a", "pas une commune"),
    (budget(headings=[Heading(id="a", name="A", amount_cents=99)]), "headings.a", "un euro au moins"),
    (budget(headings=[Heading(id="a", name=" ", amount_cents=100)]), "headings.a", "a un nom"),
    (budget(headings=[Heading(id="a", name="A", amount_cents=100, max_projects=2)]), "headings.a", "approbation"),
    (budget(VotingRule(kind="KNAPSACK", max_projects=3)), "rule", "pas un nombre de projets"),
    (budget(VotingRule(kind="APPROVAL")), "rule", "combien de projets"),
    (budget(VotingRule(kind="APPROVAL", max_projects=3, min_share_percent=70)), "rule", "pas de part minimale"),
    (budget(VotingRule(kind="APPROVAL", max_projects=3, min_projects=4)), "rule", "impossible"),
    (budget(max_headings_per_voter=4), "max_headings_per_voter", "3 section(s) au plus"),
    (budget(tie_break="LOT"), "tie_break_seed", "graine publique"),
])
def test_bad_budget_settings_are_refused(settings, field, words):
    with pytest.raises(BadInput) as err:
        B.validate_budget(settings, COMMUNES)
    assert err.value.field == field and words in err.value.message, err.value.message


# -- projects ------------------------------------------------------------------------------------------
def proposal(**kw) -> ProjectInput:
    base = dict(title="  Un composteur partagé ", description="Au square, pour les voisins.", heading_id="labege",
                estimated_cost_cents=3_000_00)
    base.update(kw)
    return ProjectInput(**base)


def test_a_proposal_is_checked_against_its_heading():
    stored = B.validate_project(proposal(), KNAPSACK)
    assert stored["title"] == "Un composteur partagé" and stored["heading_id"] == "labege"


@pytest.mark.parametrize("kw, field, words", [
    ({"title": "Parc"[:3]}, "title", "4 caractères au moins"),
    ({"description": "  "}, "description", "quelques lignes"),
    ({"heading_id": "paris"}, "heading_id", "Section inconnue"),
    ({"estimated_cost_cents": 0}, "estimated_cost_cents", "un euro au moins"),
    ({"estimated_cost_cents": 100_000_01}, "estimated_cost_cents", "plus que le budget de la section « Labège »"),
])
def test_bad_proposals_are_refused(kw, field, words):
    with pytest.raises(BadInput) as err:
        B.validate_project(proposal(**kw), KNAPSACK)
    assert err.value.field == field and words in err.value.message, err.value.message


def test_proposing_and_editing_only_while_proposals_are_open():
    B.check_proposing("ACCEPTING")
    for phase in (None, "INFORMING", "SELECTING"):
        with pytest.raises(Conflict, match="dépôt de projets n'est pas ouvert"):
            B.check_proposing(phase)
    with pytest.raises(Conflict, match="Seul l'auteur"):
        B.check_author_edit("ACCEPTING", is_author=False)


def test_moderation_like_agenda_events_with_a_reason_to_reject():
    submitted = project("p", "labege", None, moderation="SUBMITTED", feasibility="UNDECIDED", selected=False)
    assert B.moderate(submitted, "APPROVE", None, "ACCEPTING") == "APPROVED"
    with pytest.raises(BadInput, match="donnez la raison") as err:
        B.moderate(submitted, "REJECT", "  ", "REVIEWING")
    assert err.value.field == "reason"
    assert B.moderate(submitted, "REJECT", "Hors compétence du Sicoval", "REVIEWING") == "REJECTED"
    with pytest.raises(Conflict, match="déjà « accepté »"):
        B.moderate(project("p", "labege", None, selected=False), "APPROVE", None, "REVIEWING")
    with pytest.raises(Conflict, match="modération est close"):
        B.moderate(submitted, "APPROVE", None, "BALLOTING")
    with pytest.raises(Conflict, match="retirez-le d'abord du bulletin"):
        B.moderate(project("p", "labege", 1000), "REJECT", "Doublon", "VALUATING")


def test_supports_during_selecting_in_the_voters_headings():
    p = project("p", "labege", None, feasibility="UNDECIDED", selected=False)
    B.check_support(p, "SELECTING", set(), 1)
    B.check_support(p, "SELECTING", {"labege"}, 1)
    with pytest.raises(BadInput, match="une seule section"):
        B.check_support(p, "SELECTING", {"escalquens"}, 1)
    B.check_support(p, "SELECTING", {"escalquens"}, 2)
    with pytest.raises(Conflict, match="soutiens ne sont pas ouverts"):
        B.check_support(p, "BALLOTING", set(), 1)
    for bad in (project("p", "labege", None, moderation="REJECTED"), project("p", "labege", None, feasibility="UNFEASIBLE")):
        with pytest.raises(Conflict, match="ne peut pas être soutenu"):
            B.check_support(bad, "SELECTING", set(), 1)


def test_assessment_during_valuating():
    p = project("p", "labege", None, feasibility="UNDECIDED", selected=False)
    assert B.assess(p, "FEASIBLE", None, 25_000_00, LABEGE, "VALUATING") == {
        "feasibility": "FEASIBLE", "unfeasibility_explanation": None, "price_cents": 25_000_00}
    assert "price_cents" not in B.assess(p, "FEASIBLE", None, None, LABEGE, "VALUATING"), "priced later"
    assert B.assess(p, "UNFEASIBLE", " Terrain privé ", None, LABEGE, "VALUATING")["unfeasibility_explanation"] == \
        "Terrain privé"
    with pytest.raises(BadInput, match="expliquez pourquoi") as err:
        B.assess(p, "UNFEASIBLE", None, None, LABEGE, "VALUATING")
    assert err.value.field == "explanation"
    with pytest.raises(BadInput, match="pas de prix"):
        B.assess(p, "UNFEASIBLE", "Non", 10, LABEGE, "VALUATING")
    with pytest.raises(BadInput, match="plus que le budget de la section"):
        B.assess(p, "FEASIBLE", None, 100_000_01, LABEGE, "VALUATING")
    with pytest.raises(Conflict, match="pas lieu maintenant"):
        B.assess(p, "FEASIBLE", None, None, LABEGE, "SELECTING")
    with pytest.raises(Conflict, match="accepté à la modération"):
        B.assess(project("p", "labege", None, moderation="SUBMITTED"), "FEASIBLE", None, None, LABEGE, "VALUATING")
    with pytest.raises(Conflict, match="retirez-le d'abord"):
        B.assess(project("p", "labege", 1000), "UNDECIDED", None, None, LABEGE, "VALUATING")


def test_pricing_and_drawing_up_the_ballot():
    B.check_price(project("p", "labege", None, selected=False), 5_000_00, LABEGE, "VALUATING")
    with pytest.raises(Conflict, match="Seul un projet faisable"):
        B.check_price(project("p", "labege", None, feasibility="UNDECIDED"), 5_000_00, LABEGE, "VALUATING")
    with pytest.raises(BadInput, match="plus que le budget"):
        B.check_price(project("p", "labege", None), 100_000_01, LABEGE, "VALUATING")
    B.check_selection(project("p", "labege", 5000, selected=False), True, "PUBLISHING_PRICES")
    with pytest.raises(BadInput, match="accepté, faisable et chiffré") as err:
        B.check_selection(project("p", "labege", None, selected=False), True, "VALUATING")
    assert err.value.field == "p"
    with pytest.raises(Conflict, match="ne change plus"):
        B.check_selection(project("p", "labege", 5000), False, "BALLOTING")


# -- ballots ---------------------------------------------------------------------------------------------
PROJECTS = {p.id: p for p in [
    project("l1", "labege", 60_000), project("l2", "labege", 40_000), project("l3", "labege", 30_000),
    project("l4", "labege", 10_000), project("l5", "labege", None, feasibility="UNFEASIBLE"),
    project("l6", "labege", 5_000, selected=False), project("l7", "labege", 5_000, moderation="REJECTED"),
    project("e1", "escalquens", 20_000), project("s1", "sicoval", 150_000)]}


def ballot(**headings) -> list[HeadingBallot]:
    return [HeadingBallot(heading_id=h, project_ids=list(ids)) for h, ids in headings.items()]


def cast(settings, b, **kw):
    return B.validate_ballot(settings, PROJECTS, b, phase=kw.pop("phase", "BALLOTING"), **kw)


def refused(settings, b, field, words, error=BadInput, **kw):
    with pytest.raises(error) as err:
        cast(settings, b, **kw)
    assert err.value.field == field, err.value.message
    assert words in err.value.message, err.value.message
    return err.value.message


def test_knapsack_accepts_up_to_the_headings_amount_exactly():
    assert cast(KNAPSACK, ballot(labege=["l2", "l1"])) == ballot(labege=["l1", "l2"])
    message = refused(KNAPSACK, ballot(labege=["l1", "l2", "l4"]), "headings.labege", "coûte 110\u202f000\u00a0€")
    assert "plus que les 100\u202f000\u00a0€ de la section" in message


def test_knapsack_minimum_share_like_decidims_seventy_percent():
    settings = B.validate_budget(budget(VotingRule(min_share_percent=70)), COMMUNES)
    assert cast(settings, ballot(labege=["l1", "l4"]))  # 70 000 € of 100 000 €: exactly the share
    refused(settings, ballot(labege=["l3", "l4"]), "headings.labege",
            "au moins 70 % du budget de la section, soit 70\u202f000\u00a0€ (elle fait 40\u202f000\u00a0€)")


def test_approval_counts_projects_not_money():
    approval = B.validate_budget(budget(VotingRule(kind="APPROVAL", max_projects=2)), COMMUNES)
    assert cast(approval, ballot(labege=["l1", "l2"]))
    refused(approval, ballot(labege=["l1", "l2", "l3"]), "headings.labege", "au plus 2 projets dans « Labège » (3 choisis)")
    assert cast(approval, ballot(sicoval=["s1"])), "a price above nothing: approval ignores money"
    wider = B.validate_budget(budget(VotingRule(kind="APPROVAL", max_projects=2, min_projects=2), headings=[
        Heading(id="labege", name="Labège", communes=["labege"], amount_cents=100_000_00, max_projects=3)]), COMMUNES)
    assert cast(wider, ballot(labege=["l1", "l2", "l3"])), "the heading's own N"
    refused(wider, ballot(labege=["l1"]), "headings.labege", "au moins 2 projets dans « Labège » (1 choisi)")


@pytest.mark.parametrize("b, field, words", [
    (ballot(labege=["l1"], escalquens=["e1"]), "headings", "On vote dans une seule section. Votre bulletin en compte 2"),
    (ballot(paris=["l1"]), "headings.paris", "Section inconnue"),
    (ballot(labege=[]), "headings.labege", "au moins un projet dans la section « Labège »"),
    (ballot(labege=["l1", "l1"]), "headings.labege", "deux fois"),
    (ballot(labege=["zz"]), "headings.labege.zz", "Projet inconnu"),
    (ballot(labege=["e1"]), "headings.labege.e1", "est dans la section « Escalquens », pas dans « Labège »"),
    (ballot(labege=["l5"]), "headings.labege.l5", "n'est pas soumis au vote"),
    (ballot(labege=["l6"]), "headings.labege.l6", "n'est pas soumis au vote"),
    (ballot(labege=["l7"]), "headings.labege.l7", "n'est pas soumis au vote"),
    ([], "headings", "Choisissez au moins un projet."),
])
def test_ballots_refused_with_consuls_reasons_in_french(b, field, words):
    refused(KNAPSACK, b, field, words)


def test_a_heading_appears_once_and_the_voters_heading_is_kept_when_known():
    refused(KNAPSACK, ballot(labege=["l1"]) + ballot(labege=["l2"]), "headings.labege", "figure deux fois")
    refused(KNAPSACK, ballot(escalquens=["e1"]), "headings.escalquens", "on vote dans celle de sa commune",
            voter_headings={"labege", "sicoval"})
    two = B.validate_budget(budget(max_headings_per_voter=2), COMMUNES)
    assert len(cast(two, ballot(escalquens=["e1"], labege=["l1"]))) == 2


def test_no_ballot_outside_the_vote_but_paper_entered_after_it():
    refused(KNAPSACK, ballot(labege=["l1"]), "phase", "le budget est en phase « dépouillement »", Conflict,
            phase="REVIEWING_BALLOTS")
    assert cast(KNAPSACK, ballot(labege=["l1"]), phase=None)


# -- paper totals --------------------------------------------------------------------------------------
def totals(ballots=100, blank=2, null=3, **votes) -> EnterPaperTotals:
    return EnterPaperTotals(consultation_id="b1", booth_id="mairie-labege", sheet_ref="1", ballots=ballots,
                            blank=blank, null=null, projects=[ProjectTotal(project_id=k, votes=v) for k, v in votes.items()])


def test_paper_totals_are_checked_for_what_cannot_be():
    assert B.validate_project_totals(KNAPSACK, PROJECTS, totals(l1=50, l2=45, l4=90)) == {"l1": 50, "l2": 45, "l4": 90}
    with pytest.raises(BadInput, match="plus que de bulletins"):
        B.validate_project_totals(KNAPSACK, PROJECTS, totals(ballots=4))
    with pytest.raises(BadInput, match="96 voix pour 95 bulletins exprimés") as err:
        B.validate_project_totals(KNAPSACK, PROJECTS, totals(l1=96))
    assert err.value.field == "projects.l1"
    with pytest.raises(BadInput, match="pas sur le bulletin"):
        B.validate_project_totals(KNAPSACK, PROJECTS, totals(l6=1))
    # 95 valid ballots can spend at most 95 x 100 000 € in Labège: 95 x 60 000 + 95 x 40 000 + 1 x 10 000 cannot be.
    with pytest.raises(BadInput, match="Vérifiez les chiffres") as err:
        B.validate_project_totals(KNAPSACK, PROJECTS, totals(l1=95, l2=95, l4=1))
    assert err.value.field == "headings.labege"
    approval = B.validate_budget(budget(VotingRule(kind="APPROVAL", max_projects=1)), COMMUNES)
    with pytest.raises(BadInput, match="96 voix, plus que 95 bulletins"):
        B.validate_project_totals(approval, PROJECTS, totals(l1=90, l2=6))
    with pytest.raises(BadInput, match="par projet"):
        B.validate_project_totals(KNAPSACK, PROJECTS, totals().model_copy(update={
            "options": [OptionTotal(question_id="q", option_id="a", votes=1)]}))


# -- winners -----------------------------------------------------------------------------------------------
HUNDRED = Heading(id="h", name="Labège", amount_cents=100_000_00)


def outcome(projects, online, paper=None, tie_break="LOWER_PRICE", seed=None):
    return B.heading_outcome(HUNDRED, projects, online, paper or {}, tie_break, seed)


def test_each_project_wins_while_its_price_fits_what_is_left_consuls_rule():
    projects = [project("a", "h", 60_000), project("b", "h", 50_000), project("c", "h", 30_000),
                project("d", "h", 10_000), project("e", "h", 5_000)]
    result = outcome(projects, {"a": 100, "b": 90, "c": 80, "d": 10, "e": 5})
    assert [p.project_id for p in result.projects] == ["a", "b", "c", "d", "e"]
    assert result.winners == ["a", "c", "d"], "b does not fit the 40 000 € left and is skipped; c and d still win"
    assert (result.spent_cents, result.remaining_cents) == (100_000_00, 0)
    assert [p.rank for p in result.projects] == [1, 2, 3, 4, 5]


def test_online_and_paper_votes_add_up_and_only_the_headings_ballot_counts():
    projects = [project("x", "h", 60_000), project("y", "h", 60_000), project("z", "h", 1_000, selected=False),
                project("w", "other", 1_000)]
    result = outcome(projects, {"x": 10, "y": 14, "z": 99, "w": 99}, {"x": 5})
    assert [(p.project_id, p.online, p.paper, p.total, p.winner) for p in result.projects] == [
        ("x", 10, 5, 15, True), ("y", 14, 0, 14, False)]


def test_a_project_nobody_voted_for_still_wins_if_money_is_left_as_in_consul():
    result = outcome([project("a", "h", 50_000), project("b", "h", 20_000)], {"a": 3})
    assert result.winners == ["a", "b"]


@pytest.mark.parametrize("rule, order, winners", [("LOWER_PRICE", "acb", "ac"), ("HIGHER_PRICE", "abc", "ab"),
                                                  ("EARLIER_SUBMISSION", "acb", "ac")])
def test_ties_are_broken_by_the_budgets_stated_rule(rule, order, winners):
    # 100 000 €: a (60 000 €) wins; b (40 000 €) and c (35 000 €) tie and only one of them can follow.
    projects = [project("a", "h", 60_000), project("b", "h", 40_000, submitted_day=9),
                project("c", "h", 35_000, submitted_day=3)]
    result = outcome(projects, {"a": 10, "b": 8, "c": 8}, tie_break=rule)
    assert [p.project_id for p in result.projects] == list(order)
    assert result.winners == list(winners)
    assert result.ties == (tuple(order[1:]),)


def test_a_draw_by_lot_is_reproducible_from_the_public_seed_and_independent_of_input_order():
    projects = [project(f"p{i}", "h", 30_000) for i in range(6)]
    votes = {p.id: 7 for p in projects}
    first = outcome(projects, votes, tie_break="LOT", seed="conseil du 12 mai 2026")
    again = outcome(list(reversed(projects)), votes, tie_break="LOT", seed="conseil du 12 mai 2026")
    assert first == again
    expected = sorted((p.id for p in projects), key=lambda pid: B.lot_key("conseil du 12 mai 2026", pid))
    assert [p.project_id for p in first.projects] == expected and first.winners == expected[:3]
    other = outcome(projects, votes, tie_break="LOT", seed="autre graine")
    assert [p.project_id for p in other.projects] != expected


def test_the_last_resort_is_submission_time_then_id_whatever_the_input_order():
    projects = [project("b", "h", 30_000, submitted_day=2), project("a", "h", 30_000, submitted_day=2),
                project("c", "h", 30_000, submitted_day=1)]
    for order in (projects, list(reversed(projects))):
        assert [p.project_id for p in outcome(order, {}).projects] == ["c", "a", "b"]


def test_results_of_50000_ballots_come_from_counters():
    """50,000 knapsack ballots over 12 projects: the tally equals the sum of per-ballot increments (what the service
    keeps as counters), and the winners equal a plain re-computation. Timing is the bench's business, not asserted."""
    rng = random.Random(2026)
    prices = [18_000, 25_000, 7_500, 40_000, 12_000, 31_000, 9_000, 22_000, 15_000, 5_000, 27_500, 60_000]
    projects = [project(f"p{i:02d}", "labege", price, submitted_day=i + 1) for i, price in enumerate(prices)]
    by_id = {p.id: p for p in projects}
    weights = [rng.random() ** 2 for _ in projects]
    ballots = []
    for _ in range(50_000):
        left, chosen = LABEGE.amount_cents, []
        for p in rng.choices(projects, weights=weights, k=6):
            if p.id not in chosen and p.price_cents <= left:
                chosen.append(p.id)
                left -= p.price_cents
        ballots.append([HeadingBallot(heading_id="labege", project_ids=chosen)])
    for b in ballots[::500]:
        B.validate_ballot(KNAPSACK, by_id, b, phase="BALLOTING")
    counters: dict[str, int] = {}
    for b in ballots:
        for pid, n in B.ballot_increments(b).items():
            counters[pid] = counters.get(pid, 0) + n
    assert counters == dict(B.tally_ballots(ballots))
    assert sum(counters.values()) == sum(len(b[0].project_ids) for b in ballots)
    result = B.heading_outcome(LABEGE, projects, counters, {"p03": 1_000}, "LOWER_PRICE")
    ranked = sorted(projects, key=lambda p: (-(counters.get(p.id, 0) + (1_000 if p.id == "p03" else 0)), p.price_cents))
    left, winners = LABEGE.amount_cents, []
    for p in ranked:
        if p.price_cents <= left:
            winners.append(p.id)
            left -= p.price_cents
    assert result.winners == winners and result.remaining_cents == left
