"""A payment through the whole stack, heard by the authority's applications: the payment_link service, the
notification service (partners' webhooks by topic and régie, the payer's receipt), the gateway and the PayFiP
simulator. A partner of the canteen's régie receives the success once, signed (Pay-Signature: HMAC-SHA256 of the
raw body with its key), after answering 500 to the first try; the water's partner hears nothing of it; the payer gets
one emailed receipt, though PayFiP notified twice."""
import hashlib
import hmac
import json
import threading
import time
from email import message_from_bytes, policy
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from tests.payment_flows import AGENT, bill, payfip_choose, platform_with_simulator, regies, rpc, sim_control
from tests.support import rpc_call, smtp_server, wait_until


class Mailbox:
    def __init__(self):
        self.accepted: list = []

    async def handle_DATA(self, server, session, envelope):
        self.accepted.append(message_from_bytes(envelope.original_content, policy=policy.default))
        return "250 OK"

    def to(self, rcpt: str) -> list:
        return [m for m in self.accepted if m["To"] == rcpt]


class Partner(BaseHTTPRequestHandler):
    """A partner's endpoint that fails the first delivery of each message (500), then takes it."""

    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        message_id = self.headers.get("X-Parvis-Message-Id")
        tries = self.server.tries
        tries[message_id] = tries.get(message_id, 0) + 1
        self.server.posts.append((dict(self.headers), body))
        self.send_response(500 if tries[message_id] == 1 else 204)
        self.end_headers()

    def log_message(self, *args):
        pass


def partner_server():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Partner)
    server.tries, server.posts = {}, []
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_port}/paiements"


@pytest.fixture(scope="module")
def stack(mongo, broker):
    mailbox = Mailbox()
    with smtp_server(mailbox) as smtp_port:
        platform, sim_proc, sim = platform_with_simulator(
            mongo, broker, SMTP_URL=f"smtp://127.0.0.1:{smtp_port}", PARVIS_NOTIFY_INTERVAL="0.2",
            PARVIS_NOTIFY_RETRY_BASE="0.3", PARVIS_WEBHOOK_ALLOW="127.0.0.1/32")  # the partners are local here
        platform.service("payment_link")
        platform.service("notification")
        platform.gateway()
        regies(platform)
        yield platform, sim, mailbox
        platform.stop_reporting_crashes()
        sim_proc.stop()


def test_a_paid_bill_reaches_its_regies_partner_signed_once_after_a_500_and_the_payer_gets_one_receipt(stack):
    platform, sim, mailbox = stack
    cantine, cantine_url = partner_server()
    eau, eau_url = partner_server()
    try:
        hook = rpc_call(platform.broker.url, "notification", "add_webhook", caller=AGENT, partner="facturation-cantine",
                        url=cantine_url, topics=["payment_link.succeeded"], regie_ids=["regie-cantine"])
        rpc_call(platform.broker.url, "notification", "add_webhook", caller=AGENT, partner="facturation-eau",
                 url=eau_url, topics=["payment_link.succeeded"], regie_ids=["regie-eau"])
        sim_control(sim, notify="twice")
        payment = rpc(platform, "create_payment_link",
                      payment=bill(reference="HOOK2026001", email="payeuse@example.org"))["payment"]
        session = rpc(platform, "start_session", caller=None, id=payment["id"])
        payfip_choose(session["next_url"], "P")
        wait_until(lambda: any(t >= 2 for t in cantine.tries.values()), 30, message="the partner's second try")
        wait_until(lambda: mailbox.to("payeuse@example.org"), 30, message="the payer's receipt")
        httpx.post(f"{sim}/_sim/notify", json={"idop": session["provider_id"]})  # and a replay, for good measure
        time.sleep(2)  # the callbacks run every 0.2 s: a second delivery would have come by now
    finally:
        for server in (cantine, eau):
            server.shutdown()
            server.server_close()
    assert eau.posts == [], "the water's partner hears nothing of the canteen's payments"
    successes = [(h, b) for h, b in cantine.posts if json.loads(b)["type"] == "payment_link.succeeded"]
    assert len(successes) == 2 and len({h["X-Parvis-Message-Id"] for h, _ in successes}) == 1, successes
    headers, body = successes[-1]
    assert headers["Pay-Signature"] == hmac.new(hook["signing_secret"].encode(), body, hashlib.sha256).hexdigest()
    data = json.loads(body)["data"]
    assert (data["payment_id"], data["regie_id"], data["amount"]) == (payment["id"], "regie-cantine", 4250)
    [receipt] = mailbox.to("payeuse@example.org")
    text = receipt.get_body(("plain",)).get_content()
    assert "42,50" in text and "HOOK2026001" in text and "Régie de la cantine" in text
