"""kill -9 of the payment_link service while a payment's result is on its way: the payer has paid at the provider
(PayFiP's notification lost); the process dies while the reconciliation timer waits for recupererDetailPaiementSecurise's
answer (the simulator answers late), then, restarted, after that answer came and before it was written
(PARVIS_PAYMENT_FAULT_PAUSE holds the window open), then after the success is written but before its event left
the outbox (PARVIS_OUTBOX_HOLD). After the restarts the payment is `success` once, its `payment_link.succeeded`
event is published once (one event id: what a webhook and a receipt are keyed on), and the régie's partner receives
one webhook for it (the notification service)."""
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tests.payment_flows import (AGENT, BusTap, bill, payfip_choose, platform_with_simulator, regies, rpc,
                                 sim_control)
from tests.support import rpc_call, wait_until


class Partner(BaseHTTPRequestHandler):
    def do_POST(self):
        self.server.posts.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def stack(mongo, broker):
    platform, sim_proc, sim = platform_with_simulator(mongo, broker, PARVIS_NOTIFY_INTERVAL="0.2",
                                                      PARVIS_WEBHOOK_ALLOW="127.0.0.1/32")
    partner = ThreadingHTTPServer(("127.0.0.1", 0), Partner)
    partner.posts = []
    threading.Thread(target=partner.serve_forever, daemon=True).start()
    tap = BusTap(broker.url)
    yield platform, sim, tap, partner
    tap.close()
    partner.shutdown()
    partner.server_close()
    platform.stop_reporting_crashes((None, 0, -15, -9))
    sim_proc.stop()


def test_kill9_between_the_providers_answer_and_our_write_ends_in_one_success(stack, mongo):
    platform, sim, tap, partner = stack
    payments = mongo.client()["parvis_payment_link"]["payments"]
    first = platform.service("payment_link")
    platform.service("notification")
    regies(platform)
    rpc_call(platform.broker.url, "notification", "add_webhook", caller=AGENT, partner="facturation",
             url=f"http://127.0.0.1:{partner.server_port}/hook", topics=["payment_link.succeeded"],
             regie_ids=["regie-cantine"])
    payment = rpc(platform, "create_payment_link", payment=bill(reference="CRASH2026001"))["payment"]
    sim_control(sim, notify="never")
    session = rpc(platform, "start_session", caller=None, id=payment["id"])
    sim_control(sim, delay_seconds=5)  # every SOAP answer from now on comes 5 s late
    assert payfip_choose(session["next_url"], "P").status_code == 303  # paid at the provider
    # The timer asks within about a second (a round every 0.5 s, the first question 0.6 s after the start) and
    # waits 5 s for the answer: the process dies meanwhile.
    time.sleep(2.5)
    first.kill9()
    assert payments.find_one({"_id": payment["id"]})["state"] == "started"

    # Restarted, it asks again and has the answer (P: paid), then dies before writing it.
    sim_control(sim, delay_seconds=0)
    answered = platform.service("payment_link", PARVIS_PAYMENT_FAULT_PAUSE="30")
    wait_until(lambda: (platform.metric("payment_link", "parvis_payment_link_provider_call_seconds_count",
                                        provider="payfip", operation="fetch_result") or 0) >= 1, 20,
               message="the provider's answer received")
    answered.kill9()
    assert payments.find_one({"_id": payment["id"]})["state"] == "started"

    # Restarted with its outbox held: the result is read back and written, its event not published yet.
    second = platform.service("payment_link", PARVIS_OUTBOX_HOLD="1")
    wait_until(lambda: payments.find_one({"_id": payment["id"]})["state"] == "success", 30, message="success written")
    assert not tap.of(payment["id"], "payment_link.succeeded")
    second.kill9()

    platform.service("payment_link")
    wait_until(lambda: tap.of(payment["id"], "payment_link.succeeded"), 30, message="the success event published")
    time.sleep(2)  # a second publication, if any, would arrive meanwhile
    assert len(tap.of(payment["id"], "payment_link.succeeded")) == 1
    final = rpc(platform, "get_payment", id=payment["id"])
    assert final["state"] == "success" and [h["state"] for h in final["history"]].count("success") == 1
    wait_until(lambda: partner.posts, 20, message="the partner's webhook")
    time.sleep(1.5)  # the notification service's callbacks run every 0.2 s: a second one would have come
    assert [(p["type"], p["data"]["payment_id"]) for p in partner.posts] == [("payment_link.succeeded", payment["id"])]
