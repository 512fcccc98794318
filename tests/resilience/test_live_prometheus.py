"""The dashboards and the recording rules against a live Prometheus: Debian's `prometheus` scrapes a running stack
(the gateway, every service, a RabbitMQ node of the test's own with its Prometheus plugin) every second and
evaluates infra/prometheus/rules/*.yml; a little traffic goes through (public and agent queries, kiosk votes, a
moderation, sign-in codes to a mail server that accepts, defers and refuses, a message that breaks its contract,
a refusal). Then every query of every dashboard panel and every recording rule must return data — not only
name metrics that exist."""
from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
import time
import urllib.parse
import urllib.request
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path
from types import SimpleNamespace

import httpx
import pytest
import yaml
from kombu import Connection
from nameko.standalone.events import get_event_exchange

from contracts import build_envelope
from core.settings import SERVICES
from tests.consultation_flows import CAST, SUBMIT, budget_to_ballot, citizen, data, full_answers, gql, open_survey
from tests.support import Platform, RabbitNode, free_port, smtp_server, token, wait_until
from tests.unit.test_infra import DASHBOARD_FILES, RULE_FILES, dashboard_exprs

pytestmark = pytest.mark.slow

AGENT = token("agent", subject="agent:prometheus")


class Mail:
    """Accepts mail, except a 451 for retry@ (a temporary failure) and a 550 for refuse@ (a permanent one)."""

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address.startswith("retry@"):
            return "451 4.3.0 Try again later"
        if address.startswith("refuse@"):
            return "550 5.1.1 No such user"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        return "250 OK"


@pytest.fixture(scope="module")
def node():
    n = RabbitNode(plugins=("rabbitmq_prometheus",)).start()
    yield n
    n.destroy()


@pytest.fixture(scope="module")
def stack(mongo, node):
    mongo.drop_all()
    with smtp_server(Mail()) as smtp_port:
        p = Platform(mongo, SimpleNamespace(url=node.url), SMTP_URL=f"smtp://127.0.0.1:{smtp_port}",
                     PARVIS_NOTIFY_INTERVAL="0.2", PARVIS_NOTIFY_RETRY_BASE="1")
        p.up()
        yield p
        p.stop_reporting_crashes()


@pytest.fixture(scope="module")
def prometheus(stack, node):
    binary = shutil.which("prometheus")
    assert binary, "Debian's prometheus is missing: run `make system-deps`"
    tmp = Path(tempfile.mkdtemp(prefix="parvis-prometheus-"))
    port = free_port()
    jobs = [{"job_name": name, "static_configs": [{"targets": [f"127.0.0.1:{stack.metrics_port(name)}"]}]}
            for name in SERVICES]
    jobs += [{"job_name": "gateway", "static_configs": [{"targets": [f"127.0.0.1:{stack.http_port}"]}]},
             {"job_name": "rabbitmq", "metrics_path": "/metrics/per-object",  # as infra/prometheus/prometheus.yml
              "static_configs": [{"targets": [f"127.0.0.1:{node.prometheus_port}"]}]}]
    (tmp / "prometheus.yml").write_text(yaml.safe_dump({
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(p) for p in RULE_FILES], "scrape_configs": jobs}))
    with open(tmp / "prometheus.log", "wb") as log:
        proc = subprocess.Popen([binary, f"--config.file={tmp / 'prometheus.yml'}",
                                 f"--storage.tsdb.path={tmp / 'data'}", f"--web.listen-address=127.0.0.1:{port}",
                                 "--log.level=warn"], stdout=subprocess.DEVNULL, stderr=log)
    api = f"http://127.0.0.1:{port}/api/v1"
    try:
        wait_until(lambda: _get(f"http://127.0.0.1:{port}/-/ready") == "ok", 30, 0.2, "Prometheus ready")
        yield SimpleNamespace(api=api, log=tmp / "prometheus.log")
    finally:
        proc.terminate()
        proc.wait(20)
        shutil.rmtree(tmp, ignore_errors=True)


def _get(url: str) -> str | None:
    try:
        with urllib.request.urlopen(url, timeout=3) as resp:
            return "ok" if resp.status == 200 else None
    except OSError:
        return None


def query(api: str, expr: str) -> list:
    with urllib.request.urlopen(f"{api}/query?" + urllib.parse.urlencode({"query": expr}), timeout=10) as resp:
        body = json.loads(resp.read())
    assert body["status"] == "success", body
    return body["data"]["result"]


def traffic(platform, node) -> None:
    """A little of everything the dashboards show."""
    http = httpx.Client(base_url=platform.url, timeout=15)

    def gql(q, v=None, tok=None):
        return http.post("/graphql", json={"query": q, "variables": v or {}},
                         headers={"Authorization": f"Bearer {tok}"} if tok else {}).json()

    for _ in range(20):
        gql("{ events(first: 20) { totalCount edges { node { id title } } } }")
    gql('{ events(first: 5, filter: {communes: ["paris"]}) { totalCount } }')  # refused: the compiled path hands over
    gql('mutation { moderateEvent(id: "evt-nope", version: 1, decision: APPROVE) { id } }', tok=AGENT)  # NOT_FOUND
    org = token("organizer", org="org-commune-labege", subject="organizer:prometheus")
    day = datetime.now(timezone.utc) + timedelta(days=5)
    event = {"title": "Bal", "location": {"commune": "labege", "place": "Salle"}, "category": "fete-locale",
             "slots": [{"startsAt": day.isoformat(), "endsAt": (day + timedelta(hours=2)).isoformat()}]}
    eid = gql("mutation($e: EventInput!) { createEvent(event: $e) { id } }", {"e": event}, org)["data"]["createEvent"]["id"]
    version = gql("mutation($id: ID!) { submitEvent(id: $id) { version } }", {"id": eid}, org)["data"]["submitEvent"]
    approved = gql("mutation($id: ID!, $v: Int!) { moderateEvent(id: $id, version: $v, decision: APPROVE) { id } }",
                   {"id": eid, "v": version["version"]}, AGENT)
    assert "errors" not in approved, approved
    site = gql("mutation($s: SiteInput!) { saveSite(site: $s) { id } }",
               {"s": {"name": "Mairie", "commune": "labege", "competence": "Accueil"}}, AGENT)["data"]["saveSite"]
    kiosk = gql("mutation($k: KioskInput!) { registerKiosk(kiosk: $k) { token } }",
                {"k": {"siteId": site["id"], "name": "Borne", "repeatSeconds": 0}}, AGENT)["data"]["registerKiosk"]
    now = datetime.now(timezone.utc)
    for b in range(3):
        votes = [{"id": str(uuid.uuid4()), "rating": (i % 4) + 1,
                  "pressedAt": (now - timedelta(seconds=60 - b * 10 - i)).isoformat()} for i in range(5)]
        assert "errors" not in gql("mutation($v: [KioskVoteInput!]!) { submitKioskVotes(votes: $v) { accepted } }",
                                   {"v": votes}, kiosk["token"])
    for who in ("ok", "retry", "refuse"):
        gql("mutation($e: String!) { requestLoginCode(email: $e) { sent } }", {"e": f"{who}@prometheus.example"})
    bad = build_envelope("agenda.organization_upserted", {"id": "org-x", "slug": "x", "name": "X",
                                                          "kind": "association"}, "agenda")
    bad["data"]["kind"] = "nothing"
    with Connection(node.url) as conn:  # breaks its contract: dead-lettered at once
        conn.Producer().publish(bad, exchange=get_event_exchange("agenda", {}),
                                routing_key="agenda.organization_upserted", serializer="json", retry=True)
    consultations(platform.url)
    payments(gql)
    http.get("/metrics")
    http.close()


def consultations(url: str) -> None:
    """A survey answered (after an answer refused: nothing given), a budget voted in, the same citizen's second ballot
    refused (already voted). The refused answer is a refused call of the service (its entrypoints' errors panel); a
    refused ballot is refused inside a batch that succeeds (gateway/batching.py): the refusals' panel counts it."""
    survey = open_survey(url)
    refused = gql(url, SUBMIT, {"c": survey["id"], "a": []}, citizen("prometheus-1"))
    assert refused.get("errors"), refused
    data(url, SUBMIT, {"c": survey["id"], "a": full_answers()}, citizen("prometheus-1"))
    bid, ids = budget_to_ballot(url, [{"title": "Jardins partagés", "headingId": "labege", "cost": 45_000_00}])
    ballot = {"b": bid, "h": [{"headingId": "labege", "projectIds": ids}]}
    data(url, CAST, ballot, citizen("prometheus-1"))
    again = gql(url, CAST, ballot, citizen("prometheus-1"))
    assert again.get("errors"), again


def payments(gql) -> None:
    """Payments through the simulator `parvis up` started: one paid on PayFiP's page, one by sandbox card then
    refunded, one refused (the dashboard's states, amounts, provider calls and reconciliation)."""
    from tests.payment_flows import card_pay, payfip_choose

    create = """mutation($i: PaymentLinkInput!) { createPaymentLink(input: $i) { payment { id } } }"""
    start = """mutation($id: ID!) { startPayment(id: $id) { nextUrl } }"""
    ids = {}
    for name, regie, choice in (("paid", "regie-cantine", "P"), ("card", "regie-eau", None),
                                ("refused", "regie-cantine", "R")):
        bill = {"regieId": regie, "amount": 2500, "reference": f"PROM{name.upper()}{uuid.uuid4().hex[:8]}",
                "description": "Facture de test", "email": "habitant@example.org"}
        ids[name] = gql(create, {"i": bill}, AGENT)["data"]["createPaymentLink"]["payment"]["id"]
        next_url = gql(start, {"id": ids[name]})["data"]["startPayment"]["nextUrl"]
        payfip_choose(next_url, choice) if choice else card_pay(next_url)
    state = "query($id: ID!) { payment(id: $id) { state } }"
    wait_until(lambda: gql(state, {"id": ids["card"]}, AGENT)["data"]["payment"]["state"] == "SUCCESS", 30,
               message="the card payment")
    refunded = gql("mutation($id: ID!) { refundPayment(id: $id, amount: 500, amountAvailable: 2500) { id } }",
                   {"id": ids["card"]}, AGENT)
    assert "errors" not in refunded, refunded


def recording_rules() -> list[tuple[str, dict]]:
    found = []
    for path in RULE_FILES:
        for group in yaml.safe_load(path.read_text())["groups"]:
            found += [(r["record"], r.get("labels") or {}) for r in group["rules"] if "record" in r]
    return found


def test_every_dashboard_query_and_recording_rule_returns_data(stack, node, prometheus):
    traffic(stack, node)
    queries = {f"{path.name}: {expr}": expr for path in DASHBOARD_FILES
               for expr in dashboard_exprs(json.loads(path.read_text()))}
    queries.update({f"rule {name}{labels or ''}": name + ("{" + ",".join(f'{k}="{v}"' for k, v in labels.items())
                                                          + "}" if labels else "")
                    for name, labels in recording_rules()})
    assert len(queries) > 80
    empty: dict[str, str] = {}

    def all_answer() -> bool:
        empty.clear()
        for name, expr in queries.items():
            if not query(prometheus.api, expr):
                empty[name] = expr
        return not empty

    started = time.monotonic()
    try:
        wait_until(all_answer, 90, 2.0, "every query answering")
    except AssertionError:
        raise AssertionError(f"{len(empty)} of {len(queries)} queries return no data:\n  " + "\n  ".join(empty)
                             + "\n" + prometheus.log.read_text()[-2000:]) from None
    print(f"\n{len(queries)} dashboard queries and recording rules answer, {time.monotonic() - started:.0f} s after "
          "the traffic")
