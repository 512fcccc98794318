"""The payer's pages in headless Chromium, from the link to the receipt: /pay/<id> (the bill, « Payer »), PayFiP's
simulated page, the return page showing the result read back from the provider and the receipt; a card declined on
the sandbox card page, the return page saying so. axe-core finds no serious or critical violation on our pages."""
import pytest
from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import expect

from tests.payment_flows import bill, platform_with_simulator, regies
from tests.support import token

CREATE = """mutation($i: PaymentLinkInput!) { createPaymentLink(input: $i) { payment { id } } }"""


def create(stack, regie_id: str, reference: str) -> dict:
    """Through GraphQL: Playwright's loop runs in this thread, so no asyncio RPC client here."""
    b = bill(regie_id, reference=reference)
    body = {"regieId": b["regie_id"], **{k: v for k, v in b.items() if k != "regie_id"}}
    return stack.graphql_data(CREATE, {"i": body}, token("agent", subject="agent:web"))["createPaymentLink"]["payment"]


@pytest.fixture(scope="module")
def stack(mongo, broker):
    p, sim_proc, _ = platform_with_simulator(mongo, broker)
    p.service("payment_link")
    p.service("notification")  # the revocation list: without it, the gateway refuses every token
    p.gateway()
    regies(p)
    yield p
    p.stop()
    sim_proc.stop()


def pay_by_card(page, stack, payment: dict, number: str) -> None:
    """From /pay/<id> to the sandbox card page, where `number` is typed and « Payer » pressed."""
    page.goto(f"{stack.url}/pay/{payment['id']}")
    page.get_by_role("button", name="Payer 42,50").click()
    page.wait_for_url("**/card/pay/**", timeout=15_000)
    page.get_by_label("Numéro de carte").fill(number)
    page.get_by_role("button", name="Payer 42,50").click()


def no_serious_violation(page, what: str) -> None:
    violations = Axe().run(page).response["violations"]
    bad = [(v["id"], v["impact"], [n["target"] for n in v["nodes"]][:3]) for v in violations
           if v["impact"] in ("serious", "critical")]
    assert bad == [], f"{what}: {bad}"


def test_a_resident_pays_a_bill_on_payfip_from_the_link_to_the_receipt(stack, browser):
    payment = create(stack, "regie-cantine", "WEB2026001")
    page = browser.new_context().new_page()
    page.goto(f"{stack.url}/pay/{payment['id']}")
    expect(page.get_by_role("heading", level=1)).to_have_text("Payer votre facture")
    expect(page.locator("dl.facts")).to_contain_text("WEB2026001")
    expect(page.locator("dl.facts")).to_contain_text("42,50")
    no_serious_violation(page, "the payment page")

    page.get_by_role("button", name="Payer 42,50").click()
    page.wait_for_url("**/tpa/paiementws.web**", timeout=15_000)  # PayFiP's (simulated) page
    page.get_by_role("button", name="Payer par carte").click()

    expect(page.get_by_role("heading", level=1)).to_have_text("Paiement effectué", timeout=15_000)
    assert page.url == f"{stack.url}/pay/{payment['id']}/retour"
    receipt = page.locator("dl.receipt")
    expect(receipt).to_contain_text("WEB2026001")
    expect(receipt).to_contain_text(payment["id"])
    no_serious_violation(page, "the receipt")

    page.goto(f"{stack.url}/pay/{payment['id']}")  # the link again: already paid, no « Payer »
    expect(page.get_by_text("Cette facture est déjà payée")).to_be_visible()
    assert page.get_by_role("button", name="Payer 42,50").count() == 0


def test_a_declined_card_shows_the_refusal(stack, browser):
    payment = create(stack, "regie-eau", "WEB2026002")
    page = browser.new_context().new_page()
    pay_by_card(page, stack, payment, "4000 0000 0000 0002")
    expect(page.get_by_role("heading", level=1)).to_have_text("Paiement non effectué", timeout=15_000)
    expect(page.get_by_role("status")).to_contain_text("refusé")
    no_serious_violation(page, "the refusal")


def signed_in(browser, stack, role: str, **claims):
    """A browser context whose session cookie is a token of `role` (as signing in by code would set it)."""
    context = browser.new_context()
    context.add_cookies([{"name": "parvis_session", "value": token(role, **claims), "url": stack.url}])
    return context.new_page()


def test_an_agent_refunds_and_reconciles_in_the_console_and_a_citizen_sees_his_payments(stack, browser):
    from services.common.identity import citizen_id
    from tests.support import TEST_SECRET

    payment = create(stack, "regie-eau", "WEB2026003")
    page = browser.new_context().new_page()
    pay_by_card(page, stack, payment, "4444 3333 2222 1111")
    expect(page.get_by_role("heading", level=1)).to_have_text("Paiement effectué", timeout=15_000)

    agent = signed_in(browser, stack, "agent", subject="agent:console")
    agent.goto(f"{stack.url}/console/paiements?regie=regie-eau")
    expect(agent.get_by_role("heading", level=1)).to_have_text("Paiements")
    no_serious_violation(agent, "the console's payments")
    agent.get_by_role("link", name="WEB2026003").click()
    expect(agent.get_by_role("heading", level=1)).to_have_text("Paiement WEB2026003")
    no_serious_violation(agent, "a payment in the console")
    agent.get_by_label("Montant à rembourser (euros)").fill("10,00")
    agent.get_by_role("button", name="Rembourser").click()
    expect(agent.get_by_role("status")).to_contain_text("Remboursement enregistré")
    expect(agent.locator("dl.facts")).to_contain_text("32,50")

    agent.goto(f"{stack.url}/console/paiements/rapprochement?regie=regie-eau")
    expect(agent.locator("table").first).to_contain_text("42,50")
    no_serious_violation(agent, "the day's reconciliation")
    href = agent.get_by_role("link", name="Télécharger le fichier CSV pour le comptable").get_attribute("href")
    csv = agent.request.get(f"{stack.url}{href}")  # the session's cookie; no download artifact left to collect
    assert csv.headers["content-type"].startswith("text/csv") and "WEB2026003" in csv.text()

    citizen = signed_in(browser, stack, "citizen", subject=citizen_id(TEST_SECRET, "jean.dupont@example.fr"))
    citizen.goto(f"{stack.url}/compte/paiements")
    expect(citizen.get_by_role("heading", level=1)).to_have_text("Mes paiements")
    expect(citizen.locator("table")).to_contain_text("WEB2026003")
    no_serious_violation(citizen, "a citizen's payments")


def test_an_agent_adds_a_regie_in_the_console(stack, browser):
    agent = signed_in(browser, stack, "agent", subject="agent:regies")
    agent.goto(f"{stack.url}/console/regies")
    expect(agent.get_by_role("heading", level=1)).to_have_text("Régies")
    agent.get_by_label("Nom de la régie").fill("Régie des piscines")
    agent.get_by_label("Numéro client PayFiP (numcli)").fill("12AB")
    agent.get_by_role("button", name="Enregistrer la régie").click()
    expect(agent.locator(".error-summary, [role=alert]").first).to_contain_text("6 chiffres")
    no_serious_violation(agent, "the régie form with its error")
    agent.get_by_label("Numéro client PayFiP (numcli)").fill("778899")
    agent.get_by_label("Services facturés").fill("piscine, école de natation")
    agent.get_by_role("button", name="Enregistrer la régie").click()
    expect(agent.get_by_role("status")).to_contain_text("Régie des piscines")
    expect(agent.locator("table")).to_contain_text("piscine, école de natation")
    no_serious_violation(agent, "the régies")
