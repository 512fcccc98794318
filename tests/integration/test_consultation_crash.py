"""kill -9 of the consultation service while budget ballots stream in through the gateway: after a restart, with each
voter resending until he is answered (a receipt, or "already voted"), every acknowledged ballot is stored and
counted, none twice, and every voter who was told he had voted is counted once.

Also the crash points made deterministic, as the recovery meets them: a round that claimed its voters and never
wrote its ballots (undone: those voters may vote), and a round whose ballots and counts were half-written (finished,
each ballot once); each as a round document of before 2026-12-02 and of since (voters and ballots from its first
write: finished when every voter's participation names it, undone otherwise)."""
import threading
import time
import uuid

import httpx
import pytest

from tests.consultation_flows import CAST, budget_to_ballot, citizen, round_documents
from tests.support import Platform, wait_until

VOTERS = 1200
THREADS = 12
PROJECTS = [{"title": f"Projet {n}", "headingId": "labege", "cost": 10_000_00 + n * 1_000_00} for n in range(5)]


@pytest.fixture
def platform(mongo, broker):
    mongo.drop_all()
    p = Platform(mongo, broker, PARVIS_CAST_RECOVERY_AFTER="3", PARVIS_CONSULTATION_CLOCK_INTERVAL="0.5")
    yield p
    p.stop_reporting_crashes((None, 0, -15, -9))


def start(platform):
    platform.service("agenda")
    service = platform.service("consultation")
    platform.service("notification")  # the revocation list: without it, the gateway refuses every token
    platform.gateway()
    from parvis.seed import demo_data
    from tests.support import rpc_call

    rpc_call(platform.broker.url, "agenda", "import_reference_data", timeout=60, **demo_data())
    return service


def test_kill9_while_ballots_stream_in_loses_no_acknowledged_ballot_and_counts_none_twice(platform, mongo):
    first = start(platform)
    bid, ids = budget_to_ballot(platform.url, PROJECTS)
    acknowledged: dict[str, str] = {}  # voter -> receipt
    already: set[str] = set()  # voters answered "already voted" (a first attempt was written before the crash)
    refused: list[str] = []
    lock = threading.Lock()

    def voter(n: int) -> None:
        tok = citizen(f"crash-{n}")
        body = {"query": CAST, "variables": {"b": bid, "h": [{"headingId": "labege",
                                                              "projectIds": [ids[n % 5], ids[(n + 2) % 5]]}]}}
        with httpx.Client(timeout=15) as client:
            while True:
                try:
                    answer = client.post(f"{platform.url}/graphql", json=body,
                                         headers={"Authorization": f"Bearer {tok}"}).json()
                except httpx.HTTPError:
                    time.sleep(0.1)
                    continue
                if "errors" not in answer:
                    with lock:
                        acknowledged[f"crash-{n}"] = answer["data"]["castBudgetBallot"]["receiptCode"]
                    return
                err = answer["errors"][0]
                if err["extensions"]["code"] == "CONFLICT" and "déjà voté" in err["message"]:
                    with lock:
                        already.add(f"crash-{n}")
                    return
                if err["extensions"]["code"] in ("SERVICE_UNAVAILABLE", "INTERNAL_SERVER_ERROR"):
                    time.sleep(0.2)
                    continue
                with lock:
                    refused.append(str(err))
                return

    queue = list(range(VOTERS))

    def worker() -> None:
        while True:
            with lock:
                if not queue:
                    return
                n = queue.pop()
            voter(n)

    threads = [threading.Thread(target=worker) for _ in range(THREADS)]
    for t in threads:
        t.start()
    db = mongo.client().parvis_consultation
    wait_until(lambda: len(acknowledged) >= 300, 120, 0.02, "ballots streaming")
    first.kill9()
    at_crash = len(acknowledged)
    platform.service("consultation")
    for t in threads:
        t.join(240)
    assert not any(t.is_alive() for t in threads)
    assert refused == []
    assert at_crash < VOTERS, "the crash happened while ballots were still coming in"
    assert len(acknowledged) + len(already) == VOTERS

    wait_until(lambda: round_documents(db) == [], 30, 0.2, "no round left to finish")
    stored = {b["receipt"]: b for b in db.ballots.find({"consultation_id": bid, "receipt": {"$exists": True}})}
    assert set(acknowledged.values()) <= set(stored), "an acknowledged ballot was lost"
    participations = db.participations.count_documents({"consultation_id": bid})
    counters = db.counters.find_one({"_id": bid})
    assert participations == VOTERS == len(stored) == counters["p:web"], (participations, len(stored), counters)
    votes = sum(v for k, v in counters.items() if k.startswith("v:"))
    assert votes == sum(len(b["headings"][0]["project_ids"]) for b in stored.values()) == 2 * VOTERS


def test_the_recovery_finishes_a_half_written_round_and_undoes_one_never_written(platform, mongo):
    """The two crash points of a round, written by hand as a killed process leaves them."""
    from services.consultation.ballots import new_receipt_code
    from services.consultation.store import ConsultationStore

    start(platform)
    bid, ids = budget_to_ballot(platform.url, PROJECTS[:2])
    db = mongo.client().parvis_consultation
    store = ConsultationStore(db)
    now = time.time()
    # 1. A round that claimed its voters and never wrote its ballots: three participations of its own, and one key
    #    it claimed in vain (that voter had voted before, in another round: his participation stays).
    lost = uuid.uuid4().hex
    keys = [f"{bid}:cit-lost{n}" for n in range(3)] + [f"{bid}:cit-before"]
    db.rounds.insert_one({"_id": lost, "created_ts": now - 60, "claiming": True, "keys": keys})
    db.participations.insert_many([{"_id": k, "consultation_id": bid, "voter": k.split(":")[1], "origin": "WEB",
                                    "at_ts": now - 60, "round": lost} for k in keys[:3]]
                                  + [{"_id": keys[3], "consultation_id": bid, "voter": "cit-before", "origin": "WEB",
                                      "at_ts": now - 120, "round": uuid.uuid4().hex}])
    # 2. A round that wrote its document, one of its two ballots and its counts (their marker with them).
    half = uuid.uuid4().hex
    slots = [uuid.uuid4().hex, uuid.uuid4().hex]
    store.add_slots(bid, slots)
    ballots = [{"consultation_id": bid, "receipt": new_receipt_code(),
                "headings": [{"heading_id": "labege", "project_ids": [ids[n]]}]} for n in range(2)]
    db.participations.insert_many([{"_id": f"{bid}:cit-half{n}", "consultation_id": bid, "voter": f"cit-half{n}",
                                    "origin": "WEB", "at_ts": now - 60, "round": half} for n in range(2)])
    db.rounds.insert_one({"_id": half, "created_ts": now - 60, "drafts": [],
                          "counts": {bid: {"p:web": 2, f"v:{ids[0]}": 1, f"v:{ids[1]}": 1}},
                          "ballots": [{"slot": s, "ballot": b} for s, b in zip(slots, ballots)]})
    store.fill_slots([(slots[0], ballots[0])])
    store.apply_counts(bid, half, {"p:web": 2, f"v:{ids[0]}": 1, f"v:{ids[1]}": 1})
    # 3. and 4. Rounds as written since 2026-12-02: the voters' keys beside the ballots from the first write.
    #    3: every participation written (naming the round), nothing else: finished.
    #    4: one of its two participations missing (killed mid-insert): undone.
    full, cut = uuid.uuid4().hex, uuid.uuid4().hex
    slots2 = [uuid.uuid4().hex for _ in range(4)]
    store.add_slots(bid, slots2)
    ballots2 = [{"consultation_id": bid, "receipt": new_receipt_code(),
                 "headings": [{"heading_id": "labege", "project_ids": [ids[n % 2]]}]} for n in range(4)]
    for rid, n0 in ((full, 0), (cut, 2)):
        voters = [f"{bid}:cit-{rid[:6]}{n}" for n in range(2)]
        db.counters.insert_one({"_id": uuid.uuid4().hex, "round": rid, "created_ts": now - 60, "keys": voters, "n": 2,
                              "ballots": [{"slot": slots2[n0 + n], "ballot": ballots2[n0 + n]} for n in range(2)],
                              "counts": {bid: {"p:web": 2, f"v:{ids[0]}": 1, f"v:{ids[1]}": 1}}, "drafts": []})
        db.participations.insert_many([{"_id": k, "consultation_id": bid, "voter": k.split(":")[1], "origin": "WEB",
                                         "at_ts": now - 60, "round": rid} for k in (voters if rid == full else voters[:1])])

    wait_until(lambda: round_documents(db) == [] and db.rounds.count_documents({}) == 0, 20, 0.2,
               "the half-written round finished, the one never written undone")
    assert db.participations.count_documents({"_id": {"$regex": "cit-lost"}}) == 0, "those voters may vote again"
    assert db.participations.count_documents({"_id": keys[3]}) == 1, "a participation of another round stays"
    assert db.participations.count_documents({"_id": {"$regex": "cit-half"}}) == 2
    assert db.participations.count_documents({"_id": {"$regex": f"cit-{full[:6]}"}}) == 2
    assert db.participations.count_documents({"_id": {"$regex": f"cit-{cut[:6]}"}}) == 0, "those voters may vote again"
    assert sorted(b["receipt"] for b in db.ballots.find({"consultation_id": bid, "receipt": {"$exists": True}})) == \
        sorted(b["receipt"] for b in ballots + ballots2[:2])
    counters = db.counters.find_one({"_id": bid})
    assert counters["p:web"] == 4 and counters[f"v:{ids[0]}"] == 2 and counters[f"v:{ids[1]}"] == 2, \
        "counts applied before the crash are not applied again; those of the round undone never"


def test_a_round_takes_over_the_document_of_the_round_it_closes_never_that_of_a_failed_one(mongo):
    """The document of a closed round is taken over by the next round (one command). If a round failed after writing
    its document in that place (the closed round is handed on to be closed again), the next round writes a document of
    its own: the failed round's stays for the recovery."""
    from services.consultation.store import ConsultationStore

    db = mongo.client()[f"parvis_consultation_{uuid.uuid4().hex[:8]}"]
    store = ConsultationStore(db)
    first = store.open_round({"_id": "new-1", "round": "r1", "created_ts": 1.0, "keys": []}, [])
    assert first == "new-1"
    second = store.open_round({"_id": "new-2", "round": "r2", "created_ts": 2.0, "keys": []}, [("r1", first, {})])
    assert second == first and [d["round"] for d in round_documents(db)] == ["r2"], "r1 closed by r2 taking its place"
    # r3 closes r2 in its place, then fails; r4 is handed r2 to close again: r3's document must stay.
    store.open_round({"_id": "new-3", "round": "r3", "created_ts": 3.0, "keys": ["k"]}, [("r2", second, {})])
    fourth = store.open_round({"_id": "new-4", "round": "r4", "created_ts": 4.0, "keys": []}, [("r2", second, {})])
    assert fourth != second
    assert sorted(d["round"] for d in round_documents(db)) == ["r3", "r4"]
    assert store.open_rounds(["r3", "r2", "r1"]) == {"r3"}
    # Closing applies the closed round's counts, once, whatever the number of rounds handed it.
    db.counters.insert_one({"_id": "cons-1"})
    store.open_round({"_id": "new-5", "round": "r5", "created_ts": 5.0, "keys": []},
                     [("r4", fourth, {"cons-1": {"p:web": 3}})])
    sixth = store.open_round({"_id": "new-6", "round": "r6", "created_ts": 6.0, "keys": []},
                             [("r4", fourth, {"cons-1": {"p:web": 3}}), ("r5", fourth, {"cons-1": {"p:web": 2}})])
    assert sixth != fourth, "r5 held r4's place: r6 writes its own"
    store.finish_rounds([("r5", fourth, {"cons-1": {"p:web": 2}}), ("r6", sixth, {"cons-1": {"p:web": 1}})], [])
    assert store.counters("cons-1") == {"p:web": 6}
    assert sorted(d["round"] for d in round_documents(db)) == ["r3"], "r3 is the recovery's"
    mongo.client().drop_database(db.name)
