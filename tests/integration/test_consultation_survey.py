"""A survey through the real stack (gateway, consultation service, nx-27017, RabbitMQ): drafted with a question of every
type, scheduled, opened, answered (drafts, refusals naming the question, a response replaced: the last one counts),
closed, results hidden from everyone until an agent publishes them, then published, exported, and announced on the
bus at each step."""
import csv
import io
import json
import threading

import pytest
from kombu import Connection, Exchange, Queue

from tests.consultation_flows import (AGENT, CREATE, RESULTS, SAVE, SUBMIT, act, citizen, data, error, full_answers,
                                      gql, open_survey, survey_questions)
from tests.support import Platform, token, wait_until

ROLES = {"public": None, "citizen": citizen("curious"), "organizer": token("organizer", org="org-commune-labege"),
         "agent": AGENT, "operator": token("operator")}


@pytest.fixture(scope="module")
def platform(mongo, broker):
    mongo.drop_all()
    p = Platform(mongo, broker)
    p.service("agenda")
    p.service("consultation")
    p.service("notification")  # the revocation list: without it, the gateway refuses every token
    p.gateway()
    from parvis.seed import demo_data
    from tests.support import rpc_call

    rpc_call(p.broker.url, "agenda", "import_reference_data", timeout=60, **demo_data())
    yield p
    p.stop()


@pytest.fixture
def bus(platform):
    """Every consultation.* event published on the bus while the test runs."""
    seen: list[dict] = []
    stop = threading.Event()
    ready = threading.Event()

    def listen():
        with Connection(platform.broker.url) as conn:
            exchange = Exchange("consultation.events", type="topic", durable=True)
            queue = Queue(exclusive=True, exchange=exchange, routing_key="consultation.#")
            with conn.Consumer(queue, callbacks=[lambda body, msg: (seen.append(body), msg.ack())]):
                ready.set()
                while not stop.is_set():
                    try:
                        conn.drain_events(timeout=0.2)
                    except Exception:  # noqa: BLE001 - a timeout: look at `stop` again
                        pass

    thread = threading.Thread(target=listen, daemon=True)
    thread.start()
    ready.wait(10)
    yield seen
    stop.set()
    thread.join(5)


def results(platform, cid, tok):
    return data(platform.url, RESULTS, {"id": cid}, tok)["consultationResults"]


def test_a_survey_from_draft_to_published_results(platform, bus):
    url = platform.url
    survey = open_survey(url)
    cid = survey["id"]
    assert survey["state"] == "OPEN" and survey["participants"] == 0
    assert [q["type"] for q in survey["questions"]][:2] == ["SECTION", "YES_NO"]

    # A refusal names the question, in French, and stores nothing.
    bad = full_answers()
    bad[1] = {"questionId": "which", "choices": ["labege", "escalquens", "autre"], "otherText": "Ayguesvives"}
    err = error(url, SUBMIT, {"c": cid, "a": bad}, citizen(1))
    assert err["extensions"] == {"code": "BAD_USER_INPUT", "field": "which"}
    assert err["message"].startswith("Question 3 (« Lesquelles ? ») : choisissez au plus 2 réponses")
    missing = [a for a in full_answers() if a["questionId"] != "note"]
    err = error(url, SUBMIT, {"c": cid, "a": missing}, citizen(1))
    assert err["extensions"]["field"] == "note" and "réponse obligatoire" in err["message"]
    hidden = full_answers()
    hidden[0] = {"questionId": "uses", "choices": ["no"]}
    err = error(url, SUBMIT, {"c": cid, "a": hidden}, citizen(1))
    assert err["extensions"]["field"] == "which" and "ne vous est pas posée" in err["message"]
    assert error(url, SUBMIT, {"c": cid, "a": full_answers()}, AGENT)["extensions"]["code"] == "FORBIDDEN"
    assert error(url, SUBMIT, {"c": cid, "a": full_answers()}, None)["extensions"]["code"] == "UNAUTHENTICATED"
    assert results(platform, cid, AGENT)["participation"]["total"] == 0, "nothing stored by a refusal"

    # A draft, then the submission; a second submission replaces the first (the last one counts).
    assert data(url, SAVE, {"c": cid, "a": full_answers()[:2]}, citizen(1))["saveResponse"]["status"] == "DRAFT"
    mine = data(url, "query($c: ID!) { myResponse(consultationId: $c) { status answers { questionId } } }",
                {"c": cid}, citizen(1))["myResponse"]
    assert mine["status"] == "DRAFT" and [a["questionId"] for a in mine["answers"]] == ["uses", "which"]
    assert data(url, SUBMIT, {"c": cid, "a": full_answers("eau", 2)}, citizen(1))["submitResponse"]["status"] == "SUBMITTED"
    data(url, SUBMIT, {"c": cid, "a": full_answers("dechets", 5)}, citizen(1))
    data(url, SUBMIT, {"c": cid, "a": full_answers("dechets", 3)}, citizen(2))
    no_ranking = [a for a in full_answers("piscine", 4) if a["questionId"] not in ("priorites", "nps")]
    data(url, SUBMIT, {"c": cid, "a": no_ranking}, citizen(3))
    other = full_answers()
    other[1] = {"questionId": "which", "choices": ["autre"], "otherText": "Ayguesvives"}
    data(url, SUBMIT, {"c": cid, "a": other}, citizen(4))

    # While open: the participation for everyone, no counts for anyone, agents included.
    for role, tok in ROLES.items():
        r = results(platform, cid, tok)
        assert r["participation"]["total"] == 4 and r["participation"]["web"] == 4, role
        assert r["questions"] == [] and r["publishedAt"] is None, role
    assert data(url, "query($id: ID!) { consultation(id: $id) { participants questionsLocked } }",
                {"id": cid}, None)["consultation"] == {"participants": 4, "questionsLocked": True}
    assert error(url, "query($c: ID!) { consultationResultsFile(consultationId: $c, format: CSV) { content } }",
                 {"c": cid})["extensions"]["code"] == "CONFLICT"

    # Once answered, a question's meaning cannot change; a typo can be fixed, and is recorded.
    q = next(q for q in survey_questions() if q.get("id") == "service")
    err = error(url, "mutation($c: ID!, $q: QuestionInput!) { updateQuestion(consultationId: $c, question: $q) "
                     "{ id } }", {"c": cid, "q": {**q, "position": 4, "label": "Quel service n'utilisez-vous jamais ?"}})
    assert err["extensions"]["code"] == "CONFLICT"
    fixed = data(url, "mutation($c: ID!, $q: QuestionInput!) { updateQuestion(consultationId: $c, question: $q) "
                      "{ questions { id label } revisions { changes { path before after } } } }",
                 {"c": cid, "q": {**q, "position": 4, "label": "Quel service utilisez vous le plus ?"}})["updateQuestion"]
    assert fixed["revisions"][0]["changes"] == [{"path": "label", "before": "Quel service utilisez-vous le plus ?",
                                                  "after": "Quel service utilisez vous le plus ?"}]

    closed = act(url, "closeConsultation", cid)
    assert closed["state"] == "CLOSED"
    assert error(url, SUBMIT, {"c": cid, "a": full_answers()}, citizen(5))["extensions"]["code"] == "CONFLICT"
    for role, tok in ROLES.items():
        assert results(platform, cid, tok)["questions"] == [], f"{role} sees counts before publication"
    assert error(url, "mutation($id: ID!) { publishConsultationResults(id: $id) { id } }", {"id": cid},
                 citizen(1))["extensions"]["code"] == "FORBIDDEN"

    assert act(url, "publishConsultationResults", cid)["state"] == "RESULTS_PUBLISHED"
    r = results(platform, cid, None)
    by_id = {x["questionId"]: x for x in r["questions"]}
    assert r["participation"]["total"] == 4 and r["publishedAt"]
    assert {o["optionId"]: o["count"] for o in by_id["service"]["options"]} == {"eau": 0, "dechets": 3, "piscine": 1}
    assert by_id["service"]["answered"] == 4
    assert {d["value"]: d["count"] for d in by_id["note"]["rating"]["distribution"]} == {1: 0, 2: 0, 3: 1, 4: 2, 5: 1}
    assert by_id["note"]["rating"]["mean"] == 4.0, "the first submission of citizen 1 (a 2) no longer counts"
    assert by_id["which"]["otherTexts"] == 1 and by_id["which"]["answered"] == 4
    assert by_id["priorites"]["answered"] == 3
    assert by_id["priorites"]["ranking"][0] == {"optionId": "proprete", "points": 6, "firstPlaces": 3}
    grid = {row["rowId"]: {o["optionId"]: o["count"] for o in row["options"]} for row in by_id["grille"]["rows"]}
    assert grid["accueil"] == {"bien": 4, "moyen": 0, "mal": 0}
    assert by_id["idee"]["charted"] is False and by_id["idee"]["answered"] == 4

    exported = data(url, "query($c: ID!, $f: ResultsFormat!) { consultationResultsFile(consultationId: $c, format: $f) "
                         "{ filename contentType content licence } }", {"c": cid, "f": "CSV"}, None)
    rows = list(csv.DictReader(io.StringIO(exported["consultationResultsFile"]["content"])))
    assert {(r["option_id"], r["nombre"]) for r in rows if r["question_id"] == "service"} == {
        ("eau", "0"), ("dechets", "3"), ("piscine", "1")}
    assert exported["consultationResultsFile"]["licence"].startswith("Licence Ouverte")
    as_json = json.loads(data(url, "query($c: ID!) { consultationResultsFile(consultationId: $c, format: JSON) "
                                   "{ content } }", {"c": cid}, None)["consultationResultsFile"]["content"])
    assert as_json["participation"]["total"] == 4 and len(as_json["questions"]) == 10

    archived = act(url, "archiveConsultation", cid)
    assert archived["state"] == "ARCHIVED"
    wait_until(lambda: {"consultation.opened", "consultation.closed", "consultation.results_published",
                        "consultation.archived"} <= {e["type"] for e in bus if e["data"].get("id") == cid},
               15, 0.2, "the survey's events on the bus")
    closed_event = next(e for e in bus if e["type"] == "consultation.closed" and e["data"]["id"] == cid)
    assert closed_event["data"]["participants"] == 4 and closed_event["data"]["actor"] == "agent:test"
    assert sum(1 for e in bus if e["type"] == "consultation.opened" and e["data"]["id"] == cid) == 1


def test_the_clock_opens_and_closes_a_scheduled_survey(platform, bus):
    """Scheduled with a window that opens in a second and closes a few seconds later: the timer moves it, once."""
    from datetime import datetime, timedelta, timezone

    now = datetime.now(timezone.utc)
    c = data(platform.url, CREATE, {"c": {"title": "Sondage éclair", "kind": "SURVEY",
                                          "opensAt": (now + timedelta(seconds=1)).isoformat(),
                                          "closesAt": (now + timedelta(seconds=8)).isoformat()},
                                    "q": survey_questions()[:3]})["createConsultation"]
    assert act(platform.url, "scheduleConsultation", c["id"])["state"] == "SCHEDULED"
    state = lambda: data(platform.url, "query($id: ID!) { consultation(id: $id) { state } }",  # noqa: E731
                         {"id": c["id"]}, None)["consultation"]["state"]
    wait_until(lambda: any(e["type"] == "consultation.opened" and e["data"]["id"] == c["id"] for e in bus), 15, 0.2,
               "opened by the clock")
    assert next(e for e in bus if e["type"] == "consultation.opened")["data"]["actor"] is None
    wait_until(lambda: state() == "CLOSED", 20, 0.3, "closed by the clock")
    wait_until(lambda: any(e["type"] == "consultation.closed" and e["data"]["id"] == c["id"] for e in bus), 15, 0.2,
               "closing announced")
    assert [e["type"] for e in bus if e["data"].get("id") == c["id"]].count("consultation.opened") == 1


def test_drafts_are_the_agents_and_errors_name_the_field(platform):
    url = platform.url
    c = data(url, CREATE, {"c": {"title": "Brouillon", "kind": "CONSULTATION"}})["createConsultation"]
    assert c["state"] == "DRAFT"
    assert data(url, "query($id: ID!) { consultation(id: $id) { id } }", {"id": c["id"]}, None)["consultation"] is None
    listed = data(url, "{ consultations(first: 100) { totalCount edges { node { id } } } }", None, None)
    assert c["id"] not in {e["node"]["id"] for e in listed["consultations"]["edges"]}
    assert c["id"] in {e["node"]["id"] for e in data(url, "{ consultations(first: 100) { edges { node { id } } } }")
                       ["consultations"]["edges"]}
    err = error(url, "mutation($id: ID!) { scheduleConsultation(id: $id) { id } }", {"id": c["id"]})
    assert err["extensions"]["code"] == "BAD_USER_INPUT" and "aucune question" in err["message"]
    err = error(url, CREATE, {"c": {"title": "Hors territoire", "kind": "SURVEY",
                                    "scope": {"kind": "COMMUNES", "communes": ["toulouse"]}}})
    assert err["extensions"] == {"code": "BAD_USER_INPUT", "field": "scope.communes"}
    assert "toulouse" in err["message"]
    err = error(url, CREATE, {"c": {"title": "Sondage", "kind": "SURVEY"},
                              "q": [{"type": "MULTIPLE_CHOICE", "label": "Couleurs ?", "id": "couleurs",
                                     "maxChoices": 5, "options": [{"id": "a", "label": "A"}, {"id": "b", "label": "B"}]}]})
    assert err["extensions"] == {"code": "BAD_USER_INPUT", "field": "couleurs"}
    assert err["message"] == "Question 1 (« Couleurs ? ») : au plus 5 choix, mais seulement 2 options."
    assert error(url, CREATE, {"c": {"title": "X", "kind": "SURVEY"}}, citizen(1))["extensions"]["code"] == "FORBIDDEN"


def test_a_panel_consultation_takes_its_members_only(platform):
    """Members are imported as addresses and kept as the ids their sign-in tokens carry (no address stored)."""
    from services.common.identity import citizen_id
    from tests.support import TEST_SECRET

    url = platform.url
    c = open_survey(url, audience="PANEL", title="Comité d'usagers du numérique")
    report = data(url, "mutation($c: ID!, $e: [String!]!) { importPanelMembers(consultationId: $c, emails: $e) "
                       "{ added alreadyMembers invalid members } }",
                  {"c": c["id"], "e": ["Jeanne Dupont <Jeanne.Dupont@exemple.fr>", "paul@exemple.fr; pas-une-adresse",
                                       "paul@exemple.fr"]})["importPanelMembers"]
    assert report == {"added": 2, "alreadyMembers": 0, "invalid": ["pas-une-adresse"], "members": 2}
    member = token("citizen", subject=citizen_id(TEST_SECRET, "jeanne.dupont@exemple.fr"))
    assert data(url, SUBMIT, {"c": c["id"], "a": full_answers()}, member)["submitResponse"]["status"] == "SUBMITTED"
    err = error(url, SUBMIT, {"c": c["id"], "a": full_answers()}, citizen("outsider"))
    assert err["extensions"]["code"] == "FORBIDDEN" and "panel" in err["message"]
    panel_docs = list(platform.mongo.client().parvis_consultation.panels.find({"consultation_id": c["id"]}))
    assert "exemple.fr" not in json.dumps(panel_docs, default=str)


def test_a_scheduled_consultations_meetings_are_in_the_agenda(platform):
    """The agenda reacts to consultation.scheduled: each public meeting becomes a published event, once."""
    from datetime import datetime, timedelta, timezone

    start = (datetime.now(timezone.utc) + timedelta(days=3)).replace(microsecond=0)
    c = data(platform.url, CREATE, {"c": {
        "title": "Concertation sur le plan vélo", "kind": "CONSULTATION", "opensAt": start.isoformat(),
        "closesAt": (start + timedelta(days=20)).isoformat(),
        "meetings": [{"title": "Atelier plan vélo", "startsAt": (start + timedelta(days=2)).isoformat(),
                      "endsAt": (start + timedelta(days=2, hours=2)).isoformat(), "commune": "ramonville-saint-agne",
                      "place": "Salle Marcaissonne"}]}, "q": survey_questions()[:2]})["createConsultation"]
    act(platform.url, "scheduleConsultation", c["id"])
    events = "query($f: EventFilter) { events(filter: $f) { totalCount edges { node { id title description url " \
             "organizer { id } commune { slug } } } } }"
    found = wait_until(lambda: data(platform.url, events, {"f": {"text": "plan vélo"}}, None)["events"]["edges"], 20,
                       0.3, "the meeting in the agenda")
    node = found[0]["node"]
    assert node["title"] == "Réunion publique : Atelier plan vélo" and node["organizer"]["id"] == "org-sicoval"
    assert node["commune"]["slug"] == "ramonville-saint-agne" and f"/consultations/{c['id']}" in node["description"]
    act(platform.url, "unscheduleConsultation", c["id"])
    act(platform.url, "scheduleConsultation", c["id"])
    import time
    time.sleep(1.5)
    assert data(platform.url, events, {"f": {"text": "plan vélo"}}, None)["events"]["totalCount"] == 1, "once"
