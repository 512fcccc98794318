"""A participatory budget through the real stack: every phase (proposals, moderation, supports, assessment, prices,
the ballot), secret ballots with receipts, one ballot per citizen when 20 arrive at once from two devices, booth
check-ins and online votes refusing each other, paper ballots in double entry (a mismatch kept out of the count
until resolved) beside online ones, results hidden from every role until published, and the Pabulib export of the
budget parsed back."""
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from services.consultation.pabulib import greedy_selection, parse_pb
from tests.consultation_flows import (ADVANCE, AGENT, AGENT2, AGENT3, CAST, PROJECT_FIELDS, RESULTS, act,
                                      budget_to_ballot, citizen, data, error, gql)
from tests.support import Platform, token

PROJECTS = [  # Labège: 100,000 €; Escalquens: 80,000 €
    {"title": "Jardins partagés du Grand Chêne", "headingId": "labege", "cost": 45_000_00},
    {"title": "Pistes cyclables vers la gare", "headingId": "labege", "cost": 60_000_00},
    {"title": "Aire de jeux inclusive", "headingId": "labege", "cost": 30_000_00},
    {"title": "Boîte à livres", "headingId": "labege", "cost": 2_000_00},
    {"title": "Fontaine à eau au stade", "headingId": "escalquens", "cost": 15_000_00},
    {"title": "Éclairage solaire du parc", "headingId": "escalquens", "cost": 70_000_00},
]
PAPER = ("mutation($c: ID!, $booth: String!, $sheet: String!, $b: [PaperBallotInput!]!) { enterPaperBallots("
         "consultationId: $c, boothId: $booth, sheetRef: $sheet, ballots: $b) { id status entries agents "
         "differences { path first second } } }")
TOTALS = ("mutation($c: ID!, $booth: String!, $sheet: String!, $n: Int!, $blank: Int, $p: [ProjectTotalInput!]) { "
          "enterPaperTotals(consultationId: $c, boothId: $booth, sheetRef: $sheet, ballots: $n, blank: $blank, "
          "projects: $p) { status } }")
CHECK_IN = ("mutation($c: ID!, $e: String, $p: String, $booth: String) { checkInVoter(consultationId: $c, email: $e, "
            "phone: $p, boothId: $booth) { origin boothId checkedInAt } }")


@pytest.fixture(scope="module")
def platform(mongo, broker):
    mongo.drop_all()
    p = Platform(mongo, broker)
    p.service("agenda")
    p.service("consultation")
    p.service("notification")  # the revocation list: without it, the gateway refuses every token
    p.gateway()
    from tests.support import rpc_call
    from parvis.seed import demo_data

    rpc_call(p.broker.url, "agenda", "import_reference_data", timeout=60, **demo_data())
    yield p
    p.stop()


def ballot(ids, *picks, heading="labege"):
    return [{"headingId": heading, "projectIds": [ids[i] for i in picks]}]


def results(platform, bid, tok=None):
    return data(platform.url, RESULTS, {"id": bid}, tok)["consultationResults"]


def test_a_budget_through_all_its_phases_with_paper_and_booths(platform):
    url = platform.url
    bid, ids = budget_to_ballot(url, PROJECTS, supporters=4)
    projects = data(url, "query($b: ID!) { projects(budgetId: $b, first: 50) { totalCount edges { node { "
                         f"{PROJECT_FIELDS} }} }} }} }}", {"b": bid}, None)["projects"]
    assert projects["totalCount"] == 6
    nodes = {e["node"]["id"]: e["node"] for e in projects["edges"]}
    assert all(n["selected"] and n["priceCents"] and n["author"] is None for n in nodes.values())
    assert nodes[ids[0]]["supports"] == 1 and nodes[ids[0]]["votes"] is None
    assert error(url, "mutation($b: ID!, $p: ProjectInput!) { proposeProject(budgetId: $b, project: $p) { id } }",
                 {"b": bid, "p": {"title": "Trop tard", "headingId": "labege", "description": "x",
                                  "estimatedCostCents": 100}}, citizen("late"))["extensions"]["code"] == "CONFLICT"

    # Online ballots: a receipt each; the rules refused in French, naming the heading.
    receipts = {}
    votes = {"v1": ballot(ids, 0, 2), "v2": ballot(ids, 0, 3), "v3": ballot(ids, 1, 3), "v4": ballot(ids, 4, heading="escalquens")}
    for who, b in votes.items():
        receipts[who] = data(url, CAST, {"b": bid, "h": b}, citizen(who))["castBudgetBallot"]["receiptCode"]
    err = error(url, CAST, {"b": bid, "h": ballot(ids, 0, 1)}, citizen("v5"))
    assert err["extensions"] == {"code": "BAD_USER_INPUT", "field": "headings.labege"}
    assert "coûte 105" in err["message"] and "Labège" in err["message"]
    err = error(url, CAST, {"b": bid, "h": ballot(ids, 2)}, citizen("v1"))
    assert err["extensions"]["code"] == "CONFLICT" and "définitif" in err["message"]

    # A booth check-in refuses the online vote, and the other way round.
    data(url, CHECK_IN, {"c": bid, "e": "Marie.Curie@exemple.fr", "booth": "mairie-labege"})
    from services.common.identity import citizen_id
    from tests.support import TEST_SECRET

    marie = token("citizen", subject=citizen_id(TEST_SECRET, "marie.curie@exemple.fr"))
    err = error(url, CAST, {"b": bid, "h": ballot(ids, 2)}, marie)
    assert err["extensions"]["code"] == "CONFLICT" and "a déjà voté au bureau de vote" in err["message"].replace(
        "Vous avez", "a")
    online = token("citizen", subject=citizen_id(TEST_SECRET, "pierre@exemple.fr"))
    data(url, CAST, {"b": bid, "h": ballot(ids, 2)}, online)
    err = error(url, CHECK_IN, {"c": bid, "e": "pierre@exemple.fr", "booth": "mairie-labege"})
    assert err["extensions"]["code"] == "CONFLICT" and err["message"] == "Cette personne a déjà voté en ligne."
    err = error(url, CHECK_IN, {"c": bid, "e": "marie.curie@exemple.fr", "booth": "salle-escalquens"})
    assert err["message"] == "Cette personne a déjà voté au bureau de vote."
    data(url, CHECK_IN, {"c": bid, "p": "06 12 34 56 78", "booth": "mairie-labege"})
    assert error(url, CHECK_IN, {"c": bid, "p": "+33612345678", "booth": "salle-escalquens"})["extensions"][
        "code"] == "CONFLICT"

    # Paper: a sheet counts once two agents agree; a mismatch stays out until a third entry settles it.
    sheet = [{"headings": ballot(ids, 0, 2)}, {"headings": ballot(ids, 3)}, {"blank": True}]
    first = data(url, PAPER, {"c": bid, "booth": "mairie-labege", "sheet": "1", "b": sheet})["enterPaperBallots"]
    assert first["status"] == "AWAITING_SECOND_ENTRY"
    typo = [{"headings": ballot(ids, 0, 2)}, {"headings": ballot(ids, 2)}, {"blank": True}]
    second = data(url, PAPER, {"c": bid, "booth": "mairie-labege", "sheet": "1", "b": typo}, AGENT2)
    second = second["enterPaperBallots"]
    assert second["status"] == "MISMATCH" and second["agents"] == ["agent:test", "agent:second"]
    assert second["differences"] == [{"path": "2.headings.1.project_ids", "first": ids[3], "second": ids[2]}]
    r = results(platform, bid, AGENT)
    assert r["participation"]["paperBallots"] == 0, "a mismatch is not counted"
    mismatches = data(url, "query($c: ID!) { paperEntries(consultationId: $c) { totalCount nodes { status } } }",
                      {"c": bid})["paperEntries"]
    assert mismatches["nodes"][0]["status"] == "MISMATCH"
    assert platform.metric("consultation", "parvis_consultation_paper_mismatches") == 1.0
    third = data(url, PAPER, {"c": bid, "booth": "mairie-labege", "sheet": "1", "b": sheet}, AGENT3)
    assert third["enterPaperBallots"]["status"] == "MATCHED"
    data(url, TOTALS, {"c": bid, "booth": "salle-escalquens", "sheet": "T1", "n": 3, "blank": 1,
                       "p": [{"projectId": ids[4], "votes": 2}]})
    data(url, TOTALS, {"c": bid, "booth": "salle-escalquens", "sheet": "T1", "n": 3, "blank": 1,
                       "p": [{"projectId": ids[4], "votes": 2}]}, AGENT2)
    assert platform.metric("consultation", "parvis_consultation_paper_mismatches") == 0.0

    # While the vote runs, and after it closes, nobody sees counts, agents included.
    for role, tok in {"public": None, "citizen": citizen("v1"), "agent": AGENT, "operator": token("operator")}.items():
        r = results(platform, bid, tok)
        assert r["headings"] == [] and r["publishedAt"] is None, role
        # 5 online; booth: 2 checked in (Marie, the phone) against 6 paper ballots: the larger counts offline voters.
        assert r["participation"] == {"web": 5, "booth": 2, "letter": 0, "paperBallots": 6, "blank": 2, "null": 0,
                                      "total": 11}, role
        assert data(url, "query($b: ID!) { projects(budgetId: $b, first: 50) { edges { node { votes { total } "
                         "winner } } } }", {"b": bid}, tok)["projects"]["edges"][0]["node"] == {"votes": None,
                                                                                                 "winner": None}
    assert error(url, "query($c: ID!) { consultationReceipts(consultationId: $c) { totalCount } }",
                 {"c": bid}, None)["extensions"]["code"] == "CONFLICT"

    closing = data(url, ADVANCE, {"b": bid, "to": "REVIEWING_BALLOTS"})["advanceBudgetPhase"]
    assert closing["state"] == "CLOSED"
    late = error(url, CAST, {"b": bid, "h": ballot(ids, 2)}, citizen("v9"))
    assert late["extensions"]["code"] == "CONFLICT", late
    assert results(platform, bid, AGENT)["headings"] == []
    assert act(url, "publishConsultationResults", bid)["state"] == "RESULTS_PUBLISHED"

    r = results(platform, bid)
    labege, escalquens = r["headings"]
    votes_of = {p["projectId"]: p["votes"] for h in r["headings"] for p in h["projects"]}
    assert votes_of[ids[0]] == {"online": 2, "paper": 1, "total": 3}
    assert votes_of[ids[2]] == {"online": 2, "paper": 1, "total": 3}
    assert votes_of[ids[3]] == {"online": 2, "paper": 1, "total": 3}
    assert votes_of[ids[4]] == {"online": 1, "paper": 2, "total": 3}
    # Labège: three projects at 3 votes, cheapest first (LOWER_PRICE): books 2k, playground 30k, gardens 45k fit
    # (77k of 100k); the cycle lanes (1 vote, 60k) no longer fit.
    assert labege["winners"] == [ids[3], ids[2], ids[0]] and labege["remainingCents"] == 23_000_00
    assert escalquens["winners"] == [ids[4]] and [p["projectId"] for p in escalquens["projects"]] == [ids[4], ids[5]]
    assert escalquens["projects"][1]["winner"] is False, "70k no longer fits in what 15k left of 80k"

    # Receipts: every online ballot as cast, by code; a voter finds his own.
    listed = data(url, "query($c: ID!) { consultationReceipts(consultationId: $c) { totalCount "
                       "nodes { receiptCode headings { headingId projectIds } } } }", {"c": bid}, None)
    listed = listed["consultationReceipts"]
    assert listed["totalCount"] == 5 and [n["receiptCode"] for n in listed["nodes"]] == sorted(
        n["receiptCode"] for n in listed["nodes"])
    mine = data(url, "query($c: ID!, $r: String!) { verifyReceipt(consultationId: $c, receiptCode: $r) { headings "
                     "{ headingId projectIds } } }", {"c": bid, "r": receipts["v3"].lower().replace("-", " ")}, None)
    assert mine["verifyReceipt"]["headings"] == [{"headingId": "labege", "projectIds": sorted([ids[1], ids[3]])}]

    # Pabulib: one file per heading, parsed back; its votes and selection agree with the published results.
    pb_text = data(url, "query($c: ID!, $h: ID) { consultationResultsFile(consultationId: $c, format: PABULIB, "
                        "headingId: $h) { filename content } }", {"c": bid, "h": "labege"}, None)
    pb = parse_pb(pb_text["consultationResultsFile"]["content"])
    assert pb.meta["subunit"] == "Labège" and pb.meta["budget"] == "100000" and pb.meta["num_votes"] == "6"
    assert {pid: int(p["votes"]) for pid, p in pb.projects.items()} == {
        p["projectId"]: p["votes"]["total"] for p in labege["projects"]}
    assert greedy_selection(pb) == set(labege["winners"]) == {pid for pid, p in pb.projects.items()
                                                             if p["selected"] == "1"}
    assert sorted(v.get("voting_method") for v in pb.votes.values()).count("paper") == 2
    assert len({v["voter_id"] for v in pb.votes.values()}) == 6


def test_twenty_ballots_of_one_citizen_at_once_from_two_devices_count_once(platform):
    url = platform.url
    bid, ids = budget_to_ballot(url, PROJECTS[:3])
    same = citizen("impatient")
    device_tokens = [same, token("citizen", subject=__import__("jwt").decode(same, options={"verify_signature": False})
                                 ["sub"])]  # two devices: two tokens, one citizen
    barrier = threading.Barrier(20)

    def send(i):
        barrier.wait()
        return gql(url, CAST, {"b": bid, "h": ballot(ids, i % 3)}, device_tokens[i % 2])

    with ThreadPoolExecutor(20) as pool:
        answers = list(pool.map(send, range(20)))
    ok = [a for a in answers if "errors" not in a]
    refused = [a["errors"][0]["extensions"]["code"] for a in answers if "errors" in a]
    assert len(ok) == 1, answers
    # Refused as a second ballot, or asked to try again while the first is being written (a round running beside).
    assert set(refused) <= {"CONFLICT", "SERVICE_UNAVAILABLE"}, refused
    again = [gql(url, CAST, {"b": bid, "h": ballot(ids, 0)}, tok) for tok in device_tokens]
    assert [a["errors"][0]["extensions"]["code"] for a in again] == ["CONFLICT", "CONFLICT"], again
    assert "définitif" in again[0]["errors"][0]["message"]
    r = results(platform, bid)
    assert r["participation"]["web"] == 1
    db = platform.mongo.client().parvis_consultation
    assert db.ballots.count_documents({"consultation_id": bid}) == 1
    assert db.participations.count_documents({"consultation_id": bid}) == 1
    counters = db.counters.find_one({"_id": bid})
    assert sum(v for k, v in counters.items() if k.startswith("v:")) == 1


def test_a_budget_refuses_acts_out_of_their_phase(platform):
    url = platform.url
    bid, ids = budget_to_ballot(url, PROJECTS[:2])
    assert error(url, "mutation($id: ID!) { supportProject(id: $id) { id } }", {"id": ids[0]},
                 citizen("late-supporter"))["extensions"]["code"] == "CONFLICT"
    assert error(url, "mutation($id: ID!) { priceProject(id: $id, priceCents: 100) { id } }",
                 {"id": ids[0]})["extensions"]["code"] == "CONFLICT"
    err = error(url, ADVANCE, {"b": bid, "to": "FINISHED"})
    assert err["extensions"]["code"] == "CONFLICT" and "dépouillement" in err["message"]
    assert error(url, "mutation($id: ID!) { closeConsultation(id: $id) { id } }", {"id": bid})["extensions"][
        "code"] == "CONFLICT", "a budget closes with its phases"


def test_ballots_arriving_together_are_cast_in_one_batch_each_with_its_own_caller(platform):
    """The gateway sends ballots that arrive together as one RPC (gateway/batching.py); the service answers each as
    if it came alone, trusting each item's caller only with its own signature for cast_budget_ballot."""
    import httpx

    from contracts.platform import sign_caller
    from tests.support import TEST_SECRET, rpc_call, wait_until

    url = platform.url
    bid, ids = budget_to_ballot(url, PROJECTS[:3])
    voters = [citizen(f"lot-{n}") for n in range(30)]
    barrier = threading.Barrier(30)

    def send(tok):
        barrier.wait()
        return gql(url, CAST, {"b": bid, "h": ballot(ids, 0)}, tok)

    metrics = lambda: httpx.get(f"{url}/metrics", timeout=5).text  # noqa: E731
    before = _batched(metrics())
    with ThreadPoolExecutor(30) as pool:
        answers = list(pool.map(send, voters))
    assert all("errors" not in a for a in answers), answers
    assert len({a["data"]["castBudgetBallot"]["receiptCode"] for a in answers}) == 30
    calls, batches = (a - b for a, b in zip(_batched(metrics()), before))
    assert calls == 30 and batches < 30, (calls, batches)
    assert results(platform, bid)["participation"]["web"] == 30

    # Straight on the bus: one item signed for this method, one unsigned, one signed for another method.
    caller = {"role": "citizen", "subject": "cit-" + "b" * 20}
    args = {"budget_id": bid, "headings": [{"heading_id": "labege", "project_ids": [ids[1]]}]}
    items = [{"caller": {**caller, "subject": "cit-" + "c" * 20}, "args": args},
             {"caller": caller, "caller_sig": sign_caller(TEST_SECRET, caller, "consultation.cast_budget_ballots"),
              "args": args},
             {"caller": caller, "caller_sig": sign_caller(TEST_SECRET, caller, "consultation.cast_budget_ballot"),
              "args": args},
             {"caller": caller, "caller_sig": sign_caller(TEST_SECRET, caller, "consultation.cast_budget_ballot"),
              "args": {**args, "headings": []}}]
    reply = rpc_call(platform.broker.url, "consultation", "cast_budget_ballots", caller={}, items=items)["results"]
    assert [r["error"]["exc_type"] if r.get("error") else "ok" for r in reply] == [
        "Forbidden", "Forbidden", "ok", "BadInput"], reply
    assert reply[2]["result"]["consultation_id"] == bid
    # Straight on the bus, so not through this gateway: its shared answer shows it within seconds.
    wait_until(lambda: results(platform, bid)["participation"]["web"] == 31, 10, 0.2,
               "only the signed, valid item counted")
    time.sleep(2.5)
    assert results(platform, bid)["participation"]["web"] == 31, "only the signed, valid item was counted"


def _batched(text: str) -> tuple[float, float]:
    """(calls sent in batches, batches) of cast_budget_ballot, from the gateway's metrics."""
    total = count = 0.0
    for line in text.splitlines():
        if line.startswith("parvis_rpc_client_batch_items_") and 'method="cast_budget_ballot"' in line:
            if line.startswith("parvis_rpc_client_batch_items_sum"):
                total = float(line.rsplit(" ", 1)[1])
            elif line.startswith("parvis_rpc_client_batch_items_count"):
                count = float(line.rsplit(" ", 1)[1])
    return total, count
