"""kill -9 of the consultation service while budget ballots stream in through the gateway: after a restart, with each
voter resending until he is answered (a receipt, or "already voted"), every acknowledged ballot is stored and
counted, none twice, and every voter who was told he had voted is counted once.

Also the crash points made deterministic, as the recovery meets them: a round that claimed its voters and never
wrote its ballots (undone: those voters may vote), and a round whose ballots and counts were half-written (finished,
each ballot once)."""
import threading
import time
import uuid

import httpx
import pytest

from tests.consultation_flows import CAST, budget_to_ballot, citizen
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

    wait_until(lambda: db.rounds.count_documents({}) == 0, 30, 0.2, "no round left to finish")
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

    wait_until(lambda: db.rounds.count_documents({}) == 0, 20, 0.2,
               "the half-written round finished, the one never written undone")
    assert db.participations.count_documents({"_id": {"$regex": "cit-lost"}}) == 0, "those voters may vote again"
    assert db.participations.count_documents({"_id": keys[3]}) == 1, "a participation of another round stays"
    assert db.participations.count_documents({"_id": {"$regex": "cit-half"}}) == 2
    assert sorted(b["receipt"] for b in db.ballots.find({"consultation_id": bid, "receipt": {"$exists": True}})) == \
        sorted(b["receipt"] for b in ballots)
    counters = db.counters.find_one({"_id": bid})
    assert counters["p:web"] == 2 and counters[f"v:{ids[0]}"] == 1 and counters[f"v:{ids[1]}"] == 1, \
        "counts applied before the crash are not applied again"
