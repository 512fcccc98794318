"""A participatory budget's pages in Debian's Chromium against the real stack. Without JavaScript: a citizen proposes
a project while proposals are open (his mistakes told beside their fields; his project shown to him while it waits
for moderation), another supports it once supports are open (once only). With axe-core: once the results are
published, a voter checks his receipt code from the results page (a wrong code refused beside the field); two agents
enter a paper sheet ballot by ballot (a wrong project number told with its line), which counts when they agree. (The
proposal and support pages are checked by axe in test_web_axe.py: axe cannot run where JavaScript is off.)"""
import re

from playwright.sync_api import expect

from tests.consultation_flows import ADVANCE, AGENT2, CAST, CREATE, act, budget_input, budget_to_ballot, citizen, data
from tests.e2e.test_consultation_pages import no_serious_violation
from tests.e2e.test_consultation_web import platform  # noqa: F401 - a fixture
from tests.e2e.test_web_pages import AGENT, sign_in

HEADINGS = [{"id": "labege", "name": "Labège", "communes": ["labege"], "amountCents": 100_000_00},
            {"id": "escalquens", "name": "Escalquens", "communes": ["escalquens"], "amountCents": 80_000_00}]


def test_a_citizen_proposes_a_project_and_another_supports_it(platform, browser):
    url = platform.url
    bid = data(url, CREATE, {"c": budget_input(HEADINGS, title="Budget des quartiers")})["createConsultation"]["id"]
    act(url, "scheduleConsultation", bid)
    for to in ("INFORMING", "ACCEPTING"):
        data(url, ADVANCE, {"b": bid, "to": to})

    context, page = sign_in(platform, browser, "porteuse-de-projet@example.org", javascript=False)
    page.goto("/consultations")
    page.get_by_role("link", name="Proposer un projet : Budget des quartiers").click()
    page.get_by_role("link", name="Proposer un projet", exact=True).click()
    expect(page.get_by_role("heading", name="Proposer un projet")).to_be_visible()
    page.get_by_label("Titre du projet").fill("Bancs au bord du lac")
    page.get_by_label("Coût estimé, en euros").fill("douze mille")
    page.get_by_role("button", name="Déposer le projet").click()
    expect(page.locator("#cout-error")).to_contain_text("Indiquez le coût estimé en euros")
    expect(page.locator("#section-error")).to_contain_text("Choisissez la section")
    assert page.title().startswith("Erreur")
    page.get_by_label("Section (la commune du projet)").select_option("labege")
    page.get_by_label("Coût estimé, en euros").fill("250 000")
    page.get_by_role("button", name="Déposer le projet").click()
    # The service's refusals come beside their field too: a description is needed, the cost is over the section's.
    expect(page.locator("#description-error")).to_contain_text("Description")
    page.get_by_label("Description").fill("Six bancs à l'ombre autour du lac, pour les promeneurs.")
    page.get_by_role("button", name="Déposer le projet").click()
    expect(page.locator("#cout-error")).to_contain_text("plus que le budget de la section")
    page.get_by_label("Coût estimé, en euros").fill("12 000,50")
    page.get_by_role("button", name="Déposer le projet").click()
    expect(page.get_by_text("Votre projet est déposé.")).to_be_visible()
    mine = page.locator("li", has_text="Bancs au bord du lac")
    expect(mine).to_contain_text("Votre projet : en attente de modération")
    expect(mine).to_contain_text("Coût estimé 12\u202f000,50\u00a0€")

    pid = data(url, "query($b: ID!) { projects(budgetId: $b, filter: {moderation: [SUBMITTED]}) { edges { node "
                    "{ id } } } }", {"b": bid})["projects"]["edges"][0]["node"]["id"]
    data(url, "mutation($id: ID!) { moderateProject(id: $id, decision: APPROVE) { moderation } }", {"id": pid})
    for to in ("REVIEWING", "SELECTING"):
        data(url, ADVANCE, {"b": bid, "to": to})

    other, opage = sign_in(platform, browser, "soutien@example.org", javascript=False)
    opage.goto("/consultations")
    opage.get_by_role("link", name="Soutenir des projets : Budget des quartiers").click()
    project = opage.locator(f"#projet-{pid}")
    expect(project).to_contain_text("0 soutien")
    opage.get_by_role("button", name="Soutenir le projet « Bancs au bord du lac »").click()
    expect(opage.get_by_text("Votre soutien au projet « Bancs au bord du lac » est enregistré.")).to_be_visible()
    expect(project).to_contain_text("1 soutien")
    opage.get_by_role("button", name="Soutenir le projet « Bancs au bord du lac »").click()
    expect(opage.get_by_role("alert")).to_contain_text("Vous soutenez déjà ce projet.")
    expect(project).to_contain_text("1 soutien")
    # Signed out, the projects are shown with the way to sign in, and no button.
    public = browser.new_context(base_url=url, java_script_enabled=False)
    ppage = public.new_page()
    ppage.goto(f"/consultations/{bid}/projets")
    expect(ppage.get_by_role("link", name="Connectez-vous pour soutenir un projet")).to_be_visible()
    expect(ppage.get_by_role("button", name=re.compile("^Soutenir"))).to_have_count(0)
    for c in (context, other, public):
        c.close()


def test_a_voter_checks_his_receipt_from_the_results(platform, browser):
    url = platform.url
    bid, ids = budget_to_ballot(url, [{"title": "Jardins partagés", "headingId": "labege", "cost": 45_000_00},
                                      {"title": "Rucher communal", "headingId": "escalquens", "cost": 9_000_00}])
    code = data(url, CAST, {"b": bid, "h": [{"headingId": "labege", "projectIds": [ids[0]]}]},
                citizen("votant-recu"))["castBudgetBallot"]["receiptCode"]
    public = browser.new_context(base_url=url)  # a public page: axe needs JavaScript, the page does not
    page = public.new_page()
    page.goto(f"/consultations/{bid}/verifier?code={code}")  # before the results: said beside the field
    expect(page.locator("#code-error")).to_be_visible()
    data(url, ADVANCE, {"b": bid, "to": "REVIEWING_BALLOTS"})
    act(url, "publishConsultationResults", bid)

    page.goto(f"/consultations/{bid}/results")
    page.get_by_role("link", name="Vérifier un reçu de vote").click()
    no_serious_violation(page, "the receipt check")
    page.get_by_label("Code de reçu").fill("ZZZZ-ZZZZ")
    page.get_by_role("button", name="Vérifier").click()
    expect(page.locator("#code-error")).to_contain_text("Code de reçu invalide")
    assert page.get_by_label("Code de reçu").get_attribute("aria-invalid") == "true"
    no_serious_violation(page, "the receipt check with its error")
    page.get_by_label("Code de reçu").fill(code.lower())
    page.get_by_role("button", name="Vérifier").click()
    expect(page.get_by_role("status")).to_contain_text("Ce bulletin a été compté")
    expect(page.get_by_role("status").get_by_role("listitem")).to_have_text(["Jardins partagés"])
    no_serious_violation(page, "the receipt checked")
    public.close()


def test_two_agents_enter_a_sheet_ballot_by_ballot(platform, browser):
    url = platform.url
    bid, ids = budget_to_ballot(url, [{"title": "Jardins partagés", "headingId": "labege", "cost": 45_000_00},
                                      {"title": "Aire de jeux", "headingId": "labege", "cost": 30_000_00},
                                      {"title": "Rucher communal", "headingId": "escalquens", "cost": 9_000_00}])
    context, page = sign_in(platform, browser, AGENT)
    page.goto(f"/console/consultations/{bid}/papier")
    numbers = page.get_by_role("table", name="Numéros des projets")
    expect(numbers.get_by_role("row", name="2 Aire de jeux")).to_be_visible()
    no_serious_violation(page, "the paper entry of a budget")
    page.get_by_label("Bureau de vote", exact=True).first.fill("labege-mairie")
    page.get_by_label("Numéro de feuille", exact=True).first.fill("B1")
    page.get_by_label("Bulletins, un par ligne").fill("1, 2\nblanc\n1, 9")
    page.get_by_role("button", name="Enregistrer les bulletins").click()
    expect(page.locator("#b_bulletins-error")).to_contain_text("ligne 3 : « 9 » n'est pas un numéro de projet")
    expect(page.get_by_label("Bulletins, un par ligne")).to_have_value("1, 2\nblanc\n1, 9")  # kept to correct
    no_serious_violation(page, "the paper entry with its error")
    page.get_by_label("Bulletins, un par ligne").fill("1, 2\nblanc\n3\nnul")
    page.get_by_role("button", name="Enregistrer les bulletins").click()
    expect(page.get_by_text("Feuille B1 du bureau labege-mairie : 4 bulletins saisis, en attente de la seconde "
                            "saisie.")).to_be_visible()
    # The second agent reads the same sheet: the entries agree, the sheet counts.
    ballots = [{"headings": [{"headingId": "labege", "projectIds": ids[:2]}]}, {"blank": True},
               {"headings": [{"headingId": "escalquens", "projectIds": [ids[2]]}]}, {"null": True}]
    status = data(url, "mutation($c: ID!, $b: [PaperBallotInput!]!) { enterPaperBallots(consultationId: $c, "
                       "boothId: \"labege-mairie\", sheetRef: \"B1\", ballots: $b) { status } }",
                  {"c": bid, "b": ballots}, AGENT2)["enterPaperBallots"]["status"]
    assert status == "MATCHED"
    page.reload()
    expect(page.get_by_role("row", name=re.compile("labege-mairie B1 Concordante"))).to_be_visible()
    context.close()
