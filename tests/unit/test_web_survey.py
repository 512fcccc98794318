"""A survey's form without JavaScript (gateway/web/survey.py): posted fields read into answers and answers shown back
in the same fields, a rank given twice told beside its question, display conditions written out."""
from gateway.web.survey import answer_values, condition_notes, posted, read_answers

QUESTIONS = [
    {"id": "intro", "type": "SECTION", "position": 1, "options": [], "rows": []},
    {"id": "uses", "type": "YES_NO", "position": 2, "options": [], "rows": []},
    {"id": "which", "type": "MULTIPLE_CHOICE", "position": 3, "rows": [],
     "options": [{"id": "labege", "label": "Labège"}, {"id": "autre", "label": "Une autre", "freeText": True}],
     "conditions": [{"questionId": "uses", "operator": "EQUALS", "value": "yes"}]},
    {"id": "note", "type": "RATING", "position": 4, "options": [], "rows": []},
    {"id": "rang", "type": "RANKING", "position": 5, "rows": [],
     "options": [{"id": "a", "label": "A"}, {"id": "b", "label": "B"}, {"id": "c", "label": "C"}]},
    {"id": "grille", "type": "MATRIX_SINGLE", "position": 6, "options": [{"id": "bien"}, {"id": "mal"}],
     "rows": [{"id": "accueil"}, {"id": "attente"}]},
    {"id": "idee", "type": "LONG_TEXT", "position": 7, "options": [], "rows": []},
]
PAIRS = [("csrf", "x"), ("q-uses", "yes"), ("q-which", "labege"), ("q-which", "autre"),
         ("q-which-autre", " Ayguesvives "),
         ("q-note", "4"), ("q-rang-a", "2"), ("q-rang-b", "1"), ("q-rang-c", "3"), ("q-grille-accueil", "bien"),
         ("q-idee", "  Ouvrir le dimanche "), ("action", "envoyer")]
ANSWERS = [{"questionId": "uses", "choices": ["yes"]},
           {"questionId": "which", "choices": ["labege", "autre"], "otherText": "Ayguesvives"},
           {"questionId": "note", "rating": 4}, {"questionId": "rang", "choices": ["b", "a", "c"]},
           {"questionId": "grille", "rows": [{"rowId": "accueil", "choices": ["bien"]}]},
           {"questionId": "idee", "text": "Ouvrir le dimanche"}]


def test_posted_fields_become_answers_and_unanswered_questions_are_left_out():
    answers, problems = read_answers(QUESTIONS, posted(PAIRS))
    assert problems == {} and answers == ANSWERS
    assert read_answers(QUESTIONS, posted([("q-idee", "   "), ("q-rang-a", "")])) == ([], {})


def test_answers_kept_are_shown_back_in_the_same_fields():
    values = answer_values(QUESTIONS, ANSWERS)
    assert read_answers(QUESTIONS, values) == (ANSWERS, {})
    assert values["q-rang-b"] == ["1"] and values["q-which-autre"] == ["Ayguesvives"]


def test_a_rank_given_twice_is_told_beside_the_ranking():
    answers, problems = read_answers(QUESTIONS, posted([("q-rang-a", "1"), ("q-rang-b", "1"), ("q-note", "5")]))
    assert problems == {"rang": "Chaque rang une seule fois : deux éléments ont le même numéro."}
    assert answers == [{"questionId": "note", "rating": 5}]


def test_display_conditions_are_written_out():
    assert condition_notes(QUESTIONS) == {"which": "À remplir seulement si vous avez répondu « Oui » à la question 2."}
