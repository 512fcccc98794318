"""Email over real SMTP/TCP to a test server: both parts and the RFC 8058 headers; 451 then 250 is
delivered once after a retry; 550 fails for good without a retry; receipts reach a signed webhook, each partner's
only its own (never a sign-in code's); payment events reach the partners of their régie, signed, once, and the payer
gets an emailed receipt."""
import hashlib
import hmac
import json
import threading
import time
from email import message_from_bytes, policy
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tests.support import Platform, rpc_call, smtp_server, wait_until

AGENT = {"role": "agent", "subject": "agent:test"}


class ScriptedSmtp:
    """Answers DATA from a script (e.g. 451 then 250); keeps what it accepted and counts every attempt."""

    def __init__(self):
        self.script: dict[str, list[str]] = {}
        self.accepted: list = []
        self.attempts: dict[str, int] = {}

    async def handle_DATA(self, server, session, envelope):
        rcpt = envelope.rcpt_tos[0]
        self.attempts[rcpt] = self.attempts.get(rcpt, 0) + 1
        answers = self.script.get(rcpt) or []
        if answers:
            answer = answers.pop(0)
            if not answer.startswith("250"):
                return answer
        self.accepted.append(message_from_bytes(envelope.original_content, policy=policy.default))
        return "250 OK"

    def to(self, rcpt: str) -> list:
        return [m for m in self.accepted if m["To"] == rcpt]


class Hooks(BaseHTTPRequestHandler):
    received: list = []

    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        Hooks.received.append((dict(self.headers), body))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def smtp():
    handler = ScriptedSmtp()
    with smtp_server(handler) as port:
        yield handler, port


@pytest.fixture(scope="module")
def hooks():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Hooks)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}/receipts"
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def platform(mongo, broker, smtp):
    mongo.drop_all()
    p = Platform(mongo, broker, SMTP_URL=f"smtp://127.0.0.1:{smtp[1]}", PARVIS_NOTIFY_INTERVAL="0.2",
                 PARVIS_NOTIFY_RETRY_BASE="0.3", PARVIS_WEBHOOK_ALLOW="127.0.0.1/32")  # the partners are local here
    p.service("notification")
    yield p
    p.stop()
    for proc in p.procs:
        if proc.proc.returncode not in (None, 0, -15):
            print(f"--- {proc.name} ---\n{proc.output()[-3000:]}")


def send(platform, to: str, reference: str, template="event_published", channel="email", partner=None,
         **personalisation):
    personalisation = personalisation or {"title": "Fête <du> village", "commune": "Labège",
                                          "starts_at": "samedi 5 décembre", "url": "https://parvis.example/e/1"}
    return rpc_call(platform.broker.url, "notification", "send_notification", caller=AGENT, template=template,
                    channel=channel, to=to, reference=reference, personalisation=personalisation, partner=partner)


def status(mongo, nid: str) -> dict:
    return mongo.client().parvis_notification.notifications.find_one({"_id": nid})


def test_email_has_text_and_escaped_html_parts(platform, smtp, mongo):
    handler, _ = smtp
    n = send(platform, "alice@example.org", "ref-parts")
    assert n["status"] == "created" and n["id"] == "ref-parts:alice@example.org:email"
    wait_until(lambda: handler.to("alice@example.org"), 15, message="the email accepted")
    msg = handler.to("alice@example.org")[0]
    assert msg["Subject"] == "Nouvel événement : Fête <du> village"
    text = msg.get_body(("plain",)).get_content()
    html = msg.get_body(("html",)).get_content()
    assert "Fête <du> village" in text and "Fête &lt;du&gt; village" in html, "autoescape in HTML only"
    wait_until(lambda: status(mongo, n["id"])["status"] == "delivered", 10, message="delivered")
    again = send(platform, "alice@example.org", "ref-parts")  # same reference: the same notification
    assert again["id"] == n["id"] and again["status"] == "delivered"


def test_451_then_250_is_delivered_once_after_a_retry_with_a_signed_receipt(platform, smtp, mongo, hooks):
    handler, _ = smtp
    hook = rpc_call(platform.broker.url, "notification", "add_webhook", caller=AGENT, partner="partner-a", url=hooks)
    handler.script["bob@example.org"] = ["451 4.3.0 Try again later"]
    n = send(platform, "bob@example.org", "ref-retry", partner="partner-a")
    doc = wait_until(lambda: (d := status(mongo, n["id"]))["status"] == "delivered" and d, 20,
                     message=f"delivered ({status(mongo, n['id'])})")
    assert doc["attempts"] == 2 and handler.attempts["bob@example.org"] == 2
    assert len(handler.to("bob@example.org")) == 1
    receipt = wait_until(lambda: [(h, b) for h, b in Hooks.received if json.loads(b)["data"]["id"] == n["id"]], 15,
                         message="the delivery receipt on the webhook")[0]
    headers, body = receipt
    assert json.loads(body)["type"] == "notification.delivered"
    expected = "sha256=" + hmac.new(hook["signing_secret"].encode(), f"{headers['X-Parvis-Timestamp']}.".encode() + body,
                                    hashlib.sha256).hexdigest()
    assert headers["X-Parvis-Signature"] == expected


def test_550_is_a_permanent_failure_without_retry(platform, smtp, mongo):
    handler, _ = smtp
    handler.script["nobody@example.org"] = ["550 5.1.1 No such user"]
    n = send(platform, "nobody@example.org", "ref-550")
    doc = wait_until(lambda: (d := status(mongo, n["id"]))["status"] == "permanent-failure" and d, 20,
                     message="permanent failure")
    assert doc["attempts"] == 1 and "550" in doc["error"] and doc["next_attempt_at"] is None
    # A later notification is delivered: the dispatcher went on, and the failed one was not retried.
    later = send(platform, "carol@example.org", "ref-after-550")
    wait_until(lambda: status(mongo, later["id"])["status"] == "delivered", 20, message="the next one delivered")
    assert handler.attempts["nobody@example.org"] == 1
    rows = rpc_call(platform.broker.url, "notification", "notification_deliveries", caller=AGENT,
                    status="permanent-failure")
    assert [r["id"] for r in rows] == [n["id"]]


@pytest.mark.parametrize("kwargs, field", [
    ({"to": "not-an-address"}, "to"),
    ({"template": "nope"}, "template"),
    ({"personalisation": {"title": "x"}}, "personalisation.commune"),
    ({"channel": "sms", "to": "+33612345678", "personalisation": {"title": "x" * 700, "commune": "Labège",
                                                                  "starts_at": "demain", "url": "u"}},
     "personalisation"),
    ({"channel": "sms", "to": "12"}, "to"),
])
def test_bad_input_names_the_field_and_queues_nothing(platform, mongo, kwargs, field):
    from contracts.errors import BadInput

    args = {"template": "event_published", "channel": "email", "to": "dan@example.org", "reference": "ref-bad",
            "personalisation": {"title": "t", "commune": "c", "starts_at": "s", "url": "u"}, **kwargs}
    with pytest.raises(BadInput) as exc:
        rpc_call(platform.broker.url, "notification", "send_notification", caller=AGENT, **args)
    assert exc.value.field == field
    assert mongo.client().parvis_notification.notifications.count_documents({"event_id": "ref-bad"}) == 0


def test_sms_goes_through_the_dev_provider_and_in_app_is_read_and_marked(platform, mongo):
    db = mongo.client().parvis_notification
    sms = send(platform, "06 12 34 56 78", "ref-sms", channel="sms")
    assert sms["recipient"] == "+33612345678"
    wait_until(lambda: status(mongo, sms["id"])["status"] == "delivered", 15, message="the SMS delivered")
    stored = db.dev_sms.find_one({"_id": sms["id"]})
    assert stored["to"] == "+33612345678" and stored["text"].startswith("Parvis : nouvel événement à Labège")

    citizen = {"role": "citizen", "subject": "cit-inapp"}
    note = send(platform, "cit-inapp", "ref-inapp", channel="in_app")
    wait_until(lambda: status(mongo, note["id"])["status"] == "delivered", 15, message="the in-app one delivered")
    mine = rpc_call(platform.broker.url, "notification", "my_notifications", caller=citizen, unread_only=True)
    assert [n["id"] for n in mine] == [note["id"]] and mine[0]["text"].startswith("Nouvel événement à Labège")
    other = rpc_call(platform.broker.url, "notification", "mark_notifications_read", caller={"role": "citizen", "subject": "cit-x"},
                     ids=[note["id"]])
    assert other["count"] == 0, "only one's own notifications"
    assert rpc_call(platform.broker.url, "notification", "mark_notifications_read", caller=citizen, ids=[note["id"]])["count"] == 1
    assert rpc_call(platform.broker.url, "notification", "my_notifications", caller=citizen, unread_only=True) == []


class FlakyHooks(BaseHTTPRequestHandler):
    """Refuses the first POST of each receipt (503), takes the next."""

    seen: dict = {}
    taken: dict = {}

    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        nid = json.loads(body)["data"]["id"]
        FlakyHooks.seen[nid] = FlakyHooks.seen.get(nid, 0) + 1
        if FlakyHooks.seen[nid] > 1:
            FlakyHooks.taken[nid] = json.loads(body)["type"]
        self.send_response(503 if FlakyHooks.seen[nid] == 1 else 204)
        self.end_headers()

    def log_message(self, *args):
        pass


def test_a_refused_receipt_is_posted_again_and_failures_have_receipts_too(platform, smtp, mongo, hooks):
    handler, _ = smtp
    server = ThreadingHTTPServer(("127.0.0.1", 0), FlakyHooks)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        rpc_call(platform.broker.url, "notification", "add_webhook", caller=AGENT, partner="partner-b",
                 url=f"http://127.0.0.1:{server.server_port}/r")
        ok = send(platform, "erin@example.org", "ref-flaky-hook", partner="partner-b")
        handler.script["nobody2@example.org"] = ["550 5.1.1 No such user"]
        failed = send(platform, "nobody2@example.org", "ref-flaky-hook-550", partner="partner-b")
        wait_until(lambda: FlakyHooks.seen.get(ok["id"]) == 2 and FlakyHooks.seen.get(failed["id"]) == 2, 20,
                   message=f"each receipt refused once, then taken ({FlakyHooks.seen})")
        assert FlakyHooks.taken == {ok["id"]: "notification.delivered", failed["id"]: "notification.failed"}
        assert not [b for _, b in Hooks.received if json.loads(b)["data"].get("id") in (ok["id"], failed["id"])], \
            "partner-b's receipts are not partner-a's business"
        for nid in (ok["id"], failed["id"]):
            doc = wait_until(lambda: (d := status(mongo, nid)) and "callback_due" not in d and d, 10,
                             message="the receipt dropped once called back")
            assert "receipt" not in doc and doc["callback_attempts"] == 1
    finally:
        server.shutdown()
        server.server_close()


class Recorder(BaseHTTPRequestHandler):
    """One partner's endpoint: keeps what it is sent, per server."""

    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.server.received.append((dict(self.headers), body))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def partner_servers():
    servers = []

    def start():
        server = ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
        server.received = []
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return server, f"http://127.0.0.1:{server.server_port}/hook"

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def _ids(server) -> list[str]:
    return [json.loads(b)["data"].get("id") or json.loads(b)["data"].get("payment_id") for _, b in server.received]


def test_each_partner_hears_only_of_its_own_messages_and_never_of_sign_in_codes(platform, smtp, partner_servers):
    """Issue 10: a receipt goes to the partner that asked for the message, and only for the topics it chose; the
    platform's own messages (a sign-in code, a subscriber's news) reach no partner; a sign-in code cannot be sent
    on request."""
    from contracts.errors import BadInput

    handler, _ = smtp
    a, url_a = partner_servers()
    c, url_c = partner_servers()
    only_failures, url_f = partner_servers()
    rpc_call(platform.broker.url, "notification", "add_webhook", caller=AGENT, partner="mairie-a", url=url_a)
    rpc_call(platform.broker.url, "notification", "add_webhook", caller=AGENT, partner="mairie-c", url=url_c)
    rpc_call(platform.broker.url, "notification", "add_webhook", caller=AGENT, partner="mairie-a", url=url_f,
             topics=["notification.failed"])
    for_a = send(platform, "ana@example.org", "ref-scope-a", partner="mairie-a")
    for_c = send(platform, "cyd@example.org", "ref-scope-c", partner="mairie-c")
    ours = send(platform, "our@example.org", "ref-scope-ours")  # the platform's own message
    rpc_call(platform.broker.url, "notification", "request_login_code", email="login@example.org")
    wait_until(lambda: handler.to("login@example.org") and handler.to("our@example.org"), 20,
               message="the sign-in code and the platform's message delivered")
    wait_until(lambda: for_a["id"] in _ids(a) and for_c["id"] in _ids(c), 20, message="each partner's receipt")
    time.sleep(1.5)  # the callbacks timer runs every 0.2 s: anything else would have been posted by now
    assert _ids(a) == [for_a["id"]] and _ids(c) == [for_c["id"]], (_ids(a), _ids(c))
    assert only_failures.received == [], "an endpoint that asked only for failures gets no delivery receipt"
    headers, body = a.received[0]
    assert json.loads(body)["data"]["recipient"] == "ana@example.org", "its own message: the address is its data"
    assert headers["X-Parvis-Message-Id"] == json.loads(body)["event_id"]
    assert ours["id"] not in _ids(a) + _ids(c)
    with pytest.raises(BadInput) as exc:
        send(platform, "x@example.org", "ref-login", template="login_code", code="123456", minutes=10)
    assert exc.value.field == "template"
    with pytest.raises(BadInput) as exc:
        rpc_call(platform.broker.url, "notification", "add_webhook", caller=AGENT, partner="mairie-a", url=url_a,
                 topics=["payment_link.succeeded"])
    assert exc.value.field == "regie_ids", "payment events only for the partner's own régies, which must be named"


def test_payment_events_reach_their_regie_partners_signed_once_and_the_payer_gets_a_receipt(
        platform, smtp, partner_servers):
    from kombu import Connection
    from nameko.standalone.events import get_event_exchange

    from contracts import build_envelope

    handler, _ = smtp
    cantine, url_cantine = partner_servers()
    eau, url_eau = partner_servers()
    hook = rpc_call(platform.broker.url, "notification", "add_webhook", caller=AGENT, partner="facturation",
                    url=url_cantine, topics=["payment_link.succeeded", "payment_link.failed"],
                    regie_ids=["regie-cantine"])
    assert hook["topics"] == ["payment_link.failed", "payment_link.succeeded"]
    rpc_call(platform.broker.url, "notification", "add_webhook", caller=AGENT, partner="regie-eau-app", url=url_eau,
             topics=["payment_link.succeeded"], regie_ids=["regie-eau"])
    facts = {"regie_id": "regie-cantine", "reference": "CANT2026120042", "amount": 1250, "provider": "payfip",
             "provider_id": "idop-1", "email": "Payeur@Example.org", "metadata": {"famille": "F-12"}}
    paid = build_envelope("payment_link.succeeded", {
        **facts, "payment_id": "pay-cantine-1", "state": "success", "regie_name": "Cantine scolaire",
        "description": "Cantine de novembre", "paid_at": "2026-12-01T10:00:00Z", "authorisation_code": "A1"},
        "payment_link")
    failed_eau = build_envelope("payment_link.failed", {
        **facts, "regie_id": "regie-eau", "payment_id": "pay-eau-1", "state": "failed", "failure_code": "P0010",
        "failure_message": "Paiement refusé"}, "payment_link")
    with Connection(platform.broker.url) as conn:
        producer = conn.Producer()
        for envelope in (paid, paid, failed_eau):  # the success twice: one webhook, one receipt
            producer.publish(json.loads(json.dumps(envelope, default=str)),
                             exchange=get_event_exchange("payment_link", {}), routing_key=envelope["type"],
                             serializer="json", retry=True)
    wait_until(lambda: cantine.received and handler.to("payeur@example.org"), 20,
               message="the success posted to the cantine's partner and the receipt emailed")
    time.sleep(1.5)
    assert len(cantine.received) == 1 and eau.received == [], (cantine.received, eau.received)
    headers, body = cantine.received[0]
    assert json.loads(body)["data"]["payment_id"] == "pay-cantine-1"
    assert headers["Pay-Signature"] == hmac.new(hook["signing_secret"].encode(), body, hashlib.sha256).hexdigest()
    assert headers["X-Parvis-Message-Id"] == paid["event_id"] and headers["X-Parvis-Event"] == "payment_link.succeeded"
    mails = handler.to("payeur@example.org")
    assert len(mails) == 1
    text = mails[0].get_body(("plain",)).get_content()
    assert "12,50\u00a0€" in text and "CANT2026120042" in text and "Cantine scolaire" in text
    assert "/pay/pay-cantine-1" in text
