"""Consultations as citizens hear of them, through the whole platform: the notification service turns the consultation
service's events into messages. A survey that opens reaches the subscribers of `consultation:new` (by email, through
the dev SMTP server); a budget's phases reach the subscribers of `consultation:budget:<id>`; its results too; the
author of a project hears of its moderation and its assessment; a panel's consultation is not announced to all."""
import pytest

from tests.consultation_flows import (ADVANCE, AGENT, CREATE, act, budget_input, citizen, data, open_survey)
from tests.support import PYTHON, Platform, Proc, free_port, wait_until

SUBSCRIBE = ("mutation($t: String!, $c: NotificationChannel!) { subscribe(topic: $t, channel: $c) { id topic } }")
MINE = "{ myNotifications(limit: 100) { template text channel } }"


@pytest.fixture(scope="module")
def platform(mongo, broker):
    mongo.drop_all()
    p = Platform(mongo, broker, PARVIS_NOTIFY_INTERVAL="0.2")
    port = free_port()
    devmail = Proc("devmail", [PYTHON, "-m", "parvis.devmail", "--port", str(port)], p.env, "PARVIS-READY devmail")
    p.procs.append(devmail)
    devmail.start()
    p.service("agenda")
    p.service("consultation")
    p.service("notification", SMTP_URL=f"smtp://127.0.0.1:{port}")
    p.gateway()
    from parvis.seed import demo_data
    from tests.support import rpc_call

    rpc_call(p.broker.url, "agenda", "import_reference_data", timeout=60, **demo_data())
    yield p
    p.stop()


def signed_in(platform, email: str) -> str:
    """A citizen signed in by the emailed code, as the web site does it."""
    import re
    from email import message_from_bytes, policy
    from pathlib import Path

    data(platform.url, "mutation($e: String!) { requestLoginCode(email: $e) { sent } }", {"e": email}, None)

    def code():
        for path in sorted((Path(platform.data_dir) / "mail").glob("*.eml")):
            msg = message_from_bytes(path.read_bytes(), policy=policy.default)
            if msg["To"] == email and "code" in str(msg["Subject"]):
                return re.search(r"\d{6}", str(msg["Subject"])).group()
        return None

    found = wait_until(code, 20, 0.2, "the sign-in code")
    return data(platform.url, "mutation($e: String!, $c: String!) { verifyLoginCode(email: $e, code: $c) { token } }",
                {"e": email, "c": found}, None)["verifyLoginCode"]["token"]


def mails_to(platform, email: str) -> list:
    from email import message_from_bytes, policy
    from pathlib import Path

    out = []
    for path in sorted((Path(platform.data_dir) / "mail").glob("*.eml")):
        msg = message_from_bytes(path.read_bytes(), policy=policy.default)
        if msg["To"] == email:
            out.append(msg)
    return out


def notifications(platform, tok):
    return data(platform.url, MINE, None, tok)["myNotifications"]


def test_a_survey_that_opens_is_emailed_to_the_subscribers_of_consultation_new(platform):
    tok = signed_in(platform, "abonnee@exemple.fr")
    data(platform.url, SUBSCRIBE, {"t": "consultation:new", "c": "EMAIL"}, tok)
    survey = open_survey(platform.url, title="Enquête sur la collecte des déchets")
    wait_until(lambda: any("Enquête sur la collecte" in str(m["Subject"]) for m in mails_to(platform, "abonnee@exemple.fr")),
               30, 0.3, "the email of the new survey")
    mail = next(m for m in mails_to(platform, "abonnee@exemple.fr") if "collecte" in str(m["Subject"]))
    assert str(mail["Subject"]) == "Nouvelle enquête : Enquête sur la collecte des déchets"
    body = mail.get_body(("plain",)).get_content()
    assert f"/consultations/{survey['id']}" in body and "Ouverte jusqu'au" in body
    panel = open_survey(platform.url, audience="PANEL", title="Comité d'usagers")
    act(platform.url, "closeConsultation", panel["id"])
    act(platform.url, "publishConsultationResults", panel["id"])
    wait_until(lambda: any("Résultats publiés : Comité" in str(m["Subject"]) for m in
                           mails_to(platform, "abonnee@exemple.fr")), 30, 0.3, "the results of the panel's survey")
    assert not any("Nouvelle enquête : Comité" in str(m["Subject"]) for m in mails_to(platform, "abonnee@exemple.fr")), \
        "a panel's consultation is not announced to everyone"


def test_a_budgets_phases_reach_its_followers_and_decisions_reach_the_author(platform):
    url = platform.url
    follower, author = citizen("follower"), citizen("author")
    b = data(url, CREATE, {"c": budget_input([{"id": "labege", "name": "Labège", "communes": ["labege"],
                                               "amountCents": 50_000_00}])})["createConsultation"]
    data(url, SUBSCRIBE, {"t": f"consultation:budget:{b['id']}", "c": "IN_APP"}, follower)
    act(url, "scheduleConsultation", b["id"])
    data(url, ADVANCE, {"b": b["id"], "to": "INFORMING"})
    data(url, ADVANCE, {"b": b["id"], "to": "ACCEPTING"})
    wait_until(lambda: len([n for n in notifications(platform, follower) if n["template"] == "budget_phase"]) == 2,
               30, 0.3, "two phases announced")
    texts = [n["text"] for n in notifications(platform, follower)]
    assert any("le dépôt des projets est ouvert jusqu'au" in t for t in texts), texts
    project = data(url, "mutation($b: ID!, $p: ProjectInput!) { proposeProject(budgetId: $b, project: $p) { id } }",
                   {"b": b["id"], "p": {"title": "Un verger communal", "headingId": "labege",
                                        "description": "Des arbres fruitiers près de l'école.",
                                        "estimatedCostCents": 8_000_00}}, author)["proposeProject"]
    data(url, "mutation($id: ID!) { moderateProject(id: $id, decision: REJECT, reason: \"Terrain privé.\") { id } }",
         {"id": project["id"]}, AGENT)
    wait_until(lambda: any(n["template"] == "project_decision" for n in notifications(platform, author)), 30, 0.3,
               "the author told")
    told = next(n for n in notifications(platform, author) if n["template"] == "project_decision")
    assert told["text"] == "Votre projet « Un verger communal » : non retenu. Motif : Terrain privé."
    assert not any(n["template"] == "project_decision" for n in notifications(platform, follower))
