"""Once a form has responses only its labels' typos may be fixed: what counts as a typo fix, the revision that
records the changes, and refusals of anything else."""
from datetime import datetime, timezone

import pytest

from contracts.errors import Conflict
from services.consultation import questions, revisions
from tests.unit.consultation_samples import opts, survey_form

FORM = questions.validate_form(survey_form())
AT = datetime(2026, 3, 29, 10, tzinfo=timezone.utc)


@pytest.mark.parametrize("before, after, typo", [
    ("Êtes-vous satisfait de la médiathque ?", "Êtes-vous satisfait de la médiathèque ?", True),
    ("Etes-vous satisfait ?", "Êtes-vous satisfait ?", True),
    ("Horaires  d'ouverture", "Horaires d'ouverture.", True),
    ("Bibliotheque", "Bibliothèque", True),
    ("Oui", "Non", False),
    ("Êtes-vous satisfait des horaires ?", "Êtes-vous insatisfait des horaires ?", False),
    ("Le tarif est-il utile ?", "Le tarif est-il inutile ?", False),
    ("Êtes-vous satisfait des horaires ?", "N'êtes-vous pas satisfait des horaires ?", False),
    ("Ouverture le samedi 2025", "Ouverture le samedi 2026", False),
    # Six characters in a long label are within the edit bound: the negation is what refuses it.
    ("Souhaitez-vous que la piscine intercommunale de Castanet-Tolosan ouvre le dimanche matin ?",
     "Souhaitez-vous que la piscine intercommunale de Castanet-Tolosan n'ouvre pas le dimanche matin ?", False),
    ("Souhaitez-vous que la piscine intercommunale de Castanet-Tolosan ouvre le dimanche matin ?",
     "Souhaitez-vous que la piscine intercommunale de Castanet-Tolosan ouvre le dimanche matin ?!", True),
    ("Piscine de Castanet", "Médiathèque de Ramonville", False),
])
def test_what_counts_as_a_typo_fix(before, after, typo):
    assert revisions.is_typo_fix(before, after) is typo


def test_a_typo_revision_records_each_label_changed():
    current = next(x for x in FORM if x.id == "when")
    edited = current.model_copy(update={"label": "A quels moments ?", "options": [
        o.model_copy(update={"label": "Evenings" if o.id == "evening" else o.label}) for o in current.options]})
    rev = revisions.typo_revision(FORM, edited, at=AT, actor="agent-1")
    assert [(c.question_id, c.path, c.before, c.after) for c in rev.changes] == [
        ("when", "label", "À quels moments ?", "A quels moments ?"), ("when", "options.evening", "Evening", "Evenings")]
    assert rev.at == AT and rev.actor == "agent-1"
    applied = {x.id: x for x in revisions.apply_revision(FORM, rev)}
    assert applied["when"].label == "A quels moments ?"
    assert [o.label for o in applied["when"].options] == ["Morning", "Noon", "Evenings", "Other"]
    assert applied["uses"] == next(x for x in FORM if x.id == "uses")


@pytest.mark.parametrize("update, words", [
    ({"mandatory": False}, "seules les fautes de frappe"),
    ({"max_choices": 3}, "seules les fautes de frappe"),
    ({"options": opts("morning", "noon", "evening", "night", free="night")}, "seules les fautes de frappe"),
    ({"conditions": []}, "seules les fautes de frappe"),
    ({"position": 2}, "seules les fautes de frappe"),
    ({"label": "Quels jours ?"}, "n'est pas une faute de frappe"),
])
def test_after_the_first_response_only_typos_may_change(update, words):
    current = next(x for x in FORM if x.id == "when")
    with pytest.raises(Conflict) as err:
        revisions.typo_revision(FORM, current.model_copy(update=update), at=AT, actor=None)
    assert err.value.field == "when" and words in err.value.message
