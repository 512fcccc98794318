"""Ballot secrecy, checked over every collection of parvis_consultation: with the whole database in hand (every
document, in the order the database keeps them), one cannot tell who voted what.

Voters vote one after the other (each alone in his round of writes: the case where order and time would give a
voter away), for a budget and for a secret survey. Then, reading the database as an attacker would:
- no document holds both something that names a voter (his citizen id, his address's hash) and a ballot's content
  or receipt;
- no ballot holds a time, a voter's id or a hash of one (services/consultation/ballots.py: identity_leaks);
- nothing transient is left (round documents, drafts of secret responses), and the round a participation names
  is named by no ballot;
- pairing participations in voting order (their times) with ballots in the database's order, or in the order of
  their ids, finds no more right pairs than chance would.
"""
import json
import re

import pytest

from services.consultation.ballots import identity_leaks
from tests.consultation_flows import (CAST, SAVE, SUBMIT, budget_to_ballot, citizen, data, full_answers, open_survey,
                                      round_documents)
from tests.support import Platform, wait_until

VOTERS = 12
PROJECTS = [{"title": f"Projet {n}", "headingId": "labege", "cost": 5_000_00 + n * 100_00} for n in range(6)]
RECEIPT = re.compile(r"[0-9A-Z]{4}-[0-9A-Z]{4}-[0-9A-Z]{4}")


@pytest.fixture(scope="module")
def platform(mongo, broker):
    mongo.drop_all()
    p = Platform(mongo, broker)
    p.service("agenda")
    p.service("consultation")
    p.service("notification")  # the revocation list: without it, the gateway refuses every token
    p.gateway()
    from parvis.seed import demo_data
    from tests.support import rpc_call

    rpc_call(p.broker.url, "agenda", "import_reference_data", timeout=60, **demo_data())
    yield p
    p.stop()


def subject(tok: str) -> str:
    import jwt

    return jwt.decode(tok, options={"verify_signature": False})["sub"]


def every_document(db) -> dict[str, list[dict]]:
    """Each collection's documents in the order the database returns them unsorted (its natural order)."""
    return {name: list(db[name].find()) for name in sorted(db.list_collection_names())}


def ballot_content(doc: dict) -> str:
    return json.dumps(doc.get("headings") or doc.get("answers"), sort_keys=True, default=str)


def right_pairs(guess: list, truth: list) -> int:
    return sum(1 for g, t in zip(guess, truth) if g == t)


def test_from_the_whole_database_one_cannot_tell_who_voted_what(platform):
    url = platform.url
    db = platform.mongo.client().parvis_consultation
    bid, ids = budget_to_ballot(url, PROJECTS)
    survey = open_survey(url, secret=True, title="Consultation secrète")
    voters = [citizen(f"secret-voter-{n}") for n in range(VOTERS)]
    cast: dict[str, dict] = {}  # voter -> (budget ballot, survey ballot), in voting order
    for n, tok in enumerate(voters):
        picks = sorted({ids[n % 6], ids[(n * 5 + 1) % 6]})
        receipt = data(url, CAST, {"b": bid, "h": [{"headingId": "labege", "projectIds": picks}]},
                       tok)["castBudgetBallot"]["receiptCode"]
        data(url, SAVE, {"c": survey["id"], "a": full_answers()[:2]}, tok)  # a draft first: it must go
        answers = full_answers(("eau", "dechets", "piscine")[n % 3], 1 + n % 5)
        response = data(url, SUBMIT, {"c": survey["id"], "a": answers}, tok)["submitResponse"]
        assert response["final"] is True and RECEIPT.fullmatch(response["receiptCode"])
        cast[subject(tok)] = {"budget": (receipt, picks), "survey": response["receiptCode"]}
    identities = set(cast)
    # A round no round follows is closed right after its voter is answered.
    wait_until(lambda: round_documents(db) == [], 5, 0.02, "every round closed")
    everything = every_document(db)

    # Every collection was looked at; ballots hold neither time nor identity.
    assert {"ballots", "participations", "counters", "consultations"} <= set(everything)
    ballots = [b for b in everything["ballots"] if "receipt" in b]
    assert len(ballots) == 2 * VOTERS
    for b in ballots:
        assert identity_leaks(b, identities) == [], b
        assert set(b) == {"_id", "consultation_id", "receipt", "headings"} or set(b) == {
            "_id", "consultation_id", "receipt", "answers"}, sorted(b)

    # No document anywhere holds both a voter and a ballot (its receipt or its choices).
    receipts = {b["receipt"] for b in ballots}
    for name, docs in everything.items():
        for doc in docs:
            text = json.dumps(doc, default=str)
            named = [i for i in identities if i in text]
            if not named:
                continue
            assert not (receipts & set(RECEIPT.findall(text))), (name, doc)
            assert "headings" not in text and "project_ids" not in text, (name, doc)
            if name == "participations":
                # `round`: the round document it was written with, deleted once the round was written; no ballot
                # names its round (a round groups voters who voted in the same instant, as `at` does).
                assert set(doc) <= {"_id", "consultation_id", "voter", "origin", "at", "at_ts", "round"}, doc

    # Nothing transient is left to join them: rounds finished, participations settled, drafts gone.
    assert everything.get("rounds", []) == [] and not [d for d in everything["counters"] if "created_ts" in d]
    rounds_named = {p["round"] for p in everything["participations"] if "round" in p}
    assert rounds_named and not rounds_named & {b.get("round") for b in ballots}
    assert not [r for r in everything.get("responses", []) if r["consultation_id"] == survey["id"]]

    # The attacker's last resort: pair voters in voting order with ballots in stored order, or in id order.
    for cid, kind in ((bid, "budget"), (survey["id"], "survey")):
        voted = [p["voter"] for p in sorted((p for p in everything["participations"] if p["consultation_id"] == cid),
                                            key=lambda p: p["at_ts"])]
        assert voted == list(cast), "participations say when each voted (that is not secret)"
        truth = [cast[v][kind][0] if kind == "budget" else cast[v][kind] for v in voted]
        stored = [b["receipt"] for b in ballots if b["consultation_id"] == cid]
        by_id = [b["receipt"] for b in sorted(ballots, key=lambda b: b["_id"]) if b["consultation_id"] == cid]
        assert sorted(stored) == sorted(truth)
        # A random order gets one pair right on average; 8 of 12 right happens by chance about once in 100,000.
        assert right_pairs(stored, truth) < 8, f"{kind}: the stored order follows the voting order"
        assert right_pairs(by_id, truth) < 8, f"{kind}: ballot ids follow the voting order"
    published = [b["receipt"] for b in db.ballots.find({"consultation_id": bid}).sort("receipt", 1)]
    assert published == sorted(published)


def test_drafts_of_secret_responses_go_also_when_citizens_submit_at_the_same_time(platform):
    """Submitted together, secret responses share rounds of writes; a round closed by the next one (not at once) must
    delete its voters' drafts as well: a draft kept names its citizen beside what he answered."""
    from concurrent.futures import ThreadPoolExecutor

    from tests.support import wait_until

    url = platform.url
    db = platform.mongo.client().parvis_consultation
    survey = open_survey(url, secret=True, title="Consultation secrète, réponses simultanées")
    voters = [citizen(f"secret-together-{n}") for n in range(30)]
    for tok in voters:
        data(url, SAVE, {"c": survey["id"], "a": full_answers()[:2]}, tok)
    assert db.responses.count_documents({"consultation_id": survey["id"]}) == len(voters)

    def submit(n_tok):
        n, tok = n_tok
        return data(url, SUBMIT, {"c": survey["id"], "a": full_answers(("eau", "dechets")[n % 2], 1 + n % 5)},
                    tok)["submitResponse"]

    with ThreadPoolExecutor(len(voters)) as pool:
        answers = list(pool.map(submit, enumerate(voters)))
    assert all(a["final"] is True for a in answers)
    assert db.ballots.count_documents({"consultation_id": survey["id"], "receipt": {"$exists": True}}) == len(voters)
    wait_until(lambda: round_documents(db) == [], 10, 0.1, "every round closed")
    assert db.responses.count_documents({"consultation_id": survey["id"]}) == 0, "a draft outlived its ballot"
