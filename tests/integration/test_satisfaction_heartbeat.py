"""Heartbeats: a kiosk silent during its opening hours is reported offline once (satisfaction.kiosk_offline),
its return resolves it (satisfaction.kiosk_online); a kiosk silent while closed is not reported."""
import uuid
from datetime import datetime, timezone
from zoneinfo import ZoneInfo

import pytest
from kombu import Connection, Exchange, Queue

from tests.support import Platform, token, wait_until

AGENT = token("agent", subject="agent:test")
HEARTBEAT = 'mutation { kioskHeartbeat(battery: 55, queueLength: 3, appVersion: "1.0.0") { id } }'


@pytest.fixture
def platform(mongo, broker):
    mongo.drop_all()
    p = Platform(mongo, broker, PARVIS_KIOSK_OFFLINE_AFTER="2", PARVIS_SATISFACTION_WATCH_INTERVAL="0.5")
    p.service("satisfaction")
    p.service("notification")  # the revocation list: without it, the gateway refuses every token (fail closed)
    p.gateway()
    yield p
    p.stop()


def gql(platform, query, variables=None, tok=AGENT):
    return platform.graphql_data(query, variables, tok)


def test_a_silent_kiosk_goes_offline_once_during_opening_hours_and_comes_back(platform):
    conn = Connection(platform.broker.url)
    queue = Queue(f"test-kiosks-{uuid.uuid4().hex[:6]}", Exchange("satisfaction.events", type="topic", durable=True),
                  routing_key="satisfaction.#", auto_delete=True)
    queue(conn.default_channel).declare()
    site = gql(platform, "mutation($s: SiteInput!) { saveSite(site: $s) { id } }",
               {"s": {"name": "Piscine", "commune": "castanet-tolosan", "competence": "Sport"}})["saveSite"]
    closed_day = (datetime.now(ZoneInfo("Europe/Paris")).weekday() + 3) % 7
    register = "mutation($k: KioskInput!) { registerKiosk(kiosk: $k) { token kiosk { id } } }"
    open_kiosk = gql(platform, register, {"k": {"siteId": site["id"], "name": "Ouverte"}})["registerKiosk"]
    closed_kiosk = gql(platform, register, {"k": {"siteId": site["id"], "name": "Fermée", "openingHours": [
        {"weekday": closed_day, "opens": "09:00", "closes": "17:00"}]}})["registerKiosk"]
    gql(platform, HEARTBEAT, tok=open_kiosk["token"])
    gql(platform, HEARTBEAT, tok=closed_kiosk["token"])

    def kiosks():
        rows = gql(platform, "query($s: ID) { kiosks(siteId: $s) { id offline battery queueLength } }",
                   {"s": site["id"]})["kiosks"]
        return {r["id"]: r for r in rows}

    assert kiosks()[open_kiosk["kiosk"]["id"]]["battery"] == 55
    wait_until(lambda: kiosks()[open_kiosk["kiosk"]["id"]]["offline"], 20, 0.2, "the silent kiosk offline")
    assert kiosks()[closed_kiosk["kiosk"]["id"]]["offline"] is False, "closed: silence is expected"
    gql(platform, HEARTBEAT, tok=open_kiosk["token"])
    assert kiosks()[open_kiosk["kiosk"]["id"]]["offline"] is False

    def events():
        bound = queue(conn.default_channel)
        got = []
        while (message := bound.get(no_ack=True)) is not None:
            got.append(message.payload)
        return got

    received = []
    wait_until(lambda: received.extend(events()) or any(e["type"] == "satisfaction.kiosk_online" for e in received),
               10, 0.2, "kiosk_online published")
    mine = [e for e in received if e["data"].get("kiosk_id") == open_kiosk["kiosk"]["id"]]
    assert [e["type"] for e in mine][:2] == ["satisfaction.kiosk_offline", "satisfaction.kiosk_online"]
    offline = mine[0]["data"]
    assert offline["site_id"] == site["id"] and offline["commune"] == "castanet-tolosan" and offline["last_seen_at"]
    assert not [e for e in received if e["data"].get("kiosk_id") == closed_kiosk["kiosk"]["id"]]
    conn.release()
