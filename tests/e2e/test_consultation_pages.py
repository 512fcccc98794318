"""The consultation pages in headless Chromium: a citizen answers a survey on its public page (a question appears when
its condition holds; a refusal is shown next to the question it names; the answers are counted), the printable form
of a survey and the paper ballot of a budget (every question type, the projects by heading with their prices), the
results page and its open data; axe-core finds no serious or critical violation on any of them."""
import pytest
from axe_playwright_python.sync_playwright import Axe

from tests.consultation_flows import (RESULTS, act, budget_to_ballot, citizen, data, open_survey)
from tests.support import Platform, wait_until

PROJECTS = [{"title": "Jardins partagés", "headingId": "labege", "cost": 45_000_00},
            {"title": "Aire de jeux inclusive", "headingId": "labege", "cost": 30_000_50},
            {"title": "Fontaine au stade", "headingId": "escalquens", "cost": 15_000_00}]


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


def no_serious_violation(page, what: str) -> None:
    violations = Axe().run(page).response["violations"]
    bad = [(v["id"], v["impact"], [n["target"] for n in v["nodes"]][:3]) for v in violations
           if v["impact"] in ("serious", "critical")]
    assert bad == [], f"{what}: {bad}"


def test_a_citizen_answers_a_survey_in_the_browser(platform, browser):
    survey = open_survey(platform.url)
    context = browser.new_context()
    page = context.new_page()
    page.goto(f"{platform.url}/consultations/{survey['id']}#token={citizen('in-chromium')}")
    page.wait_for_selector("#answer-form:not([hidden])")
    assert "#token=" not in page.url
    no_serious_violation(page, "the survey's page")

    which = page.get_by_role("group", name="3. Lesquelles ? (obligatoire)")
    assert which.is_hidden(), "shown only after « Oui »"
    page.get_by_role("group", name="2. Utilisez-vous les déchèteries du Sicoval ? (obligatoire)").get_by_label(
        "Oui").check()
    assert which.is_visible()
    which.get_by_label("Labège").check()
    page.get_by_role("group", name="4. Quel service utilisez-vous le plus ? (obligatoire)").get_by_label(
        "Piscines").check()
    # Sent without the mandatory rating and grid: refused, the message beside the first question missing.
    page.get_by_role("button", name="Envoyer mes réponses").click()
    error = page.locator("#q-note-error")
    error.wait_for(state="visible")
    assert error.inner_text() == "Question 5 (« Votre satisfaction ») : réponse obligatoire."
    assert page.evaluate("document.activeElement.name") == "q-note"
    no_serious_violation(page, "the survey's page with an error")

    page.get_by_role("group", name="5. Votre satisfaction (obligatoire)").get_by_label("4", exact=True).check()
    page.get_by_label("Propreté").select_option("1")
    page.get_by_label("Horaires").select_option("2")
    page.get_by_label("Tarifs").select_option("3")
    page.get_by_label("l'accueil : Bien").check()
    page.get_by_label("l'attente : Moyen").check()
    page.get_by_label("Une idée pour améliorer le service ?").fill("Ouvrir le dimanche matin")
    page.get_by_role("button", name="Envoyer mes réponses").click()
    page.get_by_role("heading", name="Merci, vos réponses sont enregistrées").wait_for()
    assert "jusqu'à la clôture" in page.locator("#done-text").inner_text()

    act(platform.url, "closeConsultation", survey["id"])
    act(platform.url, "publishConsultationResults", survey["id"])
    r = data(platform.url, RESULTS, {"id": survey["id"]}, None)["consultationResults"]
    by_id = {q["questionId"]: q for q in r["questions"]}
    assert {o["optionId"]: o["count"] for o in by_id["service"]["options"]}["piscine"] == 1
    assert by_id["priorites"]["ranking"][0]["optionId"] == "proprete"
    assert by_id["note"]["rating"]["mean"] == 4.0
    page.goto(f"{platform.url}/consultations/{survey['id']}/results")
    assert page.get_by_role("heading", level=1).inner_text().startswith("Résultats")
    assert page.get_by_role("link", name="CSV").count() == 1
    no_serious_violation(page, "the results page")
    csv_text = page.request.get(f"{platform.url}/consultations/{survey['id']}/results.csv").text()
    assert "piscine" in csv_text.splitlines()[0] or any(",piscine," in line for line in csv_text.splitlines())
    context.close()


def test_the_printable_forms(platform, browser):
    survey = open_survey(platform.url, title="Enquête papier")
    bid, ids = budget_to_ballot(platform.url, PROJECTS)
    context = browser.new_context()
    page = context.new_page()
    page.goto(f"{platform.url}/consultations/{survey['id']}/print")
    assert page.evaluate("document.documentElement.lang") == "fr"
    assert page.get_by_role("heading", name="Vos habitudes").count() == 1, "a SECTION is a heading"
    for label in ("2. Utilisez-vous les déchèteries du Sicoval ? (obligatoire)", "10. Votre commune",
                  "11. Une idée pour améliorer le service ?"):
        assert page.get_by_role("group", name=label).count() == 1, label
    assert page.get_by_text("À remplir seulement si vous avez répondu « Oui » à la question 2.").count() == 1
    assert page.get_by_role("table").count() == 2, "both grids"
    assert page.get_by_text("Numérotez de 1 (préféré) à 3, chaque numéro une fois.").count() == 1
    assert page.get_by_role("heading", name="Cadre réservé au bureau de vote").count() == 1
    page.emulate_media(media="print")
    assert page.locator("script").count() == 0, "the paper form needs no script"
    no_serious_violation(page, "the printable survey")

    page.goto(f"{platform.url}/consultations/{bid}/print")
    assert page.get_by_role("group", name="Labège — 100 000 € (labege)").count() == 1
    labege = page.get_by_role("group", name="Labège — 100 000 € (labege)")
    assert labege.get_by_role("row").count() == 3  # header + 2 projects
    assert labege.get_by_text("30 000,50 €").count() == 1
    assert labege.get_by_text("leur total ne doit pas dépasser 100 000 €").count() == 1
    assert page.get_by_label("Fontaine au stade").count() == 1
    no_serious_violation(page, "the printable budget ballot")
    context.close()
