"""A budget ballot's running total and the headings a voter sees (gateway/web/ballot.py): figures only, the rules are
the service's."""
from gateway.web.ballot import running_totals, shown_headings

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
