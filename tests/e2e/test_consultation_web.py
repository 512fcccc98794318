"""The web's consultation pages in Debian's Chromium against the real stack (`parvis up`: demo accounts, the demo
survey and budget): a citizen votes in a participatory budget, with JavaScript (the running total updates live) and
without (« Vérifier mon vote » computes it on the server; over budget, the refusal is shown beside its heading), gets
his receipt code, cannot vote twice and finds the vote in « Mes participations »; the consultations' list and the
home page link to the ballot; a citizen answers a survey without JavaScript (refusals beside their question); an
agent builds a survey in the console (questions added, moved, removed), opens it, checks a voter in at a booth (once),
two agents enter a paper sheet twice (their mismatch shown, then corrected), and the results are published; a panel is
imported; an agent creates a budget (sections, phases) and brings a project through moderation, pricing and selection
to the vote; axe-core on each page; a form posted without its CSRF token is refused."""
import re
from datetime import date, timedelta

import httpx
import pytest
from playwright.sync_api import expect

from tests.consultation_flows import budget_to_ballot, citizen, data, open_survey
from tests.e2e.test_consultation_pages import no_serious_violation
from tests.e2e.test_web_pages import LIMITS, http_session, sign_in
from tests.support import Platform, token

PROJECTS = [{"title": "Jardins partagés", "headingId": "labege", "cost": 45_000_00},
            {"title": "Aire de jeux inclusive", "headingId": "labege", "cost": 30_000_50},
            {"title": "Piste cyclable du canal", "headingId": "labege", "cost": 40_000_00},
            {"title": "Fontaine au stade", "headingId": "escalquens", "cost": 15_000_00}]
RECEIPT = re.compile(r"^[0-9A-Z]{4}-[0-9A-Z]{4}-[0-9A-Z]{4}$")


@pytest.fixture(scope="module")
def platform(mongo, broker):
    mongo.drop_all()
    p = Platform(mongo, broker, **LIMITS)
    p.up("agenda", "consultation", "notification", "gateway")
    yield p
    p.stop_reporting_crashes()


@pytest.fixture(scope="module")
def budget(platform):
    bid, _ = budget_to_ballot(platform.url, PROJECTS)
    return bid


def small(page, what: str) -> None:
    assert len(page.content().encode()) < 100_000, f"{what}: more than 100 KB of HTML"


def test_a_citizen_votes_in_a_budget_with_javascript(platform, browser, budget):
    context, page = sign_in(platform, browser, "votante@example.org")
    page.goto("/")
    expect(page.get_by_role("heading", name="Consultations ouvertes")).to_be_visible()
    no_serious_violation(page, "the home page with its open consultations")
    page.get_by_role("link", name="Toutes les consultations").click()
    expect(page.get_by_role("heading", name="Consultations", exact=True)).to_be_visible()
    no_serious_violation(page, "the consultations' list")
    small(page, "the consultations' list")
    page.locator(f'a[href="/consultations/{budget}/vote"]').first.click()

    # Two headings, one vote: the voter chooses his.
    expect(page.get_by_role("group", name="Dans quelle section votez-vous ?")).to_be_visible()
    no_serious_violation(page, "the choice of a heading")
    page.get_by_label(re.compile("^Labège")).check()
    page.get_by_role("button", name="Choisir cette section").click()
    total = page.locator("#section-labege-total")
    expect(total).to_have_text("Total choisi : 0,00\u00a0€ sur 100\u202f000,00\u00a0€ · reste 100\u202f000,00\u00a0€")
    expect(page.get_by_label(re.compile("Fontaine au stade"))).to_have_count(0)  # another heading's project
    page.get_by_label(re.compile("^Jardins partagés")).check()
    page.get_by_label(re.compile("^Aire de jeux inclusive")).check()
    expect(total).to_have_text(
        "Total choisi : 75\u202f000,50\u00a0€ sur 100\u202f000,00\u00a0€ · reste 24\u202f999,50\u00a0€")
    page.get_by_label(re.compile("^Piste cyclable")).check()
    expect(total).to_contain_text("dépassement de 15\u202f000,50\u00a0€")
    no_serious_violation(page, "the ballot")
    small(page, "the ballot")

    # Cast over budget: the service refuses, the message is beside the heading and in the summary.
    page.get_by_role("button", name="Voter").click()
    error = page.locator("#section-labege-error")
    expect(error).to_contain_text(re.compile(r"coûte 115.000,50.€ : plus que les 100.000.€ de la section"))
    expect(page.get_by_role("alert")).to_contain_text("Il y a un problème")
    expect(page.get_by_role("group", name=re.compile("^Labège"))).to_have_attribute("aria-invalid", "true")
    no_serious_violation(page, "the ballot with an error")
    page.get_by_label(re.compile("^Piste cyclable")).uncheck()
    page.get_by_role("button", name="Voter").click()

    expect(page.get_by_role("heading", name="Merci, votre vote est enregistré")).to_be_visible()
    code = page.locator("#recu").inner_text().strip()
    assert RECEIPT.match(code), code
    expect(page.get_by_role("listitem").filter(has_text="Jardins partagés")).to_be_visible()
    no_serious_violation(page, "the receipt")

    page.goto(f"/consultations/{budget}/vote?section=labege")
    expect(page.get_by_text("Vous avez déjà voté dans ce budget participatif.")).to_be_visible()
    page.goto("/compte/participations")
    row = page.get_by_role("row").filter(has_text="Budget participatif 2027")
    expect(row).to_contain_text("A voté en ligne")
    no_serious_violation(page, "my participations")
    context.close()


def test_a_citizen_votes_without_javascript(platform, browser, budget):
    context, page = sign_in(platform, browser, "sans-script@example.org", javascript=False)
    page.goto(f"/consultations/{budget}/vote")
    page.get_by_label(re.compile("^Labège")).check()
    page.get_by_role("button", name="Choisir cette section").click()
    page.get_by_role("button", name="Vérifier mon vote").click()
    expect(page.locator("#bulletin-error")).to_have_text("Erreur : Choisissez au moins un projet.")
    for title in ("Jardins partagés", "Aire de jeux inclusive", "Piste cyclable"):
        page.get_by_label(re.compile(f"^{title}")).check()
    page.get_by_role("button", name="Vérifier mon vote").click()
    expect(page.locator("#section-labege-total")).to_contain_text("dépassement de 15\u202f000,50\u00a0€")
    expect(page.locator("#section-labege-error")).to_contain_text("15\u202f000,50\u00a0€ de trop")
    expect(page.get_by_label(re.compile("^Piste cyclable"))).to_be_checked()  # the choice is kept
    page.get_by_label(re.compile("^Jardins partagés")).uncheck()
    page.get_by_role("button", name="Vérifier mon vote").click()
    expect(page.locator("#section-labege-total")).to_have_text(
        "Total choisi : 70\u202f000,50\u00a0€ sur 100\u202f000,00\u00a0€ · reste 29\u202f999,50\u00a0€")
    expect(page.get_by_role("status")).to_contain_text("Vous pouvez voter.")
    page.get_by_role("button", name="Voter").click()
    expect(page.get_by_role("heading", name="Merci, votre vote est enregistré")).to_be_visible()
    assert RECEIPT.match(page.locator("#recu").inner_text().strip())
    context.close()


def test_the_ballot_and_the_console_refuse_a_form_without_its_token(platform, budget):
    client = http_session(platform, "jeton@example.org")
    try:
        r = client.post(f"/consultations/{budget}/vote", data={"section": "labege", "action": "voter",
                                                                 "p-labege": "x"})
    finally:
        client.close()
    assert r.status_code == 403 and "Formulaire expiré" in r.text
    agent = http_session(platform, "agent@sicoval.example")
    try:
        r = agent.post("/console/consultations/nouvelle", data={"titre": "Sans jeton", "type": "SURVEY"})
        listed = agent.get("/console/consultations").text
    finally:
        agent.close()
    assert r.status_code == 403 and "Formulaire expiré" in r.text and "Sans jeton" not in listed
    with httpx.Client(base_url=platform.url, timeout=20) as anonymous:
        r = anonymous.get(f"/consultations/{budget}/vote")
        assert r.status_code == 303 and r.headers["location"].startswith("/connexion?suite=")


def test_an_agent_builds_a_survey_enters_paper_twice_and_publishes_results(platform, browser):
    context, page = sign_in(platform, browser, "agent@sicoval.example")
    page.goto("/console/consultations")
    no_serious_violation(page, "the console's consultations")
    page.get_by_role("link", name="Nouvelle enquête ou consultation").click()
    page.get_by_label("Titre", exact=True).fill("Fête du vélo 2027")
    page.get_by_label("Jour d'ouverture").fill((date.today() + timedelta(days=1)).isoformat())
    page.get_by_label("Heure d'ouverture").fill("09:00")
    page.get_by_label("Jour de clôture").fill((date.today() + timedelta(days=20)).isoformat())
    page.get_by_label("Heure de clôture").fill("18:00")
    no_serious_violation(page, "the consultation's form")
    page.get_by_role("button", name="Enregistrer").click()
    expect(page.get_by_text("Brouillon enregistré : ajoutez ses questions.")).to_be_visible()
    cid = page.url.rstrip("/").rsplit("/", 1)[1]

    def add(kind: str, label: str, options: str = "", mandatory: bool = False):
        page.get_by_label("Type de question").select_option(kind)
        page.get_by_label("Libellé de la question").fill(label)
        page.get_by_label("Options").fill(options)
        if mandatory:
            page.get_by_label("Réponse obligatoire").check()
        page.get_by_role("button", name="Ajouter la question").click()
        expect(page.get_by_text("Question ajoutée.")).to_be_visible()

    page.get_by_role("button", name="Ajouter la question").click()  # nothing filled: refused beside the fields
    expect(page.locator("#q_libelle-error")).to_have_text("Erreur : Libellé : obligatoire.")
    expect(page.locator("#q_options-error")).to_contain_text("deux au moins")
    no_serious_violation(page, "the form builder with errors")
    add("SINGLE_CHOICE", "Quel jour préférez-vous ?", "Samedi\nDimanche", mandatory=True)
    add("SHORT_TEXT", "Une remarque ?")
    add("YES_NO", "Venez-vous à vélo ?")
    questions = page.locator("ol.questions > li strong")
    expect(questions).to_have_text(["Quel jour préférez-vous ?", "Une remarque ?", "Venez-vous à vélo ?"])
    page.get_by_role("button", name="Monter la question 3").click()
    expect(questions).to_have_text(["Quel jour préférez-vous ?", "Venez-vous à vélo ?", "Une remarque ?"])
    page.get_by_role("button", name="Retirer la question 3").click()
    expect(questions).to_have_text(["Quel jour préférez-vous ?", "Venez-vous à vélo ?"])
    no_serious_violation(page, "the consultation's page in the console")

    page.get_by_role("button", name="Programmer").click()
    expect(page.get_by_text("Consultation programmée.")).to_be_visible()
    page.get_by_role("button", name="Ouvrir maintenant").click()
    expect(page.get_by_role("heading", name="État : ouverte")).to_be_visible()

    # A citizen answers online (through the API, as the survey's page does).
    survey = data(platform.url, "query($id: ID!) { consultation(id: $id) { questions { id type options { id } } } }",
                  {"id": cid}, citizen("velo"))["consultation"]
    day, bike = survey["questions"]
    answers = [{"questionId": day["id"], "choices": [day["options"][0]["id"]]},
               {"questionId": bike["id"], "choices": ["yes"]}]
    data(platform.url, "mutation($c: ID!, $a: [AnswerInput!]!) { submitResponse(consultationId: $c, answers: $a) "
                       "{ status } }", {"c": cid, "a": answers}, citizen("velo"))

    # Paper: one agent enters a sheet, a second agent enters it differently, then corrects his entry.
    def enter(p, samedi: str):
        p.goto(f"/console/consultations/{cid}/papier")
        p.get_by_label("Bureau de vote", exact=True).fill("labege-mairie")
        p.get_by_label("Numéro de feuille").fill("1")
        p.get_by_label("Bulletins dans l'urne").fill("3")
        p.get_by_label("Blancs").fill("0")
        p.get_by_label("Nuls").fill("0")
        p.get_by_label("Samedi").fill(samedi)
        p.get_by_label("Dimanche").fill("1")
        p.get_by_label("Oui").fill("1")
        p.get_by_label("Non").fill("2")
        p.get_by_role("button", name="Enregistrer ma saisie").click()

    # A voter at the booth is checked in, once.
    page.goto(f"/console/consultations/{cid}")
    page.get_by_role("link", name="Bulletins papier et émargement").click()
    for _ in range(2):
        page.get_by_label("Code du bureau de vote").fill("labege-mairie")
        page.get_by_label("Adresse électronique du votant").fill("au-bureau@example.org")
        page.get_by_role("button", name="Émarger").click()
    expect(page.get_by_role("alert")).to_contain_text("Cette personne a déjà voté")
    expect(page.get_by_label("Adresse électronique du votant")).to_have_value("au-bureau@example.org")

    enter(page, "2")
    expect(page.get_by_role("status")).to_contain_text("en attente de la seconde saisie")
    no_serious_violation(page, "the paper entries")
    operator = token("operator", subject="operator:test")
    data(platform.url, 'mutation { grantRole(email: "agent2@sicoval.example", role: AGENT) { email } }', tok=operator)
    context2, page2 = sign_in(platform, browser, "agent2@sicoval.example", javascript=False)
    enter(page2, "1")
    expect(page2.get_by_role("status")).to_contain_text("discordante")
    row = page2.get_by_role("row").filter(has_text="Discordante")
    expect(row).to_contain_text("Samedi : 2 puis 1")
    enter(page2, "2")
    expect(page2.get_by_role("status")).to_contain_text("concordante")
    context2.close()

    page.goto(f"/console/consultations/{cid}")
    page.get_by_role("button", name="Clore maintenant").click()
    expect(page.get_by_text("Consultation close.")).to_be_visible()
    page.get_by_role("button", name="Publier les résultats").click()
    expect(page.get_by_role("heading", name="État : résultats publiés")).to_be_visible()
    page.goto("/consultations")
    page.get_by_role("link", name="Voir les résultats : Fête du vélo 2027").click()
    expect(page.get_by_text("4 participants")).to_be_visible()  # online 1, at the booth 1, paper sheets 3
    context.close()


def test_an_agent_creates_a_budget_and_brings_a_project_to_the_vote(platform, browser):
    context, page = sign_in(platform, browser, "agent@sicoval.example")
    page.goto("/console/consultations/nouvelle")
    page.get_by_label("Titre", exact=True).fill("Budget des écoles")
    page.get_by_label("Budget participatif", exact=True).check()
    page.locator("#sections").fill("Labège ; 80 000 ; Labège\nEscalquens ; 60 000,50 ; escalquens")
    page.get_by_role("button", name="Enregistrer").click()  # no phases: refused beside the vote's day
    expect(page.locator("#phase-BALLOTING-error")).to_contain_text("date de début obligatoire")
    for i, kind in enumerate(["INFORMING", "ACCEPTING", "REVIEWING", "SELECTING", "VALUATING", "PUBLISHING_PRICES",
                              "BALLOTING", "REVIEWING_BALLOTS", "FINISHED"]):
        page.locator(f"#phase-{kind}").fill((date.today() + timedelta(days=1 + 7 * i)).isoformat())
    page.get_by_role("button", name="Enregistrer").click()
    expect(page.get_by_text("Brouillon enregistré")).to_be_visible()
    cid = page.url.rstrip("/").rsplit("/", 1)[1]
    expect(page.get_by_role("row").filter(has_text="Escalquens")).to_contain_text("60\u202f000,50\u00a0€")
    page.get_by_role("link", name="Modifier la consultation").click()  # the form shows the budget back
    expect(page.locator("#sections")).to_have_value(
        "Labège ; 80\u202f000,00\u00a0€ ; Labège\nEscalquens ; 60\u202f000,50\u00a0€ ; Escalquens")
    page.locator("#sections").fill("Labège ; 90 000 ; Labège\nEscalquens ; 60 000,50 ; escalquens")
    no_serious_violation(page, "a budget's form")
    page.get_by_role("button", name="Enregistrer").click()
    expect(page.get_by_text("Modifications enregistrées.")).to_be_visible()
    expect(page.get_by_role("row").filter(has_text="Labège")).to_contain_text("90\u202f000,00\u00a0€")

    def advance(label: str):
        page.get_by_role("button", name=f"Passer à la phase « {label} »").click()
        expect(page.get_by_text(f"Phase « {label} » commencée.")).to_be_visible()

    page.get_by_role("button", name="Programmer").click()
    expect(page.get_by_text("Consultation programmée.")).to_be_visible()
    advance("information")
    advance("dépôt des projets")
    pid = data(platform.url, "mutation($b: ID!, $p: ProjectInput!) { proposeProject(budgetId: $b, project: $p) "
                             "{ id } }", {"b": cid, "p": {"title": "Cour d'école végétalisée", "headingId": "s1",
                                                          "description": "Des arbres et de l'ombre pour les enfants.",
                                                          "estimatedCostCents": 30_000_00}},
               citizen("auteur-ecole"))["proposeProject"]["id"]
    page.get_by_role("link", name="Projets du budget").click()
    project = page.locator(f"#projet-{pid}")
    project.get_by_role("button", name="Refuser").click()  # without a reason: refused beside it
    expect(page.locator(f"#raison-{pid}-error")).to_contain_text("Raison du refus")
    no_serious_violation(page, "a budget's projects")
    page.locator(f"#projet-{pid}").get_by_role("button", name="Accepter").click()
    expect(page.get_by_text("Projet accepté.")).to_be_visible()
    page.goto(f"/console/consultations/{cid}")
    for label in ("examen des projets", "soutiens", "étude de faisabilité"):
        advance(label)
    page.goto(f"/console/consultations/{cid}/projets")
    page.locator(f"#projet-{pid}").get_by_label("Prix en euros").fill("28 500")
    page.locator(f"#projet-{pid}").get_by_role("button", name="Enregistrer l'étude").click()
    expect(page.get_by_text("Projet étudié : faisable.")).to_be_visible()
    page.goto(f"/console/consultations/{cid}")
    advance("publication des coûts")
    page.goto(f"/console/consultations/{cid}/projets")
    page.locator(f"#projet-{pid}").get_by_role("button", name="Mettre au vote").click()
    expect(page.get_by_text("Projet mis au vote.")).to_be_visible()
    page.goto(f"/console/consultations/{cid}")
    advance("vote")
    expect(page.get_by_role("heading", name="État : ouverte")).to_be_visible()
    context.close()

    voter, vpage = sign_in(platform, browser, "parent@example.org", javascript=False)
    vpage.goto(f"/consultations/{cid}/vote?section=s1")
    vpage.get_by_label(re.compile("^Cour d'école végétalisée")).check()
    vpage.get_by_role("button", name="Voter").click()
    expect(vpage.get_by_role("heading", name="Merci, votre vote est enregistré")).to_be_visible()
    voter.close()


def test_a_citizen_answers_a_survey_without_javascript(platform, browser):
    survey = open_survey(platform.url, title="Enquête sans script")
    form = f"/consultations/{survey['id']}/repondre"
    context, page = sign_in(platform, browser, "sans-script-enquete@example.org", javascript=False)
    page.goto("/consultations")
    page.get_by_role("link", name="Répondre : Enquête sans script").click()
    expect(page).to_have_url(re.compile(form + "$"))
    page.get_by_role("group", name="2. Utilisez-vous les déchèteries du Sicoval ? (obligatoire)").get_by_label(
        "Oui").check()
    page.get_by_role("button", name="Envoyer mes réponses").click()
    # « Lesquelles ? » is asked after « Oui »: its refusal is beside it, and the answer given is kept.
    expect(page.locator("#q-which-error")).to_contain_text("réponse obligatoire")
    expect(page.get_by_role("group", name=re.compile("^3. Lesquelles"))).to_have_attribute("aria-invalid", "true")
    expect(page.get_by_role("group", name=re.compile("^2. Utilisez-vous")).get_by_label("Oui")).to_be_checked()
    page.get_by_role("group", name=re.compile("^3. Lesquelles")).get_by_label("Labège").check()
    page.get_by_role("group", name=re.compile("^4. Quel service")).get_by_label("Piscines").check()
    page.get_by_role("group", name=re.compile("^5. Votre satisfaction")).get_by_label("4", exact=True).check()
    page.get_by_label("Propreté").select_option("1")
    page.get_by_label("Horaires").select_option("1")  # twice the same rank: told beside the ranking
    page.get_by_label("Tarifs").select_option("3")
    page.get_by_label("l'accueil : Bien").check()
    page.get_by_label("l'attente : Moyen").check()
    page.get_by_label("Une idée pour améliorer le service ?").fill("Ouvrir le dimanche matin")
    page.get_by_role("button", name="Envoyer mes réponses").click()
    expect(page.locator("#q-priorites-error")).to_contain_text("Chaque rang une seule fois")
    page.get_by_label("Horaires").select_option("2")
    page.get_by_role("button", name="Envoyer mes réponses").click()
    expect(page.get_by_text("Merci, vos réponses sont enregistrées.")).to_be_visible()
    expect(page.get_by_label("Une idée pour améliorer le service ?")).to_have_value("Ouvrir le dimanche matin")
    page.goto("/compte/participations")
    expect(page.get_by_role("row").filter(has_text="Enquête sans script")).to_contain_text("Réponses envoyées en ligne")
    context.close()

    # The same form with an error, for axe-core (which needs JavaScript to run).
    context, page = sign_in(platform, browser, "axe-enquete@example.org")
    page.goto(form)
    page.get_by_role("button", name="Envoyer mes réponses").click()
    expect(page.locator("#q-uses-error")).to_contain_text("réponse obligatoire")
    no_serious_violation(page, "a survey's form with an error")
    small(page, "a survey's form")
    context.close()


def test_an_agent_imports_a_panel(platform, browser):
    context, page = sign_in(platform, browser, "agent@sicoval.example")
    page.goto("/console/consultations/nouvelle")
    page.get_by_label("Titre", exact=True).fill("Panel citoyen des mobilités")
    page.get_by_label("Un panel d'habitants (liste importée)").check()
    page.get_by_role("button", name="Enregistrer").click()
    expect(page.get_by_text("Brouillon enregistré")).to_be_visible()
    page.get_by_label("Adresses électroniques").fill("une@example.org, deux@example.org\npas-une-adresse")
    no_serious_violation(page, "a panel's consultation in the console")
    page.get_by_role("button", name="Importer les adresses").click()
    expect(page.get_by_role("status")).to_contain_text("Panel : 2 membres (2 ajoutés, 0 déjà membre, 0 retiré). "
                                                       "À corriger : pas-une-adresse.")
    context.close()
