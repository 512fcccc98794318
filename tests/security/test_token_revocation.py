"""Tokens that stop working (issue 10), on the real stack with two gateways: a gateway refuses every token until it
knows the revocation list (fail closed), sign-out and an operator's revocation reach every gateway within seconds,
a live subscription ends with its token, and only operators revoke other people's tokens."""
import asyncio
import json
import time
from datetime import datetime, timezone

import httpx
import pytest

from tests.support import PYTHON, TEST_SECRET, Platform, Proc, free_port, wait_until

ME = "{ me { role subject } }"


@pytest.fixture(scope="module")
def platform(mongo, broker):
    mongo.drop_all()
    p = Platform(mongo, broker)
    p.service("agenda")
    p.service("satisfaction")
    p.gateway()  # before the notification service, which keeps the revocation list
    yield p
    p.stop_reporting_crashes()


def issue(role: str, **kw):
    from gateway import auth

    return auth.issue(TEST_SECRET, role, **kw)


def gql(url, query, variables=None, tok=None):
    headers = {"Authorization": f"Bearer {tok}"} if tok else {}
    return httpx.post(f"{url}/graphql", json={"query": query, "variables": variables or {}}, headers=headers,
                      timeout=10)


def second_gateway(platform) -> str:
    port = free_port()
    proc = Proc("gateway-b", [PYTHON, "-m", "parvis.cli", "gateway"], {**platform.env, "PARVIS_HTTP_PORT": str(port)},
                None)
    platform.procs.append(proc)
    proc.start()
    url = f"http://127.0.0.1:{port}"
    wait_until(lambda: _loaded(url), 30, message="gateway B's revocation list")
    return url


def _loaded(url: str) -> bool:
    try:
        return httpx.get(f"{url}/readyz", timeout=5).json()["revocations_loaded"]
    except httpx.HTTPError:
        return False


def test_tokens_are_refused_until_the_revocation_list_is_known(platform):
    agent = issue("agent", subject="bob").value
    refused = gql(platform.url, ME, tok=agent)
    assert refused.status_code == 503
    err = refused.json()["errors"][0]
    assert err["extensions"]["code"] == "SERVICE_UNAVAILABLE" and "réessayez" in err["message"]
    ready = httpx.get(f"{platform.url}/readyz", timeout=5)
    assert ready.status_code == 503 and ready.json()["revocations_loaded"] is False
    # Anonymous reading goes on meanwhile.
    assert gql(platform.url, "{ __typename }").json() == {"data": {"__typename": "Query"}}

    platform.service("notification")
    me = wait_until(lambda: gql(platform.url, ME, tok=agent).status_code == 200
                    and gql(platform.url, ME, tok=agent).json()["data"]["me"], 15, message="the token accepted")
    assert me == {"role": "AGENT", "subject": "bob"}


def test_sign_out_ends_this_token_on_every_gateway_and_only_this_one(platform):
    other_gateway = second_gateway(platform)
    kept, leaving = issue("agent", subject="carol").value, issue("agent", subject="carol").value
    assert gql(other_gateway, ME, tok=leaving).status_code == 200
    assert gql(platform.url, "mutation { signOut }", tok=leaving).json() == {"data": {"signOut": True}}
    gone = gql(platform.url, ME, tok=leaving)
    assert gone.status_code == 401 and gone.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    # The other gateway learns it from the notification service within its refresh period (5 s).
    wait_until(lambda: gql(other_gateway, ME, tok=leaving).status_code == 401, 10, message="gateway B refuses it")
    assert gql(other_gateway, ME, tok=kept).status_code == 200
    assert gql(platform.url, ME, tok=kept).status_code == 200


REVOKE = """mutation($id: String!, $exp: DateTime!, $r: String!) {
  revokeToken(tokenId: $id, expiresAt: $exp, reason: $r) { tokenId } }"""


def _revoke(url, token, by: str):
    exp = datetime.fromtimestamp(token.expires_at, timezone.utc).isoformat()
    return gql(url, REVOKE, {"id": token.token_id, "exp": exp, "r": "poste volé"}, by)


def test_only_operators_revoke_other_peoples_tokens(platform):
    victim = issue("agent", subject="dave")
    for role in ("agent", "organizer", "citizen"):
        kw = {"org": "org-commune-labege"} if role == "organizer" else {}
        err = _revoke(platform.url, victim, issue(role, subject="mallory", **kw).value).json()["errors"][0]
        assert err["extensions"]["code"] == "FORBIDDEN", (role, err)
    assert gql(platform.url, ME, tok=victim.value).status_code == 200
    answer = _revoke(platform.url, victim, issue("operator", subject="olivia").value).json()
    assert answer == {"data": {"revokeToken": {"tokenId": victim.token_id}}}
    assert gql(platform.url, ME, tok=victim.value).status_code == 401


def test_a_live_subscription_ends_when_its_token_is_revoked_on_another_gateway(platform):
    import websockets

    agent = issue("agent", subject="erin")
    operator = issue("operator", subject="olivia").value
    site = gql(platform.url, "mutation($s: SiteInput!) { saveSite(site: $s) { id } }",
               {"s": {"name": "Déchèterie de Labège", "commune": "labege",
                      "competence": "Collecte et traitement des déchets ménagers et assimilés"}},
               agent.value).json()["data"]["saveSite"]
    other_gateway = second_gateway(platform)

    async def scenario():
        url = platform.url.replace("http://", "ws://") + "/graphql"
        async with websockets.connect(url, subprotocols=["graphql-transport-ws"]) as ws:
            await ws.send(json.dumps({"type": "connection_init", "payload": {"Authorization": f"Bearer {agent.value}"}}))
            assert json.loads(await ws.recv())["type"] == "connection_ack"
            await ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": {
                "query": "subscription($s: ID!) { satisfactionUpdates(siteId: $s) { totalToday } }",
                "variables": {"s": site["id"]}}}))
            assert json.loads(await asyncio.wait_for(ws.recv(), 10))["type"] == "next"
            revoked = await asyncio.to_thread(_revoke, other_gateway, agent, operator)
            assert "errors" not in revoked.json(), revoked.json()
            started = time.monotonic()
            while True:  # no more figures: an error, then nothing
                message = json.loads(await asyncio.wait_for(ws.recv(), 15))
                if message["type"] != "next" or message["payload"].get("errors"):
                    break
            elapsed = time.monotonic() - started
            errors = message["payload"] if message["type"] == "error" else message["payload"]["errors"]
            assert "révoqué" in json.dumps(errors, ensure_ascii=False), message
            assert elapsed < 12, elapsed

    asyncio.run(scenario())


def test_a_restarted_gateway_still_refuses_revoked_tokens(platform):
    victim = issue("citizen", subject="frank")
    assert gql(platform.url, "mutation { signOut }", tok=victim.value).json() == {"data": {"signOut": True}}
    gateway = next(p for p in platform.procs if p.name == "gateway")
    gateway.stop()
    gateway.start()
    wait_until(lambda: _loaded(platform.url), 30, message="the restarted gateway's revocation list")
    assert gql(platform.url, ME, tok=victim.value).status_code == 401
