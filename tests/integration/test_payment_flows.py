"""Payment links through the real stack: the payment_link service, the notification service (the gateway fails
closed on tokens without its revocation list), the gateway with its pages and GraphQL, and the PayFiP simulator
(SOAP, payment page, sandbox cards) over real HTTP. The payer goes through /pay/<id> and the simulator's pages;
the result is only ever read back from the provider. Events are counted on the bus by a queue of the test's own."""
import re
import threading
import time
from datetime import date

import httpx
import pytest

from tests.payment_flows import (BusTap, bill, card_pay, payfip_choose, platform_with_simulator, regies, rpc,
                                 sim_control)
from tests.support import token, wait_until

CREATE = """mutation($input: PaymentLinkInput!, $key: String) {
  createPaymentLink(input: $input, idempotencyKey: $key) { replayed payment { id url state amount reference } } }"""
REFUND = """mutation($id: ID!, $amount: Int!, $seen: Int!) {
  refundPayment(id: $id, amount: $amount, amountAvailable: $seen) { refundSummary { status amountAvailable amountSubmitted } } }"""
PAYMENTS = """query($f: PaymentFilter) { payments(filter: $f, first: 50) { totalCount edges { node { id regieId } } } }"""
_counter = iter(range(1, 10_000))


@pytest.fixture(scope="module")
def stack(mongo, broker):
    platform, sim_proc, sim = platform_with_simulator(mongo, broker)
    platform.service("payment_link")
    platform.service("notification")
    platform.gateway()
    regies(platform)
    tap = BusTap(broker.url)
    yield platform, sim, tap
    tap.close()
    platform.stop_reporting_crashes()
    sim_proc.stop()


@pytest.fixture(autouse=True)
def fresh_simulator(stack):
    httpx.post(f"{stack[1]}/_sim/reset").raise_for_status()


def new_bill(platform, regie_id="regie-cantine", **changes) -> dict:
    changes.setdefault("reference", f"FACT{int(time.time())}{next(_counter):04d}")
    return rpc(platform, "create_payment_link", payment=bill(regie_id, **changes))["payment"]


def gql(platform, query: str, variables: dict | None = None, tok: str | None = None) -> dict:
    headers = {"Authorization": f"Bearer {tok}"} if tok else {}
    return httpx.post(f"{platform.url}/graphql", json={"query": query, "variables": variables or {}},
                      headers=headers, timeout=30).json()


def press_pay(client: httpx.Client, base: str, payment_id: str) -> str:
    """The payer on /pay/<id>: the page, then « Payer » (a form with its CSRF token): where we are sent."""
    page = client.get(f"{base}/pay/{payment_id}")
    assert page.status_code == 200 and '<html lang="fr">' in page.text, page.text
    csrf = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)
    answer = client.post(f"{base}/pay/{payment_id}", data={"csrf": csrf}, headers={"Origin": base})
    assert answer.status_code == 303, answer.text
    return answer.headers["location"]


def state(platform, payment_id: str) -> str:
    return rpc(platform, "get_payment", id=payment_id)["state"]


def test_pay_on_payfip_from_the_page_to_the_receipt(stack):
    platform, sim, tap = stack
    payment = new_bill(platform)
    with httpx.Client(timeout=30) as client:
        page = client.get(f"{platform.url}/pay/{payment['id']}")
        assert "42,50" in page.text and payment["reference"] in page.text and "Régie de la cantine" in page.text
        next_url = press_pay(client, platform.url, payment["id"])
        assert next_url.startswith(f"{sim}/tpa/paiementws.web?idop=")
        back = payfip_choose(next_url, "P")
        assert back.headers["location"] == f"{platform.url}/pay/{payment['id']}/retour"
        receipt = client.get(back.headers["location"])
    assert receipt.status_code == 200 and "Paiement effectué" in receipt.text and "Reçu" in receipt.text
    wait_until(lambda: tap.of(payment["id"], "payment_link.succeeded"), 10, message="the success event")
    [succeeded] = tap.of(payment["id"], "payment_link.succeeded")
    data = succeeded["data"]
    assert data["regie_name"] == "Régie de la cantine" and data["email"] == "jean.dupont@example.fr"
    assert data["description"] == "Cantine de mars — Léa" and data["amount"] == 4250 and data["authorisation_code"]
    assert [e["type"] for e in tap.of(payment["id"])] == ["payment_link.created", "payment_link.started",
                                                           "payment_link.succeeded"]


def test_refused_on_payfip_and_abandoned_on_the_card_page(stack):
    platform, sim, tap = stack
    refused = new_bill(platform)
    with httpx.Client(timeout=30) as client:
        back = payfip_choose(press_pay(client, platform.url, refused["id"]), "R")
        page = client.get(back.headers["location"])
    assert "Paiement non effectué" in page.text and "refusé" in page.text
    assert rpc(platform, "get_payment", id=refused["id"])["failure"]["code"] == "P0010"

    abandoned = new_bill(platform, "regie-eau")
    with httpx.Client(timeout=30) as client:
        next_url = press_pay(client, platform.url, abandoned["id"])
        back = httpx.post(next_url, data={"action": "cancel"})
        page = client.get(back.headers["location"])
    assert "abandonné" in page.text
    assert rpc(platform, "get_payment", id=abandoned["id"])["failure"]["code"] == "P0030"

    # PayFiP's A is provisional while its idOp may still be paid (15 minutes): « en cours de confirmation ».
    pending = new_bill(platform)
    with httpx.Client(timeout=30) as client:
        back = payfip_choose(press_pay(client, platform.url, pending["id"]), "A")
        page = client.get(back.headers["location"])
    assert "en cours de confirmation" in page.text and state(platform, pending["id"]) == "submitted"


def test_a_lost_notification_is_reconciled_by_the_timer(stack):
    platform, sim, tap = stack
    sim_control(sim, notify="never")
    payment = new_bill(platform)
    session = rpc(platform, "start_session", caller=None, id=payment["id"])
    payfip_choose(session["next_url"], "P")
    wait_until(lambda: state(platform, payment["id"]) == "success", 20, message="the timer's reconciliation")
    assert len(tap.of(payment["id"], "payment_link.succeeded")) == 1 or wait_until(
        lambda: len(tap.of(payment["id"], "payment_link.succeeded")) == 1, 10)


def test_twice_notified_replayed_and_forged_notifications_make_one_success(stack):
    platform, sim, tap = stack
    sim_control(sim, notify="twice")
    payment = new_bill(platform)
    other = new_bill(platform)
    session = rpc(platform, "start_session", caller=None, id=payment["id"])
    other_session = rpc(platform, "start_session", caller=None, id=other["id"])
    # Forged before the payment: the provider still says P5 (not paid): nothing changes but « submitted ».
    forged = httpx.post(f"{platform.url}/pay/notify/payfip", data={"idOp": session["provider_id"]})
    assert forged.status_code == 200 and state(platform, payment["id"]) in ("started", "submitted")
    payfip_choose(session["next_url"], "P")
    wait_until(lambda: state(platform, payment["id"]) == "success", 20, message="success")
    httpx.post(f"{sim}/_sim/notify", json={"idop": session["provider_id"]})  # a replay
    assert httpx.post(f"{platform.url}/pay/notify/payfip", data={"idOp": "unknown-idop"}).status_code == 200
    assert httpx.post(f"{platform.url}/pay/notify/payfip", content=b"garbage",
                      headers={"Content-Type": "text/plain"}).status_code == 200
    # Someone else's idOp named in a forged notification: its true answer (not paid) changes nothing of ours.
    httpx.post(f"{platform.url}/pay/notify/payfip", data={"idOp": other_session["provider_id"]})
    time.sleep(1.5)
    assert len(tap.of(payment["id"], "payment_link.succeeded")) == 1
    assert state(platform, other["id"]) in ("started", "submitted")
    history = [h["state"] for h in rpc(platform, "get_payment", id=payment["id"])["history"]]
    assert history.count("success") == 1


def test_p5_then_paid(stack):
    platform, sim, tap = stack
    sim_control(sim, p5_seconds=3)
    payment = new_bill(platform)
    with httpx.Client(timeout=30) as client:
        back = payfip_choose(press_pay(client, platform.url, payment["id"]), "P")
        page = client.get(back.headers["location"])
    assert "en cours de confirmation" in page.text
    wait_until(lambda: state(platform, payment["id"]) == "success", 30, message="success after P5")
    history = [h["state"] for h in rpc(platform, "get_payment", id=payment["id"])["history"]]
    assert history == ["created", "started", "submitted", "success"]


def test_a_link_past_its_due_date_expires(stack, mongo):
    platform, sim, tap = stack
    payment = new_bill(platform)
    coll = mongo.client()["parvis_payment_link"]["payments"]
    doc = coll.find_one({"_id": payment["id"]})
    past = time.time() - 60
    from datetime import datetime, timezone

    doc.update(expires_at=datetime.fromtimestamp(past, timezone.utc), open_until_ts=past)
    coll.replace_one({"_id": payment["id"]}, doc)  # whole: nx-27017 would keep a $set datetime as text
    wait_until(lambda: state(platform, payment["id"]) == "failed", 20, message="expiry")
    assert rpc(platform, "get_payment", id=payment["id"])["failure"]["code"] == "P0020"
    answer = rpc(platform, "payment_page", caller=None, id=payment["id"])
    assert not answer["payable"]


def test_a_session_without_a_result_ends_after_90_minutes_and_the_payer_may_try_again(stack, mongo):
    platform, sim, tap = stack
    payment = new_bill(platform)
    rpc(platform, "start_session", caller=None, id=payment["id"])  # « Payer », then nothing on PayFiP's page
    coll = mongo.client()["parvis_payment_link"]["payments"]
    doc = coll.find_one({"_id": payment["id"]})
    from datetime import datetime, timedelta, timezone

    doc.update(session_started_at=datetime.now(timezone.utc) - timedelta(minutes=91), check_due_ts=0.0)
    coll.replace_one({"_id": payment["id"]}, doc)  # 91 minutes ago (whole: nx-27017 keeps a $set datetime as text)
    wait_until(lambda: state(platform, payment["id"]) == "failed", 20, message="the session's end")
    assert rpc(platform, "get_payment", id=payment["id"])["failure"]["code"] == "P0020"
    assert rpc(platform, "payment_page", caller=None, id=payment["id"])["payable"]  # the link is still valid


def test_two_racing_refunds_cannot_exceed_the_payment(stack):
    platform, sim, tap = stack
    payment = new_bill(platform, "regie-eau")
    session = rpc(platform, "start_session", caller=None, id=payment["id"])
    card_pay(session["next_url"])
    wait_until(lambda: state(platform, payment["id"]) == "success", 20, message="card payment")
    agent = token("agent", subject="agent:refunds")
    answers = []

    def refund():
        answers.append(gql(platform, REFUND, {"id": payment["id"], "amount": 3000, "seen": 4250}, agent))

    threads = [threading.Thread(target=refund) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    ok = [a for a in answers if "errors" not in a]
    refused = [a["errors"][0]["extensions"]["code"] for a in answers if "errors" in a]
    assert len(ok) == 1 and refused == ["CONFLICT"] * 3, answers
    final = rpc(platform, "get_payment", id=payment["id"])
    assert final["refund_summary"] == {"status": "available", "amount_available": 1250, "amount_submitted": 3000}


def test_idempotency_key_same_body_replays_other_body_conflicts(stack):
    platform, sim, tap = stack
    agent = token("agent", subject="agent:idem")
    body = {"regieId": "regie-cantine", "amount": 1200, "reference": f"IDEM{int(time.time())}",
            "description": "Crèche — avril", "email": "marie@example.fr"}
    first = gql(platform, CREATE, {"input": body, "key": "key-1"}, agent)["data"]["createPaymentLink"]
    again = gql(platform, CREATE, {"input": body, "key": "key-1"}, agent)["data"]["createPaymentLink"]
    assert not first["replayed"] and again["replayed"] and again["payment"]["id"] == first["payment"]["id"]
    other = gql(platform, CREATE, {"input": {**body, "amount": 1300}, "key": "key-1"}, agent)
    assert other["errors"][0]["extensions"]["code"] == "CONFLICT"
    # A refused request stores nothing, not even its key: the key still serves a valid request afterwards.
    bad = gql(platform, CREATE, {"input": {**body, "amount": 0}, "key": "key-2"}, agent)
    assert bad["errors"][0]["extensions"] == {"code": "BAD_USER_INPUT", "field": "amount"}
    good = gql(platform, CREATE, {"input": {**body, "amount": 1300}, "key": "key-2"}, agent)
    assert not good["data"]["createPaymentLink"]["replayed"]


def test_bad_input_is_refused_with_codes(stack):
    platform, sim, tap = stack
    agent = token("agent", subject="agent:bad")
    base = {"regieId": "regie-cantine", "amount": 1200, "reference": "GOOD123456", "description": "Cantine",
            "email": "marie@example.fr"}
    for change, field in [({"amount": 0}, "amount"), ({"amount": 10_000_001}, "amount"),
                          ({"reference": "FACT 12/3"}, "reference"), ({"reference": "AB1"}, "reference"),
                          ({"email": "pas-une-adresse"}, "email"), ({"description": "  "}, "description")]:
        answer = gql(platform, CREATE, {"input": {**base, **change}}, agent)
        assert answer["errors"][0]["extensions"] == {"code": "BAD_USER_INPUT", "field": field}, (change, answer)
    assert gql(platform, CREATE, {"input": base})["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    citizen = token("citizen", subject="cit-x")
    assert gql(platform, CREATE, {"input": base}, citizen)["errors"][0]["extensions"]["code"] == "FORBIDDEN"


def test_a_service_token_acts_only_for_its_regies(stack):
    platform, sim, tap = stack
    billing = token("service", subject="service:facturation-eau", regies=["regie-eau"])
    body = {"regieId": "regie-eau", "amount": 5000, "reference": f"SRV{int(time.time())}", "description": "Eau",
            "email": "paul@example.fr"}
    created = gql(platform, CREATE, {"input": body}, billing)
    assert "errors" not in created, created
    refused = gql(platform, CREATE, {"input": {**body, "regieId": "regie-cantine"}}, billing)
    assert refused["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    listed = gql(platform, PAYMENTS, {}, billing)["data"]["payments"]
    assert listed["totalCount"] >= 1 and {e["node"]["regieId"] for e in listed["edges"]} == {"regie-eau"}
    other = gql(platform, PAYMENTS, {"f": {"regieIds": ["regie-cantine"]}}, billing)
    assert other["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    # The service checks again: a signed caller of role service asking for another régie is refused there too.
    with pytest.raises(Exception, match="ses régies"):
        rpc(platform, "create_payment_link", caller={"role": "service", "subject": "s", "regies": ["regie-eau"]},
            payment=bill("regie-cantine", reference="SRVDIRECT01"))
    assert gql(platform, "{ regies { id } }", tok=billing)["data"]["regies"] == [{"id": "regie-eau"}]


def test_reconciliation_of_the_day_per_regie(stack):
    platform, sim, tap = stack
    agent = token("agent", subject="agent:reco")
    today = date.today().isoformat()
    answer = gql(platform, """query($d: Date!) { reconciliation(date: $d, regieId: "regie-eau", csv: true) {
        totals { regieId succeededCount succeededAmount refundedAmount netAmount } csv rows { reference state } } }""",
                 {"d": today}, agent)
    reco = answer["data"]["reconciliation"]
    assert reco["csv"].startswith("\ufeffdate;regie;reference;montant")
    for total in reco["totals"]:
        assert total["netAmount"] == total["succeededAmount"] - total["refundedAmount"]


def test_a_citizen_sees_the_payments_made_out_to_his_verified_address(stack):
    platform, sim, tap = stack
    from services.common.identity import citizen_id
    from tests.support import TEST_SECRET

    mine = new_bill(platform, email="Lea.Martin@Example.FR")
    new_bill(platform, email="someone.else@example.fr")
    lea = token("citizen", subject=citizen_id(TEST_SECRET, "lea.martin@example.fr"))
    answer = gql(platform, "{ myPayments { totalCount edges { node { id email state } } } }", tok=lea)
    assert answer["data"]["myPayments"]["totalCount"] == 1, answer
    assert answer["data"]["myPayments"]["edges"][0]["node"]["id"] == mine["id"]
    assert gql(platform, f'{{ payment(id: "{mine["id"]}") {{ id }} }}', tok=lea)["data"]["payment"]["id"] == mine["id"]
    other = token("citizen", subject=citizen_id(TEST_SECRET, "someone.else@example.fr"))
    assert gql(platform, f'{{ payment(id: "{mine["id"]}") {{ id }} }}', tok=other)["data"]["payment"] is None


def test_cancel_a_link_and_refund_a_payfip_payment_through_the_accountant(stack):
    platform, sim, tap = stack
    agent = token("agent", subject="agent:cancel")
    link = new_bill(platform)
    cancelled = gql(platform, 'mutation($id: ID!) { cancelPayment(id: $id, reason: "Facture annulée") { state '
                              'failure { code } } }', {"id": link["id"]}, agent)["data"]["cancelPayment"]
    assert cancelled == {"state": "CANCELLED", "failure": {"code": "P0040"}}
    assert not rpc(platform, "payment_page", caller=None, id=link["id"])["payable"]
    again = gql(platform, 'mutation($id: ID!) { cancelPayment(id: $id) { state } }', {"id": link["id"]}, agent)
    assert again["errors"][0]["extensions"]["code"] == "CONFLICT"  # a finished payment never changes

    running = new_bill(platform)
    rpc(platform, "start_session", caller=None, id=running["id"])
    refused = gql(platform, 'mutation($id: ID!) { cancelPayment(id: $id) { state } }', {"id": running["id"]}, agent)
    assert refused["errors"][0]["extensions"]["code"] == "CONFLICT"  # PayFiP cannot stop a running idOp

    paid = new_bill(platform)
    payfip_choose(rpc(platform, "start_session", caller=None, id=paid["id"])["next_url"], "P")
    wait_until(lambda: state(platform, paid["id"]) == "success", 20, message="paid")
    refund = gql(platform, REFUND.replace("refundSummary {", "refunds { id kind status } refundSummary {"),
                 {"id": paid["id"], "amount": 4250, "seen": 4250}, agent)["data"]["refundPayment"]
    [r] = refund["refunds"]
    assert r["kind"] == "accountant" and r["status"] == "submitted" and refund["refundSummary"]["status"] == "full"
    settled = gql(platform, 'mutation($p: ID!, $r: ID!) { settleRefund(paymentId: $p, refundId: $r) { refunds { status } '
                            '} }', {"p": paid["id"], "r": r["id"]}, agent)["data"]["settleRefund"]
    assert settled["refunds"] == [{"status": "success"}]
    wait_until(lambda: tap.of(paid["id"], "payment_link.refund_succeeded"), 10, message="refund event")


def test_payments_are_paged_newest_first_with_cursors(stack):
    platform, sim, tap = stack
    agent = token("agent", subject="agent:pages")
    reference = f"PAGE{int(time.time())}"
    ids = [new_bill(platform, reference=f"{reference}{n}")["id"] for n in range(5)]
    seen, after = [], None
    query = """query($a: String) { payments(first: 2, after: $a, filter: {regieIds: ["regie-cantine"]}) {
        totalCount pageInfo { hasNextPage endCursor } edges { node { id } } } }"""
    while True:
        page = gql(platform, query, {"a": after}, agent)["data"]["payments"]
        seen += [e["node"]["id"] for e in page["edges"]]
        if not page["pageInfo"]["hasNextPage"]:
            break
        after = page["pageInfo"]["endCursor"]
    assert len(seen) == len(set(seen)) == page["totalCount"]
    assert [i for i in seen if i in ids] == ids[::-1]


def test_a_refused_payer_tries_again_through_the_same_link_and_the_bill_is_paid_once(stack):
    platform, sim, tap = stack
    payment = new_bill(platform)
    with httpx.Client(timeout=30) as client:
        back = payfip_choose(press_pay(client, platform.url, payment["id"]), "R")
        assert "Paiement non effectué" in client.get(back.headers["location"]).text
        page = client.get(f"{platform.url}/pay/{payment['id']}")
        assert "refusé" in page.text and "Vous pouvez essayer à nouveau" in page.text
        next_url = press_pay(client, platform.url, payment["id"])  # the same link, « Payer » again
        back = payfip_choose(next_url, "P")
        assert back.headers["location"] == f"{platform.url}/pay/{payment['id']}-r/retour"
        assert "Paiement effectué" in client.get(back.headers["location"]).text
        page = client.get(f"{platform.url}/pay/{payment['id']}")  # the link now shows the bill paid
        assert "Cette facture est déjà payée" in page.text
    first, retry = (rpc(platform, "get_payment", id=i) for i in (payment["id"], f"{payment['id']}-r"))
    assert first["state"] == "failed" and first["failure"]["code"] == "P0010"  # never changed again
    assert retry["state"] == "success" and retry["retry_of"] == payment["id"]
    [created] = tap.of(retry["id"], "payment_link.created")
    assert created["data"]["retry_of"] == payment["id"]
    again = rpc(platform, "payment_page", caller=None, id=payment["id"])
    assert again["state"] == "success" and not again["payable"]


def test_the_notification_url_names_its_payment_and_is_trusted_no_more_than_the_body(stack):
    """Each session gives PayFiP its own urlnotif (/pay/notify/payfip/<payment id>), so that the service reads the
    payment by id; the URL is a hint: a payment it names that does not have the body's idOp is not the one."""
    platform, sim, tap = stack
    sim_control(sim, notify="never")
    paid, named = new_bill(platform), new_bill(platform)
    session = rpc(platform, "start_session", caller=None, id=paid["id"])
    rpc(platform, "start_session", caller=None, id=named["id"])
    ops = {o["idop"]: o for o in httpx.get(f"{sim}/_sim/operations").json()["operations"]}
    assert ops[session["provider_id"]]["urlnotif"] == f"{platform.url}/pay/notify/payfip/{paid['id']}"
    payfip_choose(session["next_url"], "P")
    # The body names the paid payment's idOp, the URL another payment: the paid one is read back and succeeds.
    answer = httpx.post(f"{platform.url}/pay/notify/payfip/{named['id']}", data={"idOp": session["provider_id"]})
    assert answer.status_code == 200
    wait_until(lambda: state(platform, paid["id"]) == "success", 20, message="the success of the body's payment")
    assert state(platform, named["id"]) == "started"
    # A URL naming no payment of ours, or not a payment id at all.
    assert httpx.post(f"{platform.url}/pay/notify/payfip/pay-0123456789abcdef0123",
                      data={"idOp": "unknown-idop"}).status_code == 200
    assert httpx.post(f"{platform.url}/pay/notify/payfip/..%2Fadmin", data={"idOp": "x"}).status_code == 404
    assert httpx.post(f"{platform.url}/pay/notify/payfip/{'a' * 300}", data={"idOp": "x"}).status_code == 404
    assert len(tap.of(paid["id"], "payment_link.succeeded")) == 1 or wait_until(
        lambda: len(tap.of(paid["id"], "payment_link.succeeded")) == 1, 10)
