"""What the consultation tests (integration, end to end) and the benchmark share: GraphQL documents, a survey with a
question of every type, and a participatory budget brought through its phases to the vote, all through the gateway
as agents and citizens would."""
from __future__ import annotations

import hashlib
from datetime import datetime, timedelta, timezone

import httpx

from tests.support import token

AGENT = token("agent", subject="agent:test")
AGENT2 = token("agent", subject="agent:second")
AGENT3 = token("agent", subject="agent:third")

CONSULTATION_FIELDS = """id title kind state secret audience opensAt closesAt participants questionsLocked url
  questions { id type label position mandatory options { id label freeText } rows { id label }
              scale { min max } conditions { questionId operator value } }
  budget { currentPhase headings { id name amountCents } phases { kind current startsAt endsAt } }"""
CREATE = ("mutation($c: ConsultationInput!, $q: [QuestionInput!]) { createConsultation(consultation: $c, "
          f"questions: $q) {{ {CONSULTATION_FIELDS} }} }}")
ACT = "mutation($id: ID!) {{ {name}(id: $id) {{ {fields} }} }}"
SUBMIT = ("mutation($c: ID!, $a: [AnswerInput!]!) { submitResponse(consultationId: $c, answers: $a) "
          "{ status final receiptCode answers { questionId choices rating text } } }")
SAVE = ("mutation($c: ID!, $a: [AnswerInput!]!) { saveResponse(consultationId: $c, answers: $a) "
        "{ status answers { questionId choices } } }")
CAST = ("mutation($b: ID!, $h: [HeadingBallotInput!]!) { castBudgetBallot(budgetId: $b, headings: $h) "
        "{ receiptCode headings { headingId projectIds } } }")
RESULTS = """query($id: ID!) { consultationResults(id: $id) { state publishedAt paperEntriesExcluded
  participation { web booth letter paperBallots blank null total }
  questions { questionId type answered otherTexts charted options { optionId count percent }
              rows { rowId answered options { optionId count } } ranking { optionId points firstPlaces }
              rating { mean distribution { value count } } }
  headings { headingId spentCents remainingCents winners projects { projectId rank winner priceCents
             votes { online paper total } } } } }"""
ADVANCE = f"mutation($b: ID!, $to: BudgetPhaseKind!) {{ advanceBudgetPhase(budgetId: $b, to: $to) {{ {CONSULTATION_FIELDS} }} }}"
PROJECT_FIELDS = "id title headingId moderation feasibility priceCents selected supports author votes { online paper total } winner"


def citizen(n: int | str) -> str:
    """A citizen's token; its subject is shaped as the notification service's ids (cit- and 20 hex digits)."""
    return token("citizen", subject="cit-" + hashlib.sha256(str(n).encode()).hexdigest()[:20])


def gql(url: str, query: str, variables: dict | None = None, tok: str | None = None, timeout: float = 30.0) -> dict:
    """The whole GraphQL answer (data and errors)."""
    headers = {"Authorization": f"Bearer {tok}"} if tok else {}
    return httpx.post(f"{url}/graphql", json={"query": query, "variables": variables or {}}, headers=headers,
                      timeout=timeout).json()


def data(url: str, query: str, variables: dict | None = None, tok: str | None = AGENT) -> dict:
    body = gql(url, query, variables, tok)
    assert "errors" not in body, body
    return body["data"]


def error(url: str, query: str, variables: dict | None = None, tok: str | None = AGENT) -> dict:
    """The first error of an answer that must have one (its message and extensions)."""
    body = gql(url, query, variables, tok)
    assert body.get("errors"), body
    return body["errors"][0]


def act(url: str, name: str, cid: str, tok: str = AGENT) -> dict:
    return data(url, ACT.format(name=name, fields=CONSULTATION_FIELDS), {"id": cid}, tok)[name]


# -- a survey with every question type ---------------------------------------------------------------
def survey_questions() -> list[dict]:
    return [
        {"type": "SECTION", "label": "Vos habitudes"},
        {"id": "uses", "type": "YES_NO", "label": "Utilisez-vous les déchèteries du Sicoval ?", "mandatory": True},
        {"id": "which", "type": "MULTIPLE_CHOICE", "label": "Lesquelles ?", "mandatory": True, "minChoices": 1,
         "maxChoices": 2, "options": [{"id": "labege", "label": "Labège"}, {"id": "escalquens", "label": "Escalquens"},
                                      {"id": "autre", "label": "Une autre", "freeText": True}],
         "conditions": [{"questionId": "uses", "value": "yes"}]},
        {"id": "service", "type": "SINGLE_CHOICE", "label": "Quel service utilisez-vous le plus ?", "mandatory": True,
         "options": [{"id": "eau", "label": "Eau potable"}, {"id": "dechets", "label": "Collecte des déchets"},
                     {"id": "piscine", "label": "Piscines"}]},
        {"id": "note", "type": "RATING", "label": "Votre satisfaction", "mandatory": True,
         "scale": {"min": 1, "max": 5, "labels": [{"value": 1, "label": "Pas du tout"},
                                                  {"value": 5, "label": "Tout à fait"}]}},
        {"id": "nps", "type": "RATING", "label": "Recommanderiez-vous ce service ?", "scale": {"min": 0, "max": 10}},
        {"id": "priorites", "type": "RANKING", "label": "Classez vos priorités",
         "options": [{"id": "horaires", "label": "Horaires"}, {"id": "proprete", "label": "Propreté"},
                     {"id": "tarifs", "label": "Tarifs"}]},
        {"id": "grille", "type": "MATRIX_SINGLE", "label": "Comment jugez-vous…", "mandatory": True,
         "options": [{"id": "bien", "label": "Bien"}, {"id": "moyen", "label": "Moyen"}, {"id": "mal", "label": "Mal"}],
         "rows": [{"id": "accueil", "label": "l'accueil"}, {"id": "attente", "label": "l'attente"}]},
        {"id": "saisons", "type": "MATRIX_MULTIPLE", "label": "Quand venez-vous ?", "maxChoices": 2,
         "options": [{"id": "matin", "label": "Le matin"}, {"id": "soir", "label": "Le soir"}],
         "rows": [{"id": "ete", "label": "En été"}, {"id": "hiver", "label": "En hiver"}]},
        {"id": "commune", "type": "SHORT_TEXT", "label": "Votre commune", "maxCharacters": 60},
        {"id": "idee", "type": "LONG_TEXT", "label": "Une idée pour améliorer le service ?"},
    ]


def full_answers(service: str = "dechets", note: int = 4) -> list[dict]:
    return [{"questionId": "uses", "choices": ["yes"]}, {"questionId": "which", "choices": ["labege"]},
            {"questionId": "service", "choices": [service]}, {"questionId": "note", "rating": note},
            {"questionId": "nps", "rating": 8}, {"questionId": "priorites", "choices": ["proprete", "horaires", "tarifs"]},
            {"questionId": "grille", "rows": [{"rowId": "accueil", "choices": ["bien"]},
                                              {"rowId": "attente", "choices": ["moyen"]}]},
            {"questionId": "saisons", "rows": [{"rowId": "ete", "choices": ["matin", "soir"]}]},
            {"questionId": "commune", "text": "Labège"}, {"questionId": "idee", "text": "Ouvrir le dimanche"}]


def open_survey(url: str, secret: bool = False, audience: str = "PUBLIC", title: str = "Enquête sur les services du "
                "Sicoval") -> dict:
    now = datetime.now(timezone.utc)
    c = data(url, CREATE, {"c": {"title": title, "kind": "SURVEY", "secret": secret, "audience": audience,
                                 "summary": "Votre avis sur les services", "description": "Dites-nous **tout**.",
                                 "opensAt": (now + timedelta(hours=1)).isoformat(),
                                 "closesAt": (now + timedelta(days=10)).isoformat()},
                           "q": survey_questions()})["createConsultation"]
    act(url, "scheduleConsultation", c["id"])
    return act(url, "openConsultation", c["id"])


# -- a participatory budget brought to its vote ---------------------------------------------------------
PHASES = ("INFORMING", "ACCEPTING", "REVIEWING", "SELECTING", "VALUATING", "PUBLISHING_PRICES", "BALLOTING",
          "REVIEWING_BALLOTS", "FINISHED")


def budget_input(headings: list[dict], rule: dict | None = None, title: str = "Budget participatif 2027") -> dict:
    """Phases of a week each, from tomorrow: the tests move them on with advanceBudgetPhase."""
    start = datetime.now(timezone.utc) + timedelta(days=1)
    phases = []
    for i, kind in enumerate(PHASES):
        begin = start + timedelta(days=7 * i)
        phases.append({"kind": kind, "startsAt": begin.isoformat(),
                       "endsAt": None if kind == "FINISHED" else (begin + timedelta(days=7)).isoformat()})
    budget = {"phases": phases, "headings": headings, "tieBreak": "LOWER_PRICE", "instance": "2027"}
    if rule:
        budget["rule"] = rule
    return {"title": title, "kind": "BUDGET", "summary": "Proposez et choisissez des projets pour votre commune",
            "budget": budget}


def budget_to_ballot(url: str, projects: list[dict], headings: list[dict] | None = None,
                     rule: dict | None = None, supporters: int = 0) -> tuple[str, list[str]]:
    """A budget through INFORMING, ACCEPTING (citizens propose `projects`: title, headingId, cost, price), REVIEWING
    (agents approve), SELECTING (supports), VALUATING (feasible and priced), PUBLISHING_PRICES (on the ballot) to
    BALLOTING. Returns its id and its projects' ids, in the order given."""
    headings = headings or [{"id": "labege", "name": "Labège", "communes": ["labege"], "amountCents": 100_000_00},
                            {"id": "escalquens", "name": "Escalquens", "communes": ["escalquens"],
                             "amountCents": 80_000_00}]
    b = data(url, CREATE, {"c": budget_input(headings, rule)})["createConsultation"]
    bid = b["id"]
    act(url, "scheduleConsultation", bid)
    for to in ("INFORMING", "ACCEPTING"):
        data(url, ADVANCE, {"b": bid, "to": to})
    ids = []
    for i, p in enumerate(projects):
        proposed = data(url, "mutation($b: ID!, $p: ProjectInput!) { proposeProject(budgetId: $b, project: $p) "
                             "{ id moderation } }",
                        {"b": bid, "p": {"title": p["title"], "headingId": p["headingId"], "description":
                                         p.get("description", "Un projet proposé par des habitants."),
                                         "estimatedCostCents": p["cost"]}}, citizen(f"author-{i}"))["proposeProject"]
        ids.append(proposed["id"])
        data(url, "mutation($id: ID!) { moderateProject(id: $id, decision: APPROVE) { moderation } }",
             {"id": proposed["id"]})
    for to in ("REVIEWING", "SELECTING"):
        data(url, ADVANCE, {"b": bid, "to": to})
    for n in range(supporters):
        data(url, "mutation($id: ID!) { supportProject(id: $id) { supports } }", {"id": ids[n % len(ids)]},
             citizen(f"supporter-{n}"))
    data(url, ADVANCE, {"b": bid, "to": "VALUATING"})
    for pid, p in zip(ids, projects):
        data(url, "mutation($id: ID!, $p: Int) { assessProject(id: $id, feasibility: FEASIBLE, priceCents: $p) "
                  "{ feasibility } }", {"id": pid, "p": p.get("price", p["cost"])})
    data(url, ADVANCE, {"b": bid, "to": "PUBLISHING_PRICES"})
    data(url, "mutation($b: ID!, $ids: [ID!]!) { selectProjects(budgetId: $b, projectIds: $ids) { id selected } }",
         {"b": bid, "ids": ids})
    current = data(url, ADVANCE, {"b": bid, "to": "BALLOTING"})["advanceBudgetPhase"]
    assert current["state"] == "OPEN" and current["budget"]["currentPhase"] == "BALLOTING", current
    return bid, ids


def round_documents(db) -> list[dict]:
    """The round documents of secret ballots still open (services/consultation/casting.py), in the counters'
    collection beside the counters (which have no `created_ts`)."""
    return list(db.counters.find({"created_ts": {"$exists": True}}))
