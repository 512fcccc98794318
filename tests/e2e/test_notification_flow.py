"""Citizens through the gateway: sign in by emailed code, subscribe, get one email per published event
(even when the event is delivered three times), leave by the one-click link; the dev mail server keeps
what was sent and /dev/mail lists it."""
import re
import time
import urllib.request
from email import message_from_bytes, policy

import httpx
import pytest
from kombu import Connection, Exchange, Producer

from contracts import build_envelope
from parvis.seed import demo_data
from tests.support import PYTHON, Platform, Proc, free_port, rpc_call, token, wait_until

ORG = {"id": "org-commune-labege", "slug": "commune-labege", "name": "Mairie de Labège", "kind": "commune",
       "commune": "labege", "contact_email": "mairie@labege.example"}
EVENT = {"id": "evt-1", "title": "Concert <du> marché", "organizer": "org-commune-labege", "commune": "labege",
         "category": "concert", "starts_at": "2026-12-05T17:30:00Z", "ends_at": "2026-12-05T19:00:00Z",
         "moderation_state": "published", "url": "/agenda/events/evt-1"}


@pytest.fixture(scope="module")
def platform(mongo, broker):
    mongo.drop_all()
    p = Platform(mongo, broker, PARVIS_NOTIFY_INTERVAL="0.2", PARVIS_LOGIN_CODES_PER_ADDRESS="3",
                 PARVIS_LOGIN_CODES_PER_IP="12")
    port = free_port()
    devmail = Proc("devmail", [PYTHON, "-m", "parvis.devmail", "--port", str(port)], p.env, "PARVIS-READY devmail")
    p.procs.append(devmail)
    devmail.start()
    p.service("notification", SMTP_URL=f"smtp://127.0.0.1:{port}")
    # The agenda's reference data (communes, categories): subscriptions to agenda topics are checked against it.
    # Its organisations are left out: the tests announce their own organisation's contact.
    p.service("agenda")
    reference = demo_data()
    rpc_call(p.broker.url, "agenda", "import_reference_data", communes=reference["communes"],
             categories=reference["categories"], themes=reference["themes"], organizations=[])
    p.gateway()
    yield p
    p.stop()


def gql(platform, query, variables=None, tok=None):
    headers = {"Authorization": f"Bearer {tok}"} if tok else {}
    return httpx.post(f"{platform.url}/graphql", json={"query": query, "variables": variables or {}},
                      headers=headers, timeout=10).json()


def mails(platform, to: str) -> list:
    from pathlib import Path

    out = []
    for path in sorted((Path(platform.data_dir) / "mail").glob("*.eml")):
        msg = message_from_bytes(path.read_bytes(), policy=policy.default)
        if msg["To"] == to:
            out.append(msg)
    return out


def publish(platform, envelope: dict) -> None:
    source = envelope["type"].split(".")[0]
    with Connection(platform.broker.url) as conn:
        exchange = Exchange(f"{source}.events", type="topic", durable=True)
        Producer(conn).publish(envelope, exchange=exchange, routing_key=envelope["type"], serializer="json",
                               declare=[exchange], delivery_mode=2)


def sign_in(platform, email: str) -> str:
    to = email.lower()
    before = len(mails(platform, to))
    r = gql(platform, "mutation($e: String!) { requestLoginCode(email: $e) { sent expiresInSeconds } }", {"e": email})
    assert r["data"]["requestLoginCode"] == {"sent": True, "expiresInSeconds": 600}
    msg = wait_until(lambda: len(mails(platform, to)) > before and mails(platform, to)[-1], 15,
                     message=f"the code emailed to {email}")
    return re.search(r"\b(\d{6})\b", msg["Subject"]).group(1)


def verify(platform, email: str, code: str) -> dict:
    return gql(platform, "mutation($e: String!, $c: String!) { verifyLoginCode(email: $e, code: $c) { token citizenId } }",
               {"e": email, "c": code})


def handled(platform, outcome: str) -> float:
    text = urllib.request.urlopen(f"http://127.0.0.1:{platform.metrics_base + 4}/metrics", timeout=3).read().decode()
    m = re.search(r'parvis_events_handled_total\{handler="on_event_published",outcome="%s",service="notification"\} (\S+)'
                  % outcome, text)
    return float(m.group(1)) if m else 0.0


def test_a_citizen_signs_in_subscribes_is_told_once_and_leaves_by_the_link(platform, mongo):
    code = sign_in(platform, "Alice@Example.org")
    session = verify(platform, "alice@example.org", code)["data"]["verifyLoginCode"]
    alice = session["token"]

    # The token works as a citizen, and nothing more.
    assert gql(platform, "{ me { role subject } }", tok=alice)["data"]["me"] == {"role": "CITIZEN", "subject": session["citizenId"]}
    for query in ('{ previewTemplate(name: "login_code", personalisation: {}) { text } }',
                  "{ notificationDeliveries { id } }"):
        assert gql(platform, query, tok=alice)["errors"][0]["extensions"]["code"] == "FORBIDDEN"

    sub = "mutation($t: String!) { subscribe(topic: $t, channel: EMAIL) { id topic address } }"
    got = gql(platform, sub, {"t": "agenda:commune:labege"}, alice)
    assert "errors" not in got, got
    got = got["data"]["subscribe"]
    assert got["address"] == "alice@example.org"
    gql(platform, sub, {"t": "agenda:category:concert"}, alice)
    bad = gql(platform, sub, {"t": "agenda:planet:mars"}, alice)["errors"][0]
    assert bad["extensions"] == {"code": "BAD_USER_INPUT", "field": "topic"}
    # A subscription to nothing is refused, naming what was typed; a commune's name is understood.
    nowhere = gql(platform, sub, {"t": "agenda:commune:paris"}, alice)["errors"][0]
    assert nowhere["extensions"] == {"code": "BAD_USER_INPUT", "field": "topic"} and "« paris »" in nowhere["message"]
    assert gql(platform, sub, {"t": "agenda:category:rodeo"}, alice)["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
    named = gql(platform, sub, {"t": "agenda:commune:Escalquens"}, alice)["data"]["subscribe"]
    assert named["topic"] == "agenda:commune:escalquens"
    gql(platform, "mutation($id: ID!) { unsubscribe(id: $id) { unsubscribed } }", {"id": named["id"]}, alice)
    agent = token("agent", subject="agent:lea")
    r = gql(platform, 'mutation { subscribe(topic: "agenda:category:concert", channel: EMAIL, email: "lea@sicoval.example") { id } }',
            tok=agent)
    assert "errors" not in r, r
    # Quiet hours around now (Paris time): this one waits for their end.
    from datetime import datetime, timedelta
    from zoneinfo import ZoneInfo

    paris = datetime.now(ZoneInfo("Europe/Paris"))
    quiet = {"f": (paris - timedelta(hours=1)).strftime("%H:%M"), "t": (paris + timedelta(hours=2)).strftime("%H:%M")}
    r = gql(platform, 'mutation($f: String!, $t: String!) { subscribe(topic: "agenda:commune:labege", channel: EMAIL, '
            'email: "nuit@sicoval.example", quietFrom: $f, quietTo: $t) { quietFrom quietTo } }', quiet,
            token("agent", subject="agent:nuit"))
    assert r["data"]["subscribe"] == {"quietFrom": quiet["f"], "quietTo": quiet["t"]}

    publish(platform, build_envelope("agenda.organization_upserted", ORG, "agenda"))
    db = mongo.client().parvis_notification
    wait_until(lambda: db.organization_contacts.find_one({"_id": ORG["id"]}), 15, message="the organiser's contact")

    envelope = build_envelope("agenda.event_published", EVENT, "agenda")
    for _ in range(3):  # redelivered: the same event three times
        publish(platform, envelope)
    for to in ("alice@example.org", "lea@sicoval.example", "mairie@labege.example"):
        wait_until(lambda: [m for m in mails(platform, to) if "Concert" in m["Subject"]], 20, message=f"mail to {to}")
    wait_until(lambda: handled(platform, "ok") + handled(platform, "duplicate") >= 3, 15, message="3 deliveries handled")
    assert db.notifications.count_documents({"event_id": envelope["event_id"]}) == 4
    wait_until(lambda: db.notifications.count_documents({"event_id": envelope["event_id"], "status": "delivered"}) == 3,
               15, message="three delivered")
    held = db.notifications.find_one({"event_id": envelope["event_id"], "recipient": "agent:nuit"})
    assert held["status"] == "created" and held["due"] > time.time() + 3000 and not mails(platform, "nuit@sicoval.example")
    for to in ("alice@example.org", "lea@sicoval.example", "mairie@labege.example"):
        assert len([m for m in mails(platform, to) if "Concert" in m["Subject"]]) == 1, to

    msg = [m for m in mails(platform, "alice@example.org") if "Concert" in m["Subject"]][0]
    assert msg["Subject"] == "Nouvel événement : Concert <du> marché"
    assert "Concert &lt;du&gt; marché" in msg.get_body(("html",)).get_content()
    assert "samedi 5 décembre 2026 à 18 h 30" in msg.get_body(("plain",)).get_content()
    assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    link = re.fullmatch(r"<(.+)>", msg["List-Unsubscribe"]).group(1)
    assert link.startswith(platform.url + "/notifications/unsubscribe?t=")
    organiser = [m for m in mails(platform, "mairie@labege.example") if "Concert" in m["Subject"]][0]
    assert organiser["Subject"].startswith("Votre événement est publié")

    # One click, no token: a GET only shows the button (link scanners), the RFC 8058 POST unsubscribes.
    assert httpx.get(link, timeout=5).status_code == 200
    assert len(gql(platform, "{ mySubscriptions { topic } }", tok=alice)["data"]["mySubscriptions"]) == 2
    r = httpx.post(link, content="List-Unsubscribe=One-Click",
                   headers={"content-type": "application/x-www-form-urlencoded"}, timeout=5)
    assert r.status_code == 200 and "désabonné" in r.text
    topics = [s["topic"] for s in gql(platform, "{ mySubscriptions { topic } }", tok=alice)["data"]["mySubscriptions"]]
    assert topics == ["agenda:category:concert"]
    assert httpx.post(link.replace("?t=", "?t=x"), timeout=5).status_code == 400, "a forged link does nothing"

    listing = httpx.get(f"{platform.url}/dev/mail", timeout=5).text
    assert "Nouvel événement : Concert &lt;du&gt; marché" in listing
    assert re.search(r"<td>\d\d/\d\d/\d{4} à \d\d:\d\d:\d\d</td>", listing), "a time a person reads"
    # One message as its recipient reads it: decoded text (no quoted-printable), its HTML shown apart.
    name = re.search(r'href="/dev/mail/([^"]+\.eml)">Nouvel événement', listing).group(1)
    shown = httpx.get(f"{platform.url}/dev/mail/{name}", timeout=5).text
    assert "Concert &lt;du&gt; marché" in shown and "=C3=A9" not in shown and "<iframe" in shown
    raw = httpx.get(f"{platform.url}/dev/mail/{name}", params={"source": "1"}, timeout=5).text
    assert "Subject:" in raw and "=C3=A9" in raw or "=?utf-8?" in raw, "the source, as received, on request"


def test_five_wrong_codes_lock_the_code_and_an_expired_one_fails(platform, mongo):
    code = sign_in(platform, "bob@example.org")
    wrong = f"{(int(code) + 1) % 1000000:06d}"
    for _ in range(5):
        err = verify(platform, "bob@example.org", wrong)["errors"][0]
        assert err["extensions"] == {"code": "BAD_USER_INPUT", "field": "code"}
    assert verify(platform, "bob@example.org", code)["errors"][0]["extensions"]["field"] == "code", "locked"

    code = sign_in(platform, "carol@example.org")
    mongo.client().parvis_notification.login_codes.update_one({"_id": "carol@example.org"},
                                                              {"$set": {"expires": time.time() - 1}})
    assert verify(platform, "carol@example.org", code)["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"


def test_sign_in_requests_are_limited_and_bad_addresses_named(platform):
    q = "mutation($e: String!) { requestLoginCode(email: $e) { sent } }"
    err = gql(platform, q, {"e": "not an address"})["errors"][0]
    assert err["extensions"] == {"code": "BAD_USER_INPUT", "field": "email"}
    answers = [gql(platform, q, {"e": "dave@example.org"}) for _ in range(4)]
    assert [a.get("data") and a["data"]["requestLoginCode"]["sent"] for a in answers[:3]] == [True] * 3
    assert answers[3]["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
    # Per client IP too, whatever the addresses (this module's requests all come from 127.0.0.1).
    refused = None
    for i in range(13):
        answer = gql(platform, q, {"e": f"visitor{i}@example.org"})
        if "errors" in answer:
            refused = answer["errors"][0]
            break
    assert refused is not None and "connexion" in refused["message"]


def test_templates_preview_and_deliveries_for_staff(platform):
    templates = gql(platform, "{ notificationTemplates { name version channels variables } }")["data"]["notificationTemplates"]
    published = next(t for t in templates if t["name"] == "event_published")
    assert published["channels"] == ["EMAIL", "IN_APP", "SMS"] and "title" in published["variables"]
    agent = token("agent", subject="agent:lea")
    q = "query($p: JSON!, $c: NotificationChannel!) { previewTemplate(name: \"event_published\", channel: $c, personalisation: $p) { subject text html length } }"
    full = {"title": "Bal <masqué>", "commune": "Labège", "starts_at": "samedi", "url": "https://x/e"}
    preview = gql(platform, q, {"p": full, "c": "EMAIL"}, agent)["data"]["previewTemplate"]
    assert preview["subject"] == "Nouvel événement : Bal <masqué>" and "Bal &lt;masqué&gt;" in preview["html"]
    err = gql(platform, q, {"p": {"title": "x"}, "c": "EMAIL"}, agent)["errors"][0]
    assert err["extensions"] == {"code": "BAD_USER_INPUT", "field": "personalisation.commune"}
    err = gql(platform, q, {"p": {**full, "title": "x" * 700}, "c": "SMS"}, agent)["errors"][0]
    assert err["extensions"]["code"] == "BAD_USER_INPUT" and "SMS trop long" in err["message"]
    rows = gql(platform, "{ notificationDeliveries(filter: {status: DELIVERED, limit: 5}) { id status channel } }",
               tok=token("operator"))["data"]["notificationDeliveries"]
    assert rows and all(r["status"] == "DELIVERED" for r in rows)


def test_a_digest_subscription_through_graphql(platform):
    """digest: shown by mySubscriptions, changed by subscribing again, refused for SMS naming `digest`."""
    citizen = token("citizen", subject="cit-digest-e2e")
    sub = ("mutation($d: Boolean!) { subscribe(topic: \"agenda:commune:labege\", channel: IN_APP, digest: $d) "
           "{ topic channel digest } }")
    r = gql(platform, sub, {"d": True}, citizen)
    assert r["data"]["subscribe"] == {"topic": "agenda:commune:labege", "channel": "IN_APP", "digest": True}
    assert gql(platform, "{ mySubscriptions { topic digest } }", tok=citizen)["data"]["mySubscriptions"] == [
        {"topic": "agenda:commune:labege", "digest": True}]
    assert gql(platform, sub, {"d": False}, citizen)["data"]["subscribe"]["digest"] is False
    assert gql(platform, "{ mySubscriptions { digest } }", tok=citizen)["data"]["mySubscriptions"] == [{"digest": False}]
    err = gql(platform, 'mutation { subscribe(topic: "agenda:commune:labege", channel: SMS, digest: true) { id } }',
              tok=citizen)["errors"][0]
    assert err["extensions"] == {"code": "BAD_USER_INPUT", "field": "digest"}
    r = gql(platform, 'mutation { subscribe(topic: "agenda:commune:labege", channel: IN_APP) { digest } }', tok=citizen)
    assert r["data"]["subscribe"]["digest"] is False, "without the argument: one message per event, as before"


def hook_topics(answer: dict, hook_id: str) -> list[str]:
    return next(w["topics"] for w in answer["data"]["webhooks"] if w["id"] == hook_id)


def test_partners_webhooks_are_managed_through_graphql_by_staff_only(platform):
    operator = token("operator")
    reg = "mutation($p: String!, $u: String!) { registerWebhook(partner: $p, url: $u) { id partner url signingSecret } }"
    first = gql(platform, reg, {"p": "toulouse-metropole", "u": "https://93.184.215.14/receipts"}, operator)
    hook = first["data"]["registerWebhook"]
    assert hook["partner"] == "toulouse-metropole" and len(hook["signingSecret"]) >= 32
    second = gql(platform, reg, {"p": "toulouse-metropole", "u": "https://93.184.215.15/receipts"}, operator)
    listed = gql(platform, "{ webhooks { id partner url signingSecret } }", tok=operator)["data"]["webhooks"]
    ours = [w for w in listed if w["partner"] == "toulouse-metropole"]
    assert {w["url"] for w in ours} == {"https://93.184.215.14/receipts", "https://93.184.215.15/receipts"}
    assert all(w["signingSecret"] is None for w in ours), "keys are shown once, at registration"
    bad = gql(platform, reg, {"p": "toulouse-metropole", "u": "ftp://nope"}, operator)["errors"][0]
    assert bad["extensions"]["code"] == "BAD_USER_INPUT" and bad["extensions"].get("field") == "url"
    # Our own network is out of reach (SSRF): the broker's management API, a cloud's metadata, a name for them.
    for url in ("http://127.0.0.1:15672/api/users", "http://169.254.169.254/latest/meta-data/", "http://localhost/",
                "http://[::ffff:10.0.0.1]/", "http://10.1.2.3/", "https://user:pw@93.184.215.14/",
                "https://nowhere.invalid/"):
        refused = gql(platform, reg, {"p": "toulouse-metropole", "u": url}, operator)["errors"][0]
        assert refused["extensions"] == {"code": "BAD_USER_INPUT", "field": "url"}, (url, refused)
    refused = gql(platform, reg, {"p": "x", "u": "https://x.example/"}, token("citizen", subject="cit-1"))["errors"][0]
    assert refused["extensions"]["code"] == "FORBIDDEN"
    # Payment events: only of the régies named (the partner's own); topics as an enum.
    pay = ("mutation($t: [WebhookTopic!], $r: [String!]) { registerWebhook(partner: \"facturation\", url: "
           "\"https://93.184.215.16/pay\", topics: $t, regieIds: $r) { id topics regieIds } }")
    no_regie = gql(platform, pay, {"t": ["PAYMENT_LINK_SUCCEEDED"], "r": []}, operator)["errors"][0]
    assert no_regie["extensions"]["code"] == "BAD_USER_INPUT" and "régies" in no_regie["message"], no_regie
    paid = gql(platform, pay, {"t": ["PAYMENT_LINK_SUCCEEDED", "PAYMENT_LINK_REFUND_SUCCEEDED"],
                               "r": ["regie-cantine"]}, operator)["data"]["registerWebhook"]
    assert paid["topics"] == ["PAYMENT_LINK_REFUND_SUCCEEDED", "PAYMENT_LINK_SUCCEEDED"]
    assert paid["regieIds"] == ["regie-cantine"]
    assert hook_topics(gql(platform, "{ webhooks { id topics } }", tok=operator), hook["id"]) == [
        "NOTIFICATION_DELIVERED", "NOTIFICATION_FAILED"], "by default: the receipts of the partner's own messages"
    gql(platform, "mutation($id: ID!) { removeWebhook(id: $id) { id } }", {"id": paid["id"]}, operator)
    for w in (hook, second["data"]["registerWebhook"]):
        gql(platform, "mutation($id: ID!) { removeWebhook(id: $id) { id } }", {"id": w["id"]}, operator)
    left = gql(platform, "{ webhooks { partner } }", tok=operator)["data"]["webhooks"]
    assert not [w for w in left if w["partner"] == "toulouse-metropole"]
    gone = gql(platform, "mutation($id: ID!) { removeWebhook(id: $id) { id } }", {"id": hook["id"]}, operator)
    assert gone["errors"][0]["extensions"]["code"] == "NOT_FOUND"
