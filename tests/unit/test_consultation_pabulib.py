"""The Pabulib .pb export of a heading, read back with the parser: obligatory keys, projects and winners, anonymised
ballots (online and paper), quoting, and the format errors the parser refuses."""
from collections import Counter

import pytest

from contracts.consultation import GeoPoint, Heading, VotingRule
from services.consultation import budget as B
from services.consultation import pabulib
from tests.unit.consultation_samples import COMMUNES, budget, bytes_source, project

SETTINGS = B.validate_budget(budget(VotingRule(min_share_percent=70)), COMMUNES)
LABEGE = SETTINGS.headings[0]
PROJECTS = [project("p1", "labege", 60_000, title="Piste cyclable; rue de l'Autan"),
            project("p2", "labege", 45_000, title='Le "jardin" partagé'), project("p3", "labege", 30_000),
            project("p4", "labege", 12_345, title="Bancs\net ombrières"), project("p5", "labege", 9_000)]
ONLINE_BALLOTS = [("p1", "p5"), ("p1", "p3"), ("p2", "p3", "p5"), ("p1",), ("p2", "p4", "p5"), ("p3", "p1")]
PAPER_BALLOTS = [("p2", "p3"), ("p1", "p4")]
BALLOTS = ([pabulib.PbBallot(tuple(b)) for b in ONLINE_BALLOTS]
           + [pabulib.PbBallot(tuple(b), paper=True) for b in PAPER_BALLOTS])
COUNTED = Counter(pid for b in ONLINE_BALLOTS + PAPER_BALLOTS for pid in b)
ONLINE = Counter(pid for b in ONLINE_BALLOTS for pid in b)
BOOTH_TOTALS = {"p2": 3}  # a booth's totals: votes without ballots


def export(ballots=BALLOTS, paper_extra=None, settings=SETTINGS, heading=LABEGE, seed=11, **kw):
    paper = Counter(pid for b in ballots if b.paper for pid in b.project_ids)
    paper.update(paper_extra or {})
    online = Counter(pid for b in ballots if not b.paper for pid in b.project_ids)
    outcome = B.heading_outcome(heading, PROJECTS, online, paper, settings.tie_break)
    text = pabulib.export_heading(settings, heading, outcome, ballots, description="Budget participatif du Sicoval",
                                  instance="2026", random_bytes=bytes_source(seed), **kw)
    return text, outcome


def test_the_export_reads_back_with_every_obligatory_key():
    text, outcome = export()
    pb = pabulib.parse_pb(text)
    assert all(pb.meta[k] for k in pabulib.REQUIRED_META)
    assert {k: pb.meta[k] for k in ("country", "unit", "subunit", "instance", "budget", "vote_type", "rule",
                                    "date_begin", "date_end", "num_projects", "num_votes")} == {
        "country": "France", "unit": "Sicoval", "subunit": "Labège", "instance": "2026", "budget": "100000",
        "vote_type": "approval", "rule": "greedy", "date_begin": "01.05.2026", "date_end": "31.05.2026",
        "num_projects": "5", "num_votes": "8"}
    assert (pb.meta["min_sum_cost"], pb.meta["max_sum_cost"], pb.meta["min_length"]) == ("70000", "100000", "1")
    assert (pb.meta["language"], pb.meta["currency"]) == ("fr", "EUR")
    assert list(pb.meta) == [k for k in pabulib.META_ORDER if k in pb.meta], "keys in the checker's order"
    assert "comment" not in pb.meta and "fully_funded" not in pb.meta


def test_projects_carry_cost_votes_and_the_winners():
    text, outcome = export()
    pb = pabulib.parse_pb(text)
    assert list(pb.projects) == [p.project_id for p in outcome.projects], "in the results' order"
    p4 = pb.projects["p4"]
    assert (p4["cost"], p4["votes"], p4["name"]) == ("12345", str(COUNTED["p4"]), "Bancs et ombrières")
    assert pb.projects["p1"]["name"] == "Piste cyclable; rue de l'Autan" and pb.projects["p2"]["name"] == \
        'Le "jardin" partagé', "quoted fields round-trip"
    assert {pid for pid, p in pb.projects.items() if p["selected"] == "1"} == set(outcome.winners)
    assert pabulib.greedy_selection(pb) == set(outcome.winners), "selected is what the stated rule gives"


def test_ballots_are_anonymised_shuffled_and_numbered():
    pb = pabulib.parse_pb(export()[0])
    assert list(pb.votes) == [str(n) for n in range(1, 9)]
    written = Counter((tuple(v["vote"].split(",")), v["voting_method"]) for v in pb.votes.values())
    expected = Counter([(tuple(sorted(b)), "internet") for b in ONLINE_BALLOTS]
                       + [(tuple(sorted(b)), "paper") for b in PAPER_BALLOTS])
    assert written == expected, "every ballot once, its projects sorted"
    in_order = [",".join(sorted(b)) for b in ONLINE_BALLOTS + PAPER_BALLOTS]
    assert [v["vote"] for v in pb.votes.values()] != in_order, "not in the order of arrival"
    other = pabulib.parse_pb(export(seed=99)[0])
    assert [v["vote"] for v in other.votes.values()] != [v["vote"] for v in pb.votes.values()]
    assert pabulib.parse_pb(export(ballots=BALLOTS[:6])[0]).votes["1"].keys() == {"voter_id", "vote"}, \
        "no voting_method column without paper"


def test_votes_from_booth_totals_are_counted_and_said_in_a_comment():
    text, outcome = export(paper_extra=BOOTH_TOTALS)
    pb = pabulib.parse_pb(text)
    assert pb.projects["p2"]["votes"] == str(COUNTED["p2"] + 3)
    assert pb.meta["comment"].startswith("#1: ") and "3 paper votes" in pb.meta["comment"]
    assert pabulib.greedy_selection(pb) == set(outcome.winners)


def test_approval_budgets_say_how_many_projects_a_ballot_holds():
    approval = B.validate_budget(budget(VotingRule(kind="APPROVAL", max_projects=3, min_projects=1)), COMMUNES)
    pb = pabulib.parse_pb(export(settings=approval, heading=approval.headings[0])[0])
    assert (pb.meta["min_length"], pb.meta["max_length"]) == ("1", "3")
    assert "max_sum_cost" not in pb.meta and "min_sum_cost" not in pb.meta


def test_territory_headings_cents_locations_and_full_funding():
    territory = Heading(id="sicoval", name="Tout le Sicoval", amount_cents=500_000_50)
    projects = [project("t1", "sicoval", 100_000), project("t2", "sicoval", 50_000)]
    projects[1] = B.Project(**{**projects[1].__dict__, "price_cents": 50_000_25})
    outcome = B.heading_outcome(territory, projects, {"t1": 2, "t2": 1}, {}, "LOWER_PRICE")
    text = pabulib.export_heading(SETTINGS, territory, outcome, [pabulib.PbBallot(("t1",)), pabulib.PbBallot(("t1", "t2"))],
                                  description="Budget", instance="2026", random_bytes=bytes_source(1),
                                  locations={"t1": GeoPoint(lat=43.5467, lon=1.5112)})
    pb = pabulib.parse_pb(text)
    assert "subunit" not in pb.meta and pb.meta["budget"] == "500000.50" and pb.meta["fully_funded"] == "1"
    assert (pb.projects["t2"]["cost"], pb.projects["t1"]["latitude"], pb.projects["t2"]["longitude"]) == (
        "50000.25", "43.546700", "")


def test_an_export_that_would_lie_is_refused():
    outcome = B.heading_outcome(LABEGE, PROJECTS, {"p1": 1}, {}, "LOWER_PRICE")
    with pytest.raises(pabulib.PabulibError, match="2 ballots but 1 votes"):
        pabulib.export_heading(SETTINGS, LABEGE, outcome, [pabulib.PbBallot(("p1",))] * 2, description="x",
                               instance="2026")
    with pytest.raises(pabulib.PabulibError, match="not on the heading's ballot"):
        pabulib.export_heading(SETTINGS, LABEGE, outcome, [pabulib.PbBallot(("zz",))], description="x", instance="2026")


def test_the_writer_keeps_to_known_and_obligatory_keys():
    with pytest.raises(pabulib.PabulibError, match="obligatory"):
        pabulib.write_pb({"description": "x"}, [], [])
    meta = {k: "1" for k in pabulib.REQUIRED_META}
    with pytest.raises(pabulib.PabulibError, match="not in the format"):
        pabulib.write_pb({**meta, "voter_names": "no"}, [], [])


GOOD = """META
key;value
description;Test
country;France
unit;Sicoval
instance;2026
num_projects;2
num_votes;2
budget;100
vote_type;approval
rule;greedy
date_begin;01.05.2026
date_end;31.05.2026
PROJECTS
project_id;cost;votes
a;60;2
b;50;1
VOTES
voter_id;vote
1;a,b
2;a
"""


@pytest.mark.parametrize("mutate, words", [
    (lambda t: t.replace("num_votes;2", "num_votes;3"), "num_votes is 3"),
    (lambda t: t.replace("num_projects;2", "num_projects;1"), "num_projects is 1"),
    (lambda t: t.replace("rule;greedy\n", ""), "obligatory keys: \\['rule'\\]"),
    (lambda t: t.replace("2;a\n", "2;c\n"), "unknown or repeated"),
    (lambda t: t.replace("2;a\n", "2;a,a\n"), "unknown or repeated"),
    (lambda t: t.replace("key;value", "k;v"), "key;value"),
    (lambda t: t.replace("b;50;1", "b;50"), "2 fields for 3 columns"),
    (lambda t: t.replace("b;50;1", "a;50;1"), "appears twice"),
    (lambda t: t.replace("PROJECTS\n", "\nPROJECTS\n"), "empty line"),
    (lambda t: "VOTES\n" + t, "data before|sections"),
    (lambda t: t.replace("project_id;cost;votes", "id;cost;votes"), "needs columns"),
])
def test_the_parser_refuses_what_breaks_the_format(mutate, words):
    assert pabulib.parse_pb(GOOD).meta["budget"] == "100"
    with pytest.raises(pabulib.PabulibError, match=words):
        pabulib.parse_pb(mutate(GOOD))


def test_the_parser_reads_the_published_examples_spacing():
    spaced = GOOD.replace(";", "; ").replace("key; value", "key;value")
    pb = pabulib.parse_pb(spaced)
    assert pb.meta["unit"] == "Sicoval" and pb.projects["b"]["cost"] == "50" and pb.votes["1"]["vote"] == "a,b"
