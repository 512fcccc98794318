"""The repeated-press rule replayed (recountKiosk) and the alerts of one kiosk, on the real stack: flags and
every counter follow the kiosk's current rule, a second run changes nothing, a recount left half-done by a
crash is finished by the recovery without counting twice; a kiosk's alert is raised once and resolved once."""
import threading
import uuid
from datetime import datetime, timedelta, timezone

from kombu import Connection, Exchange, Queue

from tests.integration.test_satisfaction_ingest import (  # noqa: F401 - platform: the same stack, per module
    AGENT, SERIES, SUBMIT, gql, make_kiosk, make_site, ok, platform)
from tests.support import token, wait_until

RECOUNT = """mutation($k: ID!, $from: DateTime!, $to: DateTime!) {
  recountKiosk(kioskId: $k, from: $from, to: $to) { examined flagged unflagged } }"""
UPDATE = "mutation($id: ID!, $c: KioskUpdateInput!) { updateKiosk(id: $id, changes: $c) { repeatSeconds } }"
OFFSETS = (0, 1, 2, 10, 11, 20, 30, 31, 32, 33, 40, 50)  # with 3 s: 0, 10, 20, 30, 40, 50 count (6 of 12)


def series(platform, granularity, site_id=None, kiosk_id=None):
    now = datetime.now(timezone.utc)
    return ok(gql(platform, SERIES, {"site": site_id, "kiosk": kiosk_id, "from": (now - timedelta(days=2)).isoformat(),
                                     "to": (now + timedelta(days=1)).isoformat(), "g": granularity}, AGENT))["satisfaction"]


def figures(platform, site_id, kiosk_id):
    """Totals of the site and the kiosk by hour and by day, and the points' and profile's sums."""
    out = []
    for scope in ({"site_id": site_id}, {"kiosk_id": kiosk_id}):
        for g in ("HOUR", "DAY"):
            s = series(platform, g, **scope)
            out.append((s["total"], sum(p["total"] for p in s["points"]), sum(p["total"] for p in s["profile"])))
    return out


def minute_totals(db, site_id, kiosk_id):
    """The alert windows' counters: the site's minutes, and the kiosk's part of them."""
    docs = list(db.counters.find({"scope": "site", "ref": site_id, "gran": "minute"}))
    return [sum(d.get("total", 0) for d in docs), sum(d.get(f"k:{kiosk_id}:total", 0) for d in docs)]


def kiosk_with_presses(platform, hours_ago: int):
    """A new site and kiosk, and the OFFSETS presses sent `hours_ago` hours ago:
    (site, kiosk, kiosk id, first press, the votes sent, the submit's report)."""
    site = make_site(platform)
    kiosk = make_kiosk(platform, site["id"])
    base = (datetime.now(timezone.utc) - timedelta(hours=hours_ago)).replace(microsecond=0)
    sent = [{"id": str(uuid.uuid4()), "rating": i % 4 + 1, "pressedAt": (base + timedelta(seconds=s)).isoformat()}
            for i, s in enumerate(OFFSETS)]
    report = ok(gql(platform, SUBMIT, {"votes": sent}, kiosk["token"]))["submitKioskVotes"]
    return site, kiosk, kiosk["kiosk"]["id"], base, sent, report


def recount(platform, kiosk_id, start, end):
    return ok(gql(platform, RECOUNT, {"k": kiosk_id, "from": start.isoformat(), "to": end.isoformat()},
                  AGENT))["recountKiosk"]


def test_recount_replays_the_kiosks_rule_on_flags_and_every_counter(platform, mongo):
    db = mongo.client().parvis_satisfaction
    site, kiosk, kid, base, sent, report = kiosk_with_presses(platform, 2)
    assert len(report["accepted"]) == 12
    original = figures(platform, site["id"], kid)
    assert original[0][0]["total"] == 6 and all(f[1] == f[2] == 6 for f in original)
    assert minute_totals(db, site["id"], kid) == [6, 6]
    start, end = base - timedelta(minutes=1), datetime.now(timezone.utc)

    # Rule 0 s: every press counts.
    assert ok(gql(platform, UPDATE, {"id": kid, "c": {"repeatSeconds": 0}}, AGENT))["updateKiosk"]["repeatSeconds"] == 0
    assert recount(platform, kid, start, end) == {"examined": 12, "flagged": 0, "unflagged": 6}
    every = figures(platform, site["id"], kid)
    counts = [sum(1 for v in sent if v["rating"] == r) for r in (1, 2, 3, 4)]
    for total, points, profile in every:
        assert total["total"] == points == profile == 12
        assert total["counts"][:4] == counts and total["negative"] == 6 and total["happyIndex"] == 50.0
    assert minute_totals(db, site["id"], kid) == [12, 12]
    assert db.votes.count_documents({"kiosk_id": kid, "repeated": True}) == 0
    # Again: nothing changes.
    assert recount(platform, kid, start, end) == {"examined": 12, "flagged": 0, "unflagged": 0}
    assert figures(platform, site["id"], kid) == every
    # Back to 3 s: back to the counts the ingest made.
    ok(gql(platform, UPDATE, {"id": kid, "c": {"repeatSeconds": 3}}, AGENT))
    assert recount(platform, kid, start, end) == {"examined": 12, "flagged": 6, "unflagged": 0}
    assert figures(platform, site["id"], kid) == original
    assert minute_totals(db, site["id"], kid) == [6, 6]
    assert db.recounts.count_documents({}) == 0

    # The first press of the period is judged against the press before it (1 s earlier, outside the period).
    ok(gql(platform, UPDATE, {"id": kid, "c": {"repeatSeconds": 0}}, AGENT))
    recount(platform, kid, start, end)
    ok(gql(platform, UPDATE, {"id": kid, "c": {"repeatSeconds": 3}}, AGENT))
    partial = recount(platform, kid, base + timedelta(seconds=1.5), end)
    assert partial == {"examined": 10, "flagged": 5, "unflagged": 0}  # 2, 11, 31, 32, 33
    assert series(platform, "DAY", kiosk_id=kid)["total"]["total"] == 7
    flagged = {d["_id"] for d in db.votes.find({"kiosk_id": kid, "repeated": True})}
    assert flagged == {sent[i]["id"] for i in (2, 4, 7, 8, 9)}

    # The period is 31 days at most, positive, and only agents recount.
    too_long = gql(platform, RECOUNT, {"k": kid, "from": (end - timedelta(days=32)).isoformat(), "to": end.isoformat()},
                   AGENT)
    assert too_long["errors"][0]["extensions"] == {"code": "BAD_USER_INPUT", "field": "to"}
    backwards = gql(platform, RECOUNT, {"k": kid, "from": end.isoformat(), "to": start.isoformat()}, AGENT)
    assert backwards["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
    operator = token("operator", subject="operator:test")
    denied = gql(platform, RECOUNT, {"k": kid, "from": start.isoformat(), "to": end.isoformat()}, operator)
    assert denied["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    unknown = gql(platform, RECOUNT, {"k": "kiosk-nope", "from": start.isoformat(), "to": end.isoformat()}, AGENT)
    assert unknown["errors"][0]["extensions"]["code"] == "NOT_FOUND"


def test_recounts_while_the_kiosk_keeps_sending_lose_no_concurrent_vote(platform, mongo):
    """Recounts move counters by the deltas of the votes they flip ($inc), never by a recomputed total: votes
    counted meanwhile by the ingest (in the same period) all stay counted."""
    db = mongo.client().parvis_satisfaction
    site, kiosk, kid, base, _, _ = kiosk_with_presses(platform, 5)
    later = base + timedelta(minutes=30)
    errors = []

    def keep_sending():  # 200 votes 5 s apart: never a repeated press, whatever the rule
        try:
            for b in range(10):
                batch = [{"id": str(uuid.uuid4()), "rating": 2, "pressedAt": (later + timedelta(seconds=5 * (20 * b + i)))
                          .isoformat()} for i in range(20)]
                assert len(ok(gql(platform, SUBMIT, {"votes": batch}, kiosk["token"]))["submitKioskVotes"]["accepted"]) == 20
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    sender = threading.Thread(target=keep_sending)
    sender.start()
    start, end = base - timedelta(minutes=1), datetime.now(timezone.utc)
    runs = 0
    while sender.is_alive() or runs < 4:
        seconds = 0 if runs % 2 == 0 else 3
        ok(gql(platform, UPDATE, {"id": kid, "c": {"repeatSeconds": seconds}}, AGENT))
        recount(platform, kid, start, end)
        runs += 1
    sender.join()
    assert not errors, errors
    ok(gql(platform, UPDATE, {"id": kid, "c": {"repeatSeconds": 3}}, AGENT))
    final = recount(platform, kid, start, datetime.now(timezone.utc))
    assert final["examined"] == 212 and final["unflagged"] == 0
    for scope in ({"kiosk_id": kid}, {"site_id": site["id"]}):
        for g in ("HOUR", "DAY"):
            assert series(platform, g, **scope)["total"]["total"] == 206, (scope, g, runs)
    assert minute_totals(db, site["id"], kid) == [206, 206]
    assert db.votes.count_documents({"kiosk_id": kid, "repeated": True}) == 6


def test_a_recount_left_half_done_by_a_crash_is_finished_once_by_the_recovery(platform, mongo):
    """The crash points of a recount, made deterministic with the store: plan written, counters applied
    (part of them, or all) but no flag changed. The recovery finishes it; the markers skip what was done."""
    from services.satisfaction import domain
    from services.satisfaction.store import SatisfactionStore

    db = mongo.client().parvis_satisfaction
    store = SatisfactionStore(db)
    site, kiosk, kid, base, _, _ = kiosk_with_presses(platform, 3)
    assert series(platform, "DAY", kiosk_id=kid)["total"]["total"] == 6
    for crash_point, seconds, expected in (("partial_counters", 0, 12), ("all_counters", 3, 6)):
        votes = store.kiosk_votes(kid, base.timestamp() - 60, base.timestamp() + 3600)
        flag, unflag = domain.flag_flips(votes, domain.replay_flags(votes, None, seconds))
        assert len(flag) + len(unflag) == 6
        deltas = domain.recount_deltas(flag, unflag)
        tok = store.claim_recount(kid)
        assert tok and store.claim_recount(kid) is None, "one recount at a time per kiosk"
        long_ago = (datetime.now(timezone.utc) - timedelta(minutes=5)).timestamp()  # a crash 5 minutes ago
        assert store.plan_recount(kid, tok, [v["_id"] for v in flag], [v["_id"] for v in unflag], deltas, long_ago)
        entries = {cid: e for cid, e in deltas.items()}
        if crash_point == "partial_counters":
            entries = dict(list(entries.items())[: len(entries) // 2])
        store.apply_counters(tok, entries)
        wait_until(lambda: db.recounts.count_documents({"_id": kid}) == 0, 30, 0.2, f"recount recovered ({crash_point})")
        assert series(platform, "DAY", kiosk_id=kid)["total"]["total"] == expected
        assert series(platform, "HOUR", site_id=site["id"])["total"]["total"] == expected
        assert minute_totals(db, site["id"], kid) == [expected, expected]
        assert db.votes.count_documents({"kiosk_id": kid, "repeated": True}) == 12 - expected
    # A recount through the API now finds nothing to change (its rule is the kiosk's: 3 s).
    assert recount(platform, kid, base - timedelta(minutes=1), datetime.now(timezone.utc))["flagged"] == 0


def test_votes_of_a_batch_left_open_by_a_crash_and_recounted_meanwhile_are_counted_once(platform, mongo):
    """A crash after the votes were stored, before their counters: a recount meanwhile moves them by its own
    deltas, and the batch's recovery counts them with the flag they were stored with, not the recount's."""
    db = mongo.client().parvis_satisfaction
    site = make_site(platform)
    kiosk = make_kiosk(platform, site["id"])
    kid = kiosk["kiosk"]["id"]
    base = (datetime.now(timezone.utc) - timedelta(hours=4)).replace(microsecond=0)
    batch = uuid.uuid4().hex
    votes = [{"_id": str(uuid.uuid4()), "kiosk_id": kid, "site_id": site["id"], "scale": 4, "rating": i % 4 + 1,
              "pressed_ts": (base + timedelta(seconds=s)).timestamp(), "received_ts": base.timestamp(), "batch": batch}
             for i, s in enumerate(OFFSETS)]
    for v in votes[1:3] + votes[4:5] + votes[7:10]:  # as the ingest flags them with 3 s
        v["repeated"] = True
    # Left by the crash: the batch document (not yet due for recovery) and its votes, no counter.
    db.batches.insert_one({"_id": batch, "vote_ids_text": " ".join(v["_id"] for v in votes),
                           "created_at": datetime.now(timezone.utc), "created_ts": time_far_ahead()})
    db.votes.insert_many(votes)
    ok(gql(platform, UPDATE, {"id": kid, "c": {"repeatSeconds": 0}}, AGENT))
    assert recount(platform, kid, base - timedelta(minutes=1), datetime.now(timezone.utc))["unflagged"] == 6
    assert series(platform, "DAY", kiosk_id=kid)["total"]["total"] == 6, "the recount's deltas: +6"
    db.batches.update_one({"_id": batch}, {"$set": {"created_ts": 0.0}})  # now due
    wait_until(lambda: db.batches.count_documents({"_id": batch}) == 0, 30, 0.2, "batch recovered")
    for scope in ({"kiosk_id": kid}, {"site_id": site["id"]}):
        assert series(platform, "HOUR", **scope)["total"]["total"] == 12, "each vote counted once"
    assert minute_totals(db, site["id"], kid) == [12, 12]
    assert recount(platform, kid, base - timedelta(minutes=1), datetime.now(timezone.utc))["unflagged"] == 0


def time_far_ahead() -> float:
    return (datetime.now(timezone.utc) + timedelta(days=1)).timestamp()


def test_a_kiosk_alert_is_raised_once_and_resolved_once_while_its_site_stays_fine(platform, mongo):
    site = make_site(platform, thresholdPercent=50, windowMinutes=15, minVotes=4)
    bad, good = make_kiosk(platform, site["id"]), make_kiosk(platform, site["id"])
    bad_id = bad["kiosk"]["id"]
    db = mongo.client().parvis_satisfaction
    conn = Connection(platform.broker.url)
    exchange = Exchange("satisfaction.events", type="topic", durable=True)
    queue = Queue(f"test-kiosk-alerts-{uuid.uuid4().hex[:6]}", exchange, routing_key="satisfaction.#", auto_delete=True)
    queue(conn.default_channel).declare()

    now = datetime.now(timezone.utc)
    t = iter(now - timedelta(minutes=10) + timedelta(seconds=5 * i) for i in range(60))

    def send(kiosk, rating):
        vote = {"id": str(uuid.uuid4()), "rating": rating, "pressedAt": next(t).isoformat()}
        ok(gql(platform, SUBMIT, {"votes": [vote]}, kiosk["token"]))

    for _ in range(6):
        send(good, 1)
    states = []
    seq = [4, 4, 4]             # 3 votes: below min_votes
    seq += [4]                  # 4 of 4 negative: raised (the site: 4 of 10, 40 %)
    seq += [3]                  # still holds: not raised again
    seq += [1, 1, 1, 1, 1]      # 10 votes, 5 negative (50 %): still holds
    seq += [1]                  # 11 votes, 5 negative (45 %): resolved
    seq += [1, 2]               # still fine: not resolved again
    for rating in seq:
        send(bad, rating)
        states.append((db.kiosks.find_one({"_id": bad_id}).get("open_alert_id"),
                       db.sites.find_one({"_id": site["id"]}).get("open_alert_id")))
    assert [k is not None for k, _ in states] == [False] * 3 + [True] * 7 + [False] * 3
    assert all(s is None for _, s in states), "the site as a whole never broke its rule"
    assert db.kiosks.find_one({"_id": good["kiosk"]["id"]}).get("open_alert_id") is None
    alerts = list(db.alerts.find({"site_id": site["id"]}))
    assert len(alerts) == 1 and alerts[0]["kiosk_id"] == bad_id and alerts[0]["resolved_ts"] is not None
    listed = ok(gql(platform, "query($s: ID) { satisfactionAlerts(siteId: $s) { id kioskId counts { votes negative } "
                              "resolvedAt } }", {"s": site["id"]}, AGENT))["satisfactionAlerts"]
    assert [(a["kioskId"], a["counts"]) for a in listed] == [(bad_id, {"votes": 4, "negative": 4})]
    assert listed[0]["resolvedAt"] is not None
    # On the bus, through the kiosk's outbox: one raised, one resolved, naming the kiosk.
    wait_until(lambda: (db.kiosks.find_one({"_id": bad_id}).get("_outbox_n") or 0) == 0, 10, 0.2, "outbox drained")
    received = []
    bound = queue(conn.default_channel)
    while (message := bound.get(no_ack=True)) is not None:
        received.append(message.payload)
    conn.release()
    mine = [e for e in received if e["type"].startswith("satisfaction.alert_") and e["data"]["site_id"] == site["id"]]
    assert [e["type"] for e in mine] == ["satisfaction.alert_raised", "satisfaction.alert_resolved"]
    assert all(e["data"]["kiosk_id"] == bad_id and e["data"]["kiosk_name"] == "Borne" for e in mine)
    assert mine[0]["data"]["counts"] == {"votes": 4, "negative": 4, "negative_percent": 100.0, "happy_index": 0.0}
    assert mine[1]["data"]["alert_id"] == mine[0]["data"]["alert_id"] == alerts[0]["_id"]
