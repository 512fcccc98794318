"""Vote ingest through the gateway over real HTTP: exactly-once counting under concurrent resends, the
per-vote report, pressedAt rules, repeated presses, kiosk token scope, rotation and revocation, alerts."""
import asyncio
import threading
import uuid
from datetime import datetime, timedelta, timezone

import httpx
from kombu import Connection, Exchange, Queue
import pytest

from tests.support import Platform, token, wait_until

SUBMIT = """mutation($votes: [KioskVoteInput!]!) { submitKioskVotes(votes: $votes) {
  accepted duplicates rejected { id reason } } }"""
SERIES = """query($site: ID, $kiosk: ID, $from: DateTime!, $to: DateTime!, $g: Granularity!) {
  satisfaction(siteId: $site, kioskId: $kiosk, from: $from, to: $to, granularity: $g) {
    total { total counts negative happyIndex } points { start total happyIndex } profile { total } } }"""


@pytest.fixture(scope="module")
def platform(mongo, broker):
    mongo.drop_all()
    p = Platform(mongo, broker, PARVIS_SATISFACTION_WATCH_INTERVAL="0.5")
    p.service("satisfaction")
    p.service("notification")  # the revocation list: without it, the gateway refuses every token (fail closed)
    p.gateway()
    yield p
    p.stop_reporting_crashes((None, 0, -15))


def gql(platform, query, variables=None, tok=None):
    headers = {"Authorization": f"Bearer {tok}"} if tok else {}
    r = httpx.post(f"{platform.url}/graphql", json={"query": query, "variables": variables or {}},
                   headers=headers, timeout=30)
    return r.json()


def ok(body):
    assert "errors" not in body, body
    return body["data"]


AGENT = token("agent", subject="agent:test")


def make_site(platform, **alerts):
    q = "mutation($s: SiteInput!) { saveSite(site: $s) { id name alerts { minVotes } } }"
    site = {"name": f"Piscine {uuid.uuid4().hex[:6]}", "commune": "castanet-tolosan",
            "competence": "Equipements culturels, sportifs et de loisirs"}
    if alerts:
        site["alerts"] = alerts
    return ok(gql(platform, q, {"s": site}, AGENT))["saveSite"]


def make_kiosk(platform, site_id, **extra):
    q = """mutation($k: KioskInput!) { registerKiosk(kiosk: $k) { token provisioningUrl kiosk { id scale } } }"""
    return ok(gql(platform, q, {"k": {"siteId": site_id, "name": "Borne", **extra}}, AGENT))["registerKiosk"]


def votes(n, start=None, spacing=4, rating=None):
    start = start or datetime.now(timezone.utc) - timedelta(hours=2)
    return [{"id": str(uuid.uuid4()), "rating": rating or (i % 4) + 1,
             "pressedAt": (start + timedelta(seconds=i * spacing)).isoformat()} for i in range(n)]


def total(platform, site_id=None, kiosk_id=None):
    now = datetime.now(timezone.utc)
    data = ok(gql(platform, SERIES, {"site": site_id, "kiosk": kiosk_id, "from": (now - timedelta(days=2)).isoformat(),
                                     "to": (now + timedelta(days=1)).isoformat(), "g": "HOUR"}, AGENT))
    return data["satisfaction"]


def test_three_concurrent_overlapping_resends_count_each_vote_once(platform):
    site = make_site(platform)
    kiosk = make_kiosk(platform, site["id"])
    pool = votes(300)
    batches = [pool[0:200], pool[100:300], pool[50:250]]
    replies = []

    def send(batch):
        replies.append(ok(gql(platform, SUBMIT, {"votes": batch}, kiosk["token"]))["submitKioskVotes"])

    threads = [threading.Thread(target=send, args=(b,)) for b in batches]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    accepted = [i for r in replies for i in r["accepted"]]
    assert sorted(accepted) == sorted(v["id"] for v in pool), "each vote accepted by exactly one of the batches"
    assert sum(len(r["duplicates"]) for r in replies) == 600 - 300
    assert all(not r["rejected"] for r in replies)
    # And once more, everything: all duplicates, nothing counted again.
    again = ok(gql(platform, SUBMIT, {"votes": pool}, kiosk["token"]))["submitKioskVotes"]
    assert again["accepted"] == [] and len(again["duplicates"]) == 300
    series = total(platform, site_id=site["id"])
    assert series["total"]["total"] == 300 and series["total"]["counts"][:4] == [75, 75, 75, 75]
    assert series["total"]["negative"] == 150 and series["total"]["happyIndex"] == 50.0
    assert sum(p["total"] for p in series["points"]) == 300 and sum(p["total"] for p in series["profile"]) == 300
    assert total(platform, kiosk_id=kiosk["kiosk"]["id"])["total"]["total"] == 300


def test_each_vote_gets_its_answer_and_repeated_presses_count_as_one(platform):
    site = make_site(platform)
    kiosk = make_kiosk(platform, site["id"])
    now = datetime.now(timezone.utc)
    good = votes(2, start=now - timedelta(minutes=30), spacing=10, rating=1)
    repeated = {"id": str(uuid.uuid4()), "rating": 1, "pressedAt": (now - timedelta(minutes=30, seconds=-1)).isoformat()}
    future = {"id": str(uuid.uuid4()), "rating": 1, "pressedAt": (now + timedelta(hours=1)).isoformat()}
    old = {"id": str(uuid.uuid4()), "rating": 1, "pressedAt": (now - timedelta(days=31)).isoformat()}
    bad_rating = {"id": str(uuid.uuid4()), "rating": 7, "pressedAt": now.isoformat()}
    bad_id = {"id": "not-a-uuid", "rating": 1, "pressedAt": now.isoformat()}
    r = ok(gql(platform, SUBMIT, {"votes": [*good, repeated, future, old, bad_rating, bad_id]}, kiosk["token"]))
    report = r["submitKioskVotes"]
    assert sorted(report["accepted"]) == sorted([good[0]["id"], good[1]["id"], repeated["id"]])
    reasons = {x["id"]: x["reason"] for x in report["rejected"]}
    assert set(reasons) == {future["id"], old["id"], bad_rating["id"], "not-a-uuid"}
    assert "futur" in reasons[future["id"]] and "30 jours" in reasons[old["id"]]
    series = total(platform, site_id=site["id"])
    assert series["total"]["total"] == 2, "the press one second after another counts as one"
    assert series["total"]["happyIndex"] == 100.0
    # More than 500 at once is refused as a whole, with a message naming the field.
    too_many = gql(platform, SUBMIT, {"votes": votes(501)}, kiosk["token"])
    assert too_many["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"


def test_a_kiosk_token_does_only_its_own_kiosk_and_rotation_and_revocation_cut_it_off(platform):
    site = make_site(platform)
    kiosk = make_kiosk(platform, site["id"])
    tok = kiosk["token"]
    assert kiosk["provisioningUrl"].endswith(f"/kiosk#token={tok}")
    hb = ok(gql(platform, "mutation { kioskHeartbeat(battery: 80, queueLength: 0, appVersion: \"1\") { id scale question } }",
                tok=tok))["kioskHeartbeat"]
    assert hb["id"] == kiosk["kiosk"]["id"] and hb["scale"] == 4
    # A kiosk token reads nothing and manages nothing.
    for q in ("{ sites { id } }", "{ kiosks { id } }", "{ satisfactionAlerts { id } }"):
        assert gql(platform, q, tok=tok)["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    # An agent cannot submit votes; a kiosk token for an unknown kiosk is refused by the service.
    assert gql(platform, SUBMIT, {"votes": votes(1)}, AGENT)["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    stranger = token("kiosk", kiosk="kiosk-unknown")
    assert gql(platform, SUBMIT, {"votes": votes(1)}, stranger)["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    updated = ok(gql(platform, "mutation($id: ID!, $c: KioskUpdateInput!) { updateKiosk(id: $id, changes: $c) "
                               "{ question scale followUp { choices } } }",
                     {"id": kiosk["kiosk"]["id"], "c": {"question": "Et aujourd'hui ?", "scale": 5,
                                                         "followUp": {"question": "Pourquoi ?", "choices": ["Attente"]}}},
                     AGENT))["updateKiosk"]
    assert updated == {"question": "Et aujourd'hui ?", "scale": 5, "followUp": {"choices": ["Attente"]}}
    hb = ok(gql(platform, "mutation { kioskHeartbeat { question scale } }", tok=tok))["kioskHeartbeat"]
    assert hb == {"question": "Et aujourd'hui ?", "scale": 5}
    # Rotation: the old token stops, the new one works.
    rotated = ok(gql(platform, "mutation($id: ID!) { rotateKioskToken(id: $id) { token } }",
                     {"id": kiosk["kiosk"]["id"]}, AGENT))["rotateKioskToken"]["token"]
    assert gql(platform, SUBMIT, {"votes": votes(1)}, tok)["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    assert len(ok(gql(platform, SUBMIT, {"votes": votes(1)}, rotated))["submitKioskVotes"]["accepted"]) == 1
    # Revocation: nothing works any more.
    revoked = ok(gql(platform, "mutation($id: ID!) { revokeKiosk(id: $id) { revoked } }",
                     {"id": kiosk["kiosk"]["id"]}, AGENT))["revokeKiosk"]
    assert revoked["revoked"] is True
    assert gql(platform, SUBMIT, {"votes": votes(1)}, rotated)["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"


def test_an_alert_is_raised_once_and_resolved_once(platform, mongo):
    site = make_site(platform, thresholdPercent=50, windowMinutes=15, minVotes=4)
    kiosk = make_kiosk(platform, site["id"])
    db = mongo.client().parvis_satisfaction
    conn = Connection(platform.broker.url)
    exchange = Exchange("satisfaction.events", type="topic", durable=True)
    queue = Queue(f"test-alerts-{uuid.uuid4().hex[:6]}", exchange, routing_key="satisfaction.#",
                  auto_delete=True)
    queue(conn.default_channel).declare()

    now = datetime.now(timezone.utc)
    t = [now - timedelta(minutes=10) + timedelta(seconds=5 * i) for i in range(40)]
    seq = [3, 4, 1]          # 3 votes, 2 negative: below min_votes
    seq += [4]               # 4 votes, 3 negative: raised
    seq += [3, 4, 1]         # still holds: not raised again
    seq += [1, 1, 1, 1]      # 11 votes, 5 negative (45 %): resolved
    seq += [1, 2]            # still fine: not resolved again
    i = 0
    states, kiosk_states = [], []
    for rating in seq:
        vote = {"id": str(uuid.uuid4()), "rating": rating, "pressedAt": t[i].isoformat()}
        i += 1
        ok(gql(platform, SUBMIT, {"votes": [vote]}, kiosk["token"]))
        states.append(db.sites.find_one({"_id": site["id"]}).get("open_alert_id"))
        kiosk_states.append(db.kiosks.find_one({"_id": kiosk["kiosk"]["id"]}).get("open_alert_id"))
    assert [s is not None for s in states] == [False, False, False, True, True, True, True, True, True, True,
                                               False, False, False]
    # The site's only kiosk has the site's votes: its own alert follows the same episode.
    assert [s is not None for s in kiosk_states] == [s is not None for s in states]
    alerts = sorted(db.alerts.find({"site_id": site["id"]}), key=lambda a: a.get("kiosk_id") or "")
    assert [a.get("kiosk_id") for a in alerts] == [None, kiosk["kiosk"]["id"]]
    assert all(a["resolved_ts"] is not None for a in alerts)
    listed = ok(gql(platform, "query($s: ID) { satisfactionAlerts(siteId: $s) { id kioskId counts { votes negative } "
                              "rule { windowMinutes minVotes thresholdPercent } resolvedAt } }", {"s": site["id"]}, AGENT))
    site_wide = [a for a in listed["satisfactionAlerts"] if a["kioskId"] is None]
    assert len(site_wide) == 1 and site_wide[0]["rule"]["minVotes"] == 4 and len(listed["satisfactionAlerts"]) == 2
    # On the bus, through the outbox: exactly one raised and one resolved, carrying the rule and the counts.
    wait_until(lambda: (db.sites.find_one({"_id": site["id"]}).get("_outbox_n") or 0) == 0, 10, 0.2, "outbox drained")
    wait_until(lambda: (db.kiosks.find_one({"_id": kiosk["kiosk"]["id"]}).get("_outbox_n") or 0) == 0, 10, 0.2,
               "kiosk outbox drained")
    received = []
    bound = queue(conn.default_channel)
    while (message := bound.get(no_ack=True)) is not None:
        received.append(message.payload)
    conn.release()
    mine = [e for e in received if e["type"].startswith("satisfaction.alert_") and e["data"]["site_id"] == site["id"]
            and e["data"].get("kiosk_id") is None]
    assert [e["type"] for e in mine] == ["satisfaction.alert_raised", "satisfaction.alert_resolved"]
    of_kiosk = [e["type"] for e in received if e["type"].startswith("satisfaction.alert_")
                and e["data"].get("kiosk_id") == kiosk["kiosk"]["id"]]
    assert of_kiosk == ["satisfaction.alert_raised", "satisfaction.alert_resolved"]
    raised = mine[0]["data"]
    assert raised["rule"]["min_votes"] == 4 and raised["counts"] == {"votes": 4, "negative": 3,
                                                                       "negative_percent": 75.0, "happy_index": 33.3}
    assert raised["commune"] == "castanet-tolosan" and raised["alert_id"] == mine[1]["data"]["alert_id"]


def metric(platform, name, **labels):
    return platform.metric("satisfaction", name, **labels)


def test_metrics_count_votes_by_site_and_rating_and_time_the_ingest(platform):
    site = make_site(platform)
    kiosk = make_kiosk(platform, site["id"])
    batch = votes(8, start=datetime.now(timezone.utc) - timedelta(minutes=5), spacing=5)
    ok(gql(platform, SUBMIT, {"votes": batch}, kiosk["token"]))
    assert metric(platform, "parvis_satisfaction_votes_counted_total", site=site["id"], rating="1") == 2
    assert metric(platform, "parvis_satisfaction_votes_counted_total", site=site["id"], rating="4") == 2
    assert metric(platform, "parvis_satisfaction_happy_index", site=site["id"]) == 50.0
    assert metric(platform, "parvis_satisfaction_ingest_lag_seconds_count", since="received") >= 8
    assert metric(platform, "parvis_satisfaction_ingest_lag_seconds_count", since="pressed") >= 8
    wait_until(lambda: metric(platform, "parvis_satisfaction_kiosks_offline", site=site["id"]) == 0, 10, 0.2,
               "offline kiosks gauge for the site")


def test_the_running_service_takes_fifty_submits_at_once(platform):
    """The service as `parvis service satisfaction` starts it: 50 workers (and prefetch), see parvis/config.py."""
    assert metric(platform, "parvis_workers_max", service="satisfaction") == 50


def test_satisfaction_updates_are_pushed_over_graphql_transport_ws(platform):
    import asyncio
    import json

    import websockets

    site = make_site(platform)
    kiosk = make_kiosk(platform, site["id"])

    async def scenario():
        url = platform.url.replace("http://", "ws://") + "/graphql"
        async with websockets.connect(url, subprotocols=["graphql-transport-ws"]) as ws:
            await ws.send(json.dumps({"type": "connection_init", "payload": {"Authorization": f"Bearer {AGENT}"}}))
            assert json.loads(await ws.recv())["type"] == "connection_ack"
            await ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": {
                "query": "subscription($s: ID!) { satisfactionUpdates(siteId: $s) { totalToday happyIndexToday } }",
                "variables": {"s": site["id"]}}}))
            first = json.loads(await asyncio.wait_for(ws.recv(), 10))
            assert first["type"] == "next", first
            assert first["payload"]["data"]["satisfactionUpdates"]["totalToday"] == 0
            now = datetime.now(timezone.utc)
            await asyncio.to_thread(lambda: ok(gql(platform, SUBMIT, {"votes": votes(2, start=now - timedelta(seconds=30),
                                                                                  rating=1)}, kiosk["token"])))
            second = json.loads(await asyncio.wait_for(ws.recv(), 10))
            assert second["payload"]["data"]["satisfactionUpdates"] == {"totalToday": 2, "happyIndexToday": 100.0}
            await ws.send(json.dumps({"id": "1", "type": "complete"}))

        async with websockets.connect(url, subprotocols=["graphql-transport-ws"]) as ws:  # no token: refused
            await ws.send(json.dumps({"type": "connection_init", "payload": {}}))
            await ws.recv()
            await ws.send(json.dumps({"id": "2", "type": "subscribe", "payload": {
                "query": "subscription($s: ID!) { satisfactionUpdates(siteId: $s) { totalToday } }",
                "variables": {"s": site["id"]}}}))
            refused = json.loads(await asyncio.wait_for(ws.recv(), 10))
            assert refused["payload"]["data"] is None
            assert "Connectez-vous" in refused["payload"]["errors"][0]["message"]
            assert refused["payload"]["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"

    asyncio.run(scenario())


def test_demo_sites_are_seeded_once_with_working_kiosk_tokens(platform):
    from gateway import auth
    from gateway.rpc import RpcClient
    from parvis.seed import seed_demo_sites
    from tests.support import TEST_SECRET

    async def seed(token_ids):
        rpc = RpcClient(platform.broker.url, secret=TEST_SECRET)
        try:
            return await seed_demo_sites(rpc, token_ids)
        finally:
            await rpc.close()

    stale = auth.issue(TEST_SECRET, "kiosk", kiosk="kiosk-accueil-labege")
    demo = auth.issue(TEST_SECRET, "kiosk", kiosk="kiosk-accueil-labege")
    first = asyncio.run(seed({"kiosk-accueil-labege": stale.token_id}))
    again = asyncio.run(seed({"kiosk-accueil-labege": demo.token_id}))  # the next start: a new token
    assert first == again == {"sites": 4, "kiosks": 1}
    refused = gql(platform, "mutation { kioskHeartbeat { siteName } }", tok=stale.value)
    assert refused["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED", "the previous start's token stops"
    sites = {s["id"]: s for s in ok(gql(platform, "{ sites { id name commune } }", tok=AGENT))["sites"]}
    assert sites["site-accueil-labege"]["commune"] == "labege" and "site-mediatheque-ramonville" in sites
    hb = ok(gql(platform, "mutation { kioskHeartbeat { siteName followUp { choices } } }", tok=demo.value))
    assert hb["kioskHeartbeat"]["siteName"] == "Accueil du Sicoval (Labège)"
