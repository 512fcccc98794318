"""A budget ballot's running total and the headings a voter sees (gateway/web/ballot.py): figures only, the rules are
the service's; the console's budget form read (amounts in euros, a section a line)."""
from gateway.web.ballot import running_totals, shown_headings
from gateway.web.core import FormErrors
from gateway.web.pages.consultations_console import (cents, condition_choices, question_input, read_ballots,
                                                     read_sections)

HEADINGS = [{"id": "labege", "name": "Labège", "amountCents": 100_000_00, "maxProjects": None},
            {"id": "escalquens", "name": "Escalquens", "amountCents": 80_000_00, "maxProjects": 2}]
PROJECTS = [{"id": "a", "headingId": "labege", "priceCents": 45_000_00},
            {"id": "b", "headingId": "labege", "priceCents": 30_000_50},
            {"id": "c", "headingId": "labege", "priceCents": 40_000_00},
            {"id": "d", "headingId": "escalquens", "priceCents": 15_000_00}]


def budget(kind="KNAPSACK", per_voter=1, max_projects=None):
    return {"headings": HEADINGS, "maxHeadingsPerVoter": per_voter,
            "rule": {"kind": kind, "maxProjects": max_projects, "minProjects": None, "minSharePercent": None}}


def test_the_running_total_of_a_knapsack_ballot():
    totals = running_totals(budget(), PROJECTS, {"labege": ["a", "b"]})
    t = totals["labege"]
    assert (t.spent_cents, t.left_cents, t.chosen, t.over) == (75_000_50, 24_999_50, 2, False)
    assert totals["escalquens"].spent_cents == 0 and not totals["escalquens"].over
    over = running_totals(budget(), PROJECTS, {"labege": ["a", "b", "c"]})["labege"]
    assert over.over and over.left_cents == -15_000_50


def test_a_share_of_the_amount_and_a_least_number_of_projects_are_told_short():
    share = budget() | {"rule": {"kind": "KNAPSACK", "minSharePercent": 70, "maxProjects": None, "minProjects": None}}
    totals = running_totals(share, PROJECTS, {"labege": ["b"]})
    assert totals["labege"].least_cents == 70_000_00 and totals["labege"].under
    assert not totals["escalquens"].under  # left empty: not voted in
    assert not running_totals(share, PROJECTS, {"labege": ["a", "b"]})["labege"].under
    approval = budget("APPROVAL", max_projects=3) | {"rule": {"kind": "APPROVAL", "maxProjects": 3, "minProjects": 2,
                                                              "minSharePercent": None}}
    assert running_totals(approval, PROJECTS, {"labege": ["a"]})["labege"].under
    assert not running_totals(approval, PROJECTS, {"labege": ["a", "c"]})["labege"].under


def test_unknown_repeated_or_misplaced_projects_count_for_nothing():
    t = running_totals(budget(), PROJECTS, {"labege": ["a", "a", "d", "zzz"]})["labege"]
    assert (t.spent_cents, t.chosen) == (45_000_00, 1)


def test_an_approval_ballot_counts_projects_against_the_heading_or_the_rule():
    totals = running_totals(budget("APPROVAL", max_projects=1), PROJECTS, {"labege": ["a", "b"], "escalquens": ["d"]})
    assert totals["labege"].max_projects == 1 and totals["labege"].over and totals["labege"].projects_left == -1
    assert totals["escalquens"].max_projects == 2 and not totals["escalquens"].over  # the heading's own limit


def test_a_voter_of_one_heading_among_several_chooses_it_first():
    assert shown_headings(budget(), None) == ([], True)
    assert shown_headings(budget(), "nowhere") == ([], True)
    assert shown_headings(budget(), "escalquens") == ([HEADINGS[1]], False)
    assert shown_headings(budget(per_voter=2), None) == (HEADINGS, False)


# -- the console's budget form ------------------------------------------------------------------------------------
COMMUNES = [{"slug": "labege", "name": "Labège"}, {"slug": "escalquens", "name": "Escalquens"}]


def test_amounts_typed_in_euros():
    assert cents("80 000") == 80_000_00 and cents("60\u202f000,50\u00a0€") == 60_000_50 and cents("12.5") == 12_50
    assert cents("12,345") is None and cents("douze") is None and cents("") is None


def test_sections_one_a_line_by_commune_name_or_code_keeping_their_ids():
    errors = FormErrors()
    kept = [{"id": "labege"}]
    out = read_sections("Labège ; 80 000 ; Labège\n\nEst ; 60 000,50 ; escalquens, labege\nTerritoire ; 1000",
                        COMMUNES, kept, errors)
    assert not errors
    assert out == [{"id": "labege", "name": "Labège", "amountCents": 80_000_00, "communes": ["labege"]},
                   {"id": "s2", "name": "Est", "amountCents": 60_000_50, "communes": ["escalquens", "labege"]},
                   {"id": "s3", "name": "Territoire", "amountCents": 1000_00, "communes": []}]


def test_a_wrong_section_line_is_told_by_its_number():
    errors = FormErrors()
    read_sections("Labège ; 80 000 ; Labège\nBaziège ; 10 ; Baziège", COMMUNES, [], errors)
    assert errors.fields["sections"] == "Ligne 2 : « Baziège » n'est pas une commune du Sicoval."
    errors = FormErrors()
    read_sections("Labège ; quatre-vingts", COMMUNES, [], errors)
    assert errors.fields["sections"].startswith("Ligne 1 : écrivez « Nom ; montant en euros ; communes »")
    errors = FormErrors()
    assert read_sections("  \n", COMMUNES, [], errors) == [] and "une au moins" in errors.fields["sections"]


PAPER_PROJECTS = [{"id": "p1", "headingId": "labege"}, {"id": "p2", "headingId": "labege"},
                  {"id": "p3", "headingId": "escalquens"}]


def test_paper_ballots_are_read_a_line_each():
    errors = FormErrors()
    ballots = read_ballots("1, 2\n\n blanc \nNUL\n3 1 1", PAPER_PROJECTS, errors)
    assert not errors
    assert ballots == [{"headings": [{"headingId": "labege", "projectIds": ["p1", "p2"]}]}, {"blank": True},
                       {"null": True}, {"headings": [{"headingId": "escalquens", "projectIds": ["p3"]},
                                                     {"headingId": "labege", "projectIds": ["p1"]}]}]


def test_a_wrong_paper_ballot_is_told_with_its_line():
    errors = FormErrors()
    read_ballots("1\n4\nblanc nul\n", PAPER_PROJECTS, errors)
    assert errors.fields["b_bulletins"] == ("Bulletins : ligne 2 : « 4 » n'est pas un numéro de projet (de 1 à 3) ; "
                                            "ligne 3 : « blanc » n'est pas un numéro de projet (de 1 à 3).")
    empty = FormErrors()
    assert read_ballots(" \n", PAPER_PROJECTS, empty) == [] and "au moins un" in empty.fields["b_bulletins"]


def test_a_question_may_depend_on_the_choices_before_it():
    questions = [{"id": "uses", "type": "YES_NO", "label": "Utilisez-vous ?", "position": 1, "options": []},
                 {"id": "note", "type": "RATING", "label": "Note", "position": 2, "options": []},
                 {"id": "which", "type": "SINGLE_CHOICE", "label": "Laquelle ?", "position": 3,
                  "options": [{"id": "a", "label": "A"}]},
                 {"id": "why", "type": "LONG_TEXT", "label": "Pourquoi ?", "position": 4, "options": []}]
    assert condition_choices(questions, 3) == [("uses=yes", "1. Utilisez-vous ? : « Oui »"),
                                               ("uses=no", "1. Utilisez-vous ? : « Non »")]
    assert [v for v, _ in condition_choices(questions, 4)] == ["uses=yes", "uses=no", "which=a"]


def test_a_question_is_sent_back_whole():
    q = {"id": "which", "type": "SINGLE_CHOICE", "label": "Laquelle ?", "description": "", "mandatory": True,
         "position": 3, "maxCharacters": None, "minChoices": None, "maxChoices": None, "scale": None,
         "options": [{"id": "a", "label": "A", "freeText": False}], "rows": [],
         "conditions": [{"questionId": "uses", "operator": "EQUALS", "value": "yes"}]}
    sent = question_input(q)
    assert sent == q
    sent["options"][0]["label"] = "B"
    assert q["options"][0]["label"] == "A"  # a copy: the page's question is left as read
