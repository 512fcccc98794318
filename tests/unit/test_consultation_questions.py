"""Pure form rules: every question type and its errors, display conditions, the form's definition and editing it
(typo fixes once responses exist: test_consultation_revisions.py)."""
import pytest

from contracts.consultation import (Answer, DisplayCondition, MatrixAnswer, MatrixRow, Option, Question,
                                    QuestionInput, RatingScale, ScaleLabel)
from contracts.errors import BadInput
from services.consultation import questions
from tests.unit.consultation_samples import opts, q, survey_form

FORM = questions.validate_form(survey_form())


def a(qid, **kw) -> Answer:
    return Answer(question_id=qid, **kw)


def complete(**changes) -> list[Answer]:
    """A complete, valid response from a pool user; `changes` replace (or with None remove) answers."""
    base = {"uses": a("uses", choices=["yes"]), "when": a("when", choices=["evening", "morning"]),
            "rating": a("rating", rating=4), "nps": a("nps", rating=9),
            "priorities": a("priorities", choices=["price", "hours", "clean"]),
            "grid": a("grid", rows=[MatrixAnswer(row_id="welcome", choices=["good"]),
                                    MatrixAnswer(row_id="cleanliness", choices=["fair"])]),
            "services": a("services", rows=[MatrixAnswer(row_id="winter", choices=["sauna", "gym"])]),
            "name": a("name", text="  Le Lac  ")}
    base.update(changes)
    return [v for v in base.values() if v is not None]


def refused(answers, qid, words, submit=True):
    with pytest.raises(BadInput) as err:
        questions.validate_response(FORM, answers, submit=submit)
    assert err.value.field == qid, err.value.message
    assert words in err.value.message, err.value.message
    return err.value.message


# -- a valid response -------------------------------------------------------------------------------------
def test_a_complete_response_is_normalised_in_form_order():
    stored = questions.validate_response(FORM, list(reversed(complete())), submit=True)
    assert [x.question_id for x in stored] == ["uses", "when", "rating", "nps", "priorities", "grid", "services", "name"]
    by = {x.question_id: x for x in stored}
    assert by["when"].choices == ["morning", "evening"], "choices in the form's order"
    assert by["priorities"].choices == ["price", "hours", "clean"], "a ranking keeps its order"
    assert by["name"].text == "Le Lac"
    assert by["services"].rows == [MatrixAnswer(row_id="winter", choices=["gym", "sauna"])]


def test_messages_name_the_question_by_its_number_and_label():
    message = refused(complete(rating=None), "rating", "réponse obligatoire")
    assert message == "Question 5 (« Votre satisfaction ») : réponse obligatoire."


# -- each type's errors ---------------------------------------------------------------------------------
@pytest.mark.parametrize("answer, qid, words", [
    (a("name", text="x" * 41), "name", "40 caractères au plus (41 saisis)"),
    (a("name", choices=["a"]), "name", "réponse attendue : un texte"),
    (a("comment", text="x" * 5001), "comment", "5000 caractères au plus (5001 saisis)"),
    (a("why_not", choices=["far", "price"]), "why_not", "choisissez une seule réponse (2 choisies)"),
    (a("rating", rating=6), "rating", "note de 1 à 5"),
    (a("rating", rating=0), "rating", "note de 1 à 5"),
    (a("nps", rating=11), "nps", "note de 0 à 10"),
    (a("rating", text="4"), "rating", "réponse attendue : une note"),
    (a("uses", choices=["maybe"]), "uses", "choix inconnu : « maybe »"),
    (a("uses", choices=["yes", "no"]), "uses", "une seule réponse"),
    (a("when", choices=["morning", "noon", "evening"]), "when", "au plus 2 réponses (3 choisies)"),
    (a("when", choices=["morning", "morning"]), "when", "chaque choix une seule fois"),
    (a("when", choices=["other"]), "when", "précisez votre réponse « Other »"),
    (a("when", choices=["morning"], other_text="à midi"), "when", "ne va qu'avec le choix « Other »"),
    (a("when", choices=["other"], other_text="x" * 501), "when", "500 caractères au plus"),
    (a("priorities", choices=["price", "hours"]), "priorities", "classez les 3 éléments, chacun une fois (2 classés)"),
    (a("priorities", choices=["price", "hours", "hours"]), "priorities", "chaque choix une seule fois"),
    (a("priorities", choices=["price", "hours", "cheese"]), "priorities", "choix inconnu"),
    (a("grid", rows=[MatrixAnswer(row_id="welcome", choices=["good", "bad"]),
                     MatrixAnswer(row_id="cleanliness", choices=["good"])]), "grid", "un seul choix sur la ligne « l'accueil »"),
    (a("grid", rows=[MatrixAnswer(row_id="welcome", choices=["good"])]), "grid", "répondez à chaque ligne : « la propreté » manque"),
    (a("grid", rows=[MatrixAnswer(row_id="garden", choices=["good"])]), "grid", "ligne inconnue"),
    (a("grid", rows=[MatrixAnswer(row_id="welcome", choices=["superb"])]), "grid", "choix inconnu sur la ligne"),
    (a("grid", rows=[MatrixAnswer(row_id="welcome", choices=["good"]), MatrixAnswer(row_id="welcome", choices=["bad"])]),
     "grid", "une seule réponse pour la ligne"),
    (a("services", rows=[MatrixAnswer(row_id="summer", choices=["pool", "gym", "sauna"])]), "services",
     "au plus 2 choix sur la ligne « été » (3 choisis)"),
    (a("intro", text="bonjour"), "intro", "un intertitre n'appelle pas de réponse"),
])
def test_each_question_type_refuses_what_it_cannot_take(answer, qid, words):
    refused(complete(**{qid: answer}), qid, words)
    refused([answer], qid, words, submit=False)  # a draft is checked answer by answer too


def test_unknown_and_repeated_questions_are_refused():
    refused([a("nope", text="x")], "nope", "n'existe pas dans ce formulaire", submit=False)
    refused([a("name", text="a"), a("name", text="b")], "name", "une seule réponse par question", submit=False)


def test_multiple_choice_minimum():
    form = questions.validate_form([q("m", "MULTIPLE_CHOICE", 1, options=opts("a", "b", "c"), min_choices=2)])
    with pytest.raises(BadInput, match=r"au moins 2 réponses \(1 choisie\)"):
        questions.validate_response(form, [a("m", choices=["a"])], submit=True)
    assert questions.validate_response(form, [], submit=True) == [], "not mandatory: no answer is fine"


def test_a_matrix_that_is_not_mandatory_may_be_partly_answered_and_empty_answers_are_dropped():
    stored = questions.validate_response(FORM, complete(services=a("services", rows=[
        MatrixAnswer(row_id="summer", choices=[]), MatrixAnswer(row_id="winter", choices=["pool"])]),
        name=a("name", text="   ")), submit=True)
    by = {x.question_id: x for x in stored}
    assert by["services"].rows == [MatrixAnswer(row_id="winter", choices=["pool"])] and "name" not in by


# -- display conditions -------------------------------------------------------------------------------------
def test_a_hidden_question_is_not_required_and_may_not_be_answered():
    # Not a pool user: "when" is hidden (so not required), "why_not" is shown (and mandatory).
    no = complete(uses=a("uses", choices=["no"]), when=None)
    refused(no, "why_not", "réponse obligatoire")
    stored = questions.validate_response(FORM, no + [a("why_not", choices=["far"])], submit=True)
    assert "when" not in {x.question_id for x in stored}
    refused(no + [a("why_not", choices=["far"]), a("when", choices=["noon"])], "when", "ne vous est pas posée")


def test_differs_needs_an_answer_and_conditions_chain_through_hidden_questions():
    assert questions.visible_questions(FORM, {}) >= {"uses", "rating"}
    assert not {"when", "why_not", "comment"} & questions.visible_questions(FORM, {}), "unanswered hides both"
    shown = questions.visible_questions(FORM, {"uses": a("uses", choices=["no"]), "rating": a("rating", rating=1)})
    assert {"why_not", "comment"} <= shown and "when" not in shown
    assert "comment" not in questions.visible_questions(FORM, {"rating": a("rating", rating=2)})
    # A chain: c depends on b, b on a. When a hides b, b's answer does not count, so c hides too.
    form = questions.validate_form([
        q("a", "YES_NO", 1), q("b", "SINGLE_CHOICE", 2, options=opts("x", "y"),
                               conditions=[DisplayCondition(question_id="a", value="yes")]),
        q("c", "SHORT_TEXT", 3, mandatory=True, conditions=[DisplayCondition(question_id="b", value="x")])])
    answers = {"a": a("a", choices=["no"]), "b": a("b", choices=["x"])}
    assert questions.visible_questions(form, answers) == {"a"}
    assert questions.validate_response(form, [answers["a"]], submit=True) == [answers["a"]], "c is not required"


def test_a_draft_may_keep_answers_its_other_answers_now_hide():
    draft = questions.validate_response(FORM, [a("uses", choices=["no"]), a("when", choices=["noon"])], submit=False)
    assert [x.question_id for x in draft] == ["uses", "when"]


def test_conditions_on_ratings():
    form = questions.validate_form([
        q("r", "RATING", 1, scale=RatingScale(min=0, max=10)),
        q("why", "LONG_TEXT", 2, mandatory=True, conditions=[DisplayCondition(question_id="r", operator="EQUALS",
                                                                               value="0")])])
    with pytest.raises(BadInput, match="obligatoire"):
        questions.validate_response(form, [a("r", rating=0)], submit=True)
    assert len(questions.validate_response(form, [a("r", rating=10)], submit=True)) == 1


# -- the form's definition -------------------------------------------------------------------------------
def test_a_form_is_renumbered_and_filled_in():
    form = questions.validate_form([q("b", "LONG_TEXT", 7), q("a", "MULTIPLE_CHOICE", 3, options=opts("x", "y", "z"))])
    assert [(x.id, x.position) for x in form] == [("a", 1), ("b", 2)]
    assert (form[0].min_choices, form[0].max_choices) == (0, 3)
    assert form[1].max_characters == 5000
    assert questions.validate_form([q("r", "RATING", 1)])[0].scale == RatingScale(min=1, max=5)


@pytest.mark.parametrize("bad, words", [
    (q("x", "SINGLE_CHOICE", 1, options=opts("a")), "au moins deux options"),
    (q("x", "SINGLE_CHOICE", 1, options=[Option(id="a", label="A"), Option(id="a", label="B")]), "deux options portent"),
    (q("x", "SINGLE_CHOICE", 1, options=[Option(id="a", label=" "), Option(id="b", label="B")]), "chaque option a un libellé"),
    (q("x", "SINGLE_CHOICE", 1, options=opts("a", "b", "c", "d", free="a") + [Option(id="e", label="E", free_text=True)]),
     "une seule option « Autre"),
    (q("x", "MULTIPLE_CHOICE", 1, options=opts("a", "b"), max_choices=3), "au plus 3 choix, mais seulement 2 options"),
    (q("x", "MULTIPLE_CHOICE", 1, options=opts("a", "b", "c"), min_choices=3, max_choices=2), "c'est impossible"),
    (q("x", "SINGLE_CHOICE", 1, options=opts("a", "b"), max_choices=1), "seuls les choix multiples"),
    (q("x", "RANKING", 1, options=opts("a", "b", free="b")), "un classement ne propose pas"),
    (q("x", "MATRIX_SINGLE", 1, options=opts("a", "b")), "au moins une ligne"),
    (q("x", "MATRIX_SINGLE", 1, options=opts("a", "b"), rows=[MatrixRow(id="r", label="R"), MatrixRow(id="r", label="S")]),
     "deux lignes portent"),
    (q("x", "SHORT_TEXT", 1, options=opts("a", "b")), "n'a pas d'options"),
    (q("x", "SHORT_TEXT", 1, max_characters=501), "500 caractères au plus"),
    (q("x", "LONG_TEXT", 1, rows=[MatrixRow(id="r", label="R")]), "seules les grilles"),
    (q("x", "YES_NO", 1, options=opts("a", "b")), "n'a pas d'options"),
    (q("x", "RATING", 1, scale=RatingScale(min=0, max=5)), "de 1 à 5 ou de 0 à 10"),
    (q("x", "RATING", 1, scale=RatingScale(labels=[ScaleLabel(value=7, label="Sept")])), "hors de l'échelle"),
    (q("x", "RATING", 1, scale=RatingScale(labels=[ScaleLabel(value=2, label="A"), ScaleLabel(value=2, label="B")])),
     "deux libellés pour la note 2"),
    (q("x", "SHORT_TEXT", 1, scale=RatingScale()), "seules les notes"),
    (q("x", "SECTION", 1, mandatory=True), "ne peut être obligatoire"),
    (q("x", "SHORT_TEXT", 1, label="   "), "libellé est obligatoire"),
    (q("x", "SHORT_TEXT", 1, label="x" * 501), "libellé de 500 caractères"),
])
def test_bad_question_definitions_are_refused_naming_the_question(bad, words):
    with pytest.raises(BadInput) as err:
        questions.validate_form([bad])
    assert err.value.field == "x" and words in err.value.message, err.value.message


@pytest.mark.parametrize("condition, words", [
    (DisplayCondition(question_id="later", value="yes"), "posée avant"),
    (DisplayCondition(question_id="text", value="oui"), "pas sur un texte court"),
    (DisplayCondition(question_id="choice", value="zz"), "une des options de la question 2"),
    (DisplayCondition(question_id="yn", value="oui"), "une des options de la question 1"),
    (DisplayCondition(question_id="note", value="6"), "une note de 1 à 5"),
    (DisplayCondition(question_id="note", value="trois"), "une note de 1 à 5"),
])
def test_conditions_look_back_at_a_question_with_known_answers(condition, words):
    form = [q("yn", "YES_NO", 1), q("choice", "SINGLE_CHOICE", 2, options=opts("a", "b")), q("note", "RATING", 3),
            q("text", "SHORT_TEXT", 4), q("x", "SHORT_TEXT", 5, conditions=[condition]), q("later", "YES_NO", 6)]
    with pytest.raises(BadInput) as err:
        questions.validate_form(form)
    assert err.value.field == "x" and words in err.value.message, err.value.message
    with pytest.raises(BadInput, match="intertitre ne peut pas être conditionnel"):
        questions.validate_form([q("yn", "YES_NO", 1),
                                 q("s", "SECTION", 2, conditions=[DisplayCondition(question_id="yn", value="yes")])])


def test_duplicate_ids_and_positions_are_refused():
    with pytest.raises(BadInput, match="l'identifiant « a »"):
        questions.validate_form([q("a", "YES_NO", 1), q("a", "YES_NO", 2)])
    with pytest.raises(BadInput, match="position 1"):
        questions.validate_form([q("a", "YES_NO", 1), q("b", "YES_NO", 1)])


# -- editing the form (before responses) -------------------------------------------------------------------
def test_adding_removing_and_reordering_questions():
    form = questions.validate_form([q("a", "YES_NO", 1), q("b", "SHORT_TEXT", 2)])
    added = questions.insert_question(form, QuestionInput(type="RATING", label="Note", position=1), "n1")
    assert [(x.id, x.position) for x in added] == [("n1", 1), ("a", 2), ("b", 3)]
    at_end = questions.insert_question(form, QuestionInput(id="c", type="LONG_TEXT", label="Fin"), "ignored")
    assert [x.id for x in at_end] == ["a", "b", "c"]
    with pytest.raises(BadInput, match="porte déjà"):
        questions.insert_question(form, QuestionInput(id="a", type="LONG_TEXT", label="Fin"), "x")
    assert [x.id for x in questions.reorder_questions(added, ["b", "a", "n1"])] == ["b", "a", "n1"]
    with pytest.raises(BadInput, match="chaque question du formulaire une fois"):
        questions.reorder_questions(added, ["b", "a"])
    assert [x.id for x in questions.remove_question(added, "n1")] == ["a", "b"]
    moved = questions.replace_question(added, Question(id="a", type="YES_NO", label="Oui ?", position=3))
    assert [(x.id, x.label) for x in moved] == [("n1", "Note"), ("b", "Question b"), ("a", "Oui ?")]


def test_edits_keep_conditions_looking_back():
    with pytest.raises(BadInput, match="posée avant"):
        questions.reorder_questions(FORM, ["when"] + [x.id for x in FORM if x.id != "when"])
    with pytest.raises(BadInput, match="dépend de cette question"):
        questions.remove_question(FORM, "uses")


def test_a_form_is_ready_with_one_question_to_answer():
    with pytest.raises(BadInput, match="aucune question"):
        questions.check_form_ready([q("s", "SECTION", 1)])
    questions.check_form_ready(FORM)
