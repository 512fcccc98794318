"""Pure survey results: counters per response, replaced responses, paper totals, results read from counters
(choices, matrices, Borda rankings, ratings; free text counted, not charted) and the open-data CSV."""
import csv
import io

import pytest

from contracts.consultation import (Answer, ConsultationResults, HeadingResult, MatrixAnswer, OptionTotal,
                                    Participation, ProjectResult, ProjectVotes)
from contracts.errors import BadInput
from services.consultation import questions, results
from tests.unit.consultation_samples import survey_form

FORM = questions.validate_form(survey_form())


def response(uses="yes", when=("morning",), other=None, rating=4, ranking=("price", "hours", "clean"),
             welcome="good", comment=None):
    answers = [Answer(question_id="uses", choices=[uses]), Answer(question_id="rating", rating=rating),
               Answer(question_id="priorities", choices=list(ranking)),
               Answer(question_id="grid", rows=[MatrixAnswer(row_id="welcome", choices=[welcome]),
                                                MatrixAnswer(row_id="cleanliness", choices=["fair"])]),
               Answer(question_id="name", text="Le Lac")]
    if uses == "yes":
        answers.append(Answer(question_id="when", choices=list(when), other_text=other))
    else:
        answers.append(Answer(question_id="why_not", choices=["price"]))
    if comment:
        answers.append(Answer(question_id="comment", text=comment))
    return questions.validate_response(FORM, answers, submit=True)


RESPONSES = [response(), response(when=("morning", "other"), other="Le dimanche", rating=5),
             response(uses="no", rating=1, ranking=("hours", "clean", "price"), welcome="bad", comment="Trop cher"),
             response(rating=2, ranking=("hours", "price", "clean"))]
COUNTERS = results.tally_responses(FORM, RESPONSES)
BY_ID = {r.question_id: r for r in results.question_results(FORM, COUNTERS)}


def test_choices_count_with_percent_of_the_questions_respondents():
    uses = BY_ID["uses"]
    assert uses.answered == 4 and [(o.option_id, o.label, o.count, o.percent) for o in uses.options] == [
        ("yes", "Oui", 3, 75.0), ("no", "Non", 1, 25.0)]
    when = BY_ID["when"]
    assert when.answered == 3 and [(o.option_id, o.count) for o in when.options] == [
        ("morning", 3), ("noon", 0), ("evening", 0), ("other", 1)]
    assert when.other_texts == 1 and when.options[0].percent == 100.0
    assert "intro" not in BY_ID, "sections have no results"


def test_rankings_get_borda_points():
    # 3 items: first place 2 points, second 1, last 0. price: 2+2+0+1 = 5; hours: 1+1+2+2 = 6; clean: 0+0+1+0 = 1.
    ranking = BY_ID["priorities"].ranking
    assert [(s.option_id, s.points, s.first_places, s.mean_position) for s in ranking] == [
        ("hours", 6, 2, 1.5), ("price", 5, 2, 1.75), ("clean", 1, 0, 2.75)]


def test_ratings_get_mean_and_distribution():
    rating = BY_ID["rating"].rating
    assert rating.mean == 3.0 and [(d.value, d.count) for d in rating.distribution] == [
        (1, 1), (2, 1), (3, 0), (4, 1), (5, 1)]
    nps = BY_ID["nps"]
    assert nps.answered == 0 and nps.rating.mean is None and len(nps.rating.distribution) == 11


def test_matrices_count_per_row():
    welcome, cleanliness = BY_ID["grid"].rows
    assert (welcome.answered, [(o.option_id, o.count, o.percent) for o in welcome.options]) == (
        4, [("good", 3, 75.0), ("fair", 0, 0.0), ("bad", 1, 25.0)])
    assert cleanliness.options[1].count == 4


def test_free_text_is_counted_never_charted():
    assert BY_ID["name"].answered == 4 and BY_ID["name"].charted is False and BY_ID["name"].options == []
    assert BY_ID["comment"].answered == 1 and not BY_ID["comment"].charted
    assert not any("Le Lac" in k or "cher" in k for k in COUNTERS), "texts never become counters"


def test_a_replaced_response_moves_its_counters_once():
    before, after = RESPONSES[0], response(rating=5, when=("evening",))
    delta = results.response_delta(FORM, before, after)
    assert delta == {"o:when:evening": 1, "o:when:morning": -1, "r:rating:4": -1, "r:rating:5": 1}
    assert results.response_delta(FORM, None, before) == dict(sorted(results.response_increments(FORM, before).items()))
    moved = COUNTERS.copy()
    moved.update(delta)
    assert moved == results.tally_responses(FORM, [after] + RESPONSES[1:])


def test_paper_totals_become_the_same_counters():
    inc = results.totals_increments(FORM, [
        OptionTotal(question_id="uses", option_id="yes", votes=30), OptionTotal(question_id="uses", option_id="no", votes=10),
        OptionTotal(question_id="when", option_id="evening", votes=12),
        OptionTotal(question_id="rating", option_id="5", votes=7),
        OptionTotal(question_id="grid", row_id="welcome", option_id="good", votes=20)], valid_ballots=45)
    assert inc["n:uses"] == 40 and inc["o:uses:yes"] == 30, "a single answer per paper: its sum"
    assert inc["n:when"] == 45, "a multiple choice total cannot tell who answered: every valid paper"
    assert inc["r:rating:5"] == 7 and inc["n:rating"] == 7
    assert inc["m:grid:welcome:good"] == 20 and inc["mr:grid:cleanliness"] == 45


@pytest.mark.parametrize("total, words", [
    (OptionTotal(question_id="nope", option_id="a", votes=1), "n'existe pas"),
    (OptionTotal(question_id="name", option_id="a", votes=1), "choix, oui / non, notes et grilles"),
    (OptionTotal(question_id="priorities", option_id="price", votes=1), "choix, oui / non, notes et grilles"),
    (OptionTotal(question_id="uses", option_id="maybe", votes=1), "option inconnue"),
    (OptionTotal(question_id="uses", option_id="yes", votes=11), "11 voix pour 10 bulletins"),
    (OptionTotal(question_id="rating", option_id="6", votes=1), "une note de 1 à 5"),
    (OptionTotal(question_id="grid", row_id="garden", option_id="good", votes=1), "ligne ou colonne inconnue"),
])
def test_impossible_paper_totals_are_refused(total, words):
    with pytest.raises(BadInput, match=words):
        results.totals_increments(FORM, [total], valid_ballots=10)


def test_a_single_choice_total_beyond_the_valid_papers_and_a_repeated_total_are_refused():
    with pytest.raises(BadInput, match="12 réponses pour 10 bulletins"):
        results.totals_increments(FORM, [OptionTotal(question_id="uses", option_id="yes", votes=6),
                                         OptionTotal(question_id="uses", option_id="no", votes=6)], valid_ballots=10)
    with pytest.raises(BadInput, match="saisi deux fois"):
        results.totals_increments(FORM, [OptionTotal(question_id="uses", option_id="yes", votes=1)] * 2, 10)


def test_results_csv_is_open_data_without_free_text():
    survey = ConsultationResults(consultation_id="c1", kind="SURVEY", state="RESULTS_PUBLISHED",
                                 participation=Participation(web=4, total=4),
                                 questions=list(BY_ID.values()))
    rows = list(csv.DictReader(io.StringIO(results.results_csv(survey))))
    uses = [r for r in rows if r["question_id"] == "uses"]
    assert [(r["option_id"], r["nombre"], r["pourcentage"]) for r in uses] == [("yes", "3", "75"), ("no", "1", "25")]
    assert any(r["question_id"] == "priorities" and r["option_id"] == "hours" and r["points_borda"] == "6" for r in rows)
    assert [r["repondants"] for r in rows if r["question_id"] == "name"] == ["4"]
    assert "Le Lac" not in results.results_csv(survey) and "\r\n" in results.results_csv(survey)
    budget = ConsultationResults(consultation_id="b1", kind="BUDGET", state="RESULTS_PUBLISHED",
                                 participation=Participation(web=2, total=2), headings=[HeadingResult(
                                     heading_id="labege", name="Labège", amount_cents=100_000_00,
                                     spent_cents=60_000_50, remaining_cents=39_999_50, winners=["p1"], projects=[
                                         ProjectResult(project_id="p1", title="Pistes, vélos", price_cents=60_000_50,
                                                       votes=ProjectVotes(online=2, paper=1, total=3), winner=True,
                                                       rank=1)])])
    [line] = list(csv.DictReader(io.StringIO(results.results_csv(budget))))
    assert (line["projet"], line["prix_eur"], line["voix"], line["laureat"]) == ("Pistes, vélos", "60000.50", "3", "1")
