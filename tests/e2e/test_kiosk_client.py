"""The kiosk client at /kiosk in headless Chromium: an online vote is counted; offline, 50 presses wait in
IndexedDB across a reload and all arrive exactly once when the network returns; the follow-up question after
a negative vote; axe-core finds no serious or critical violation."""
import uuid
from datetime import datetime, timedelta, timezone

import pytest
from axe_playwright_python.sync_playwright import Axe

from tests.support import Platform, token, wait_until

AGENT = token("agent", subject="agent:test")


@pytest.fixture(scope="module")
def platform(mongo, broker):
    mongo.drop_all()
    p = Platform(mongo, broker)
    p.service("satisfaction")
    p.service("notification")  # the revocation list: without it, the gateway refuses every token (fail closed)
    p.gateway()
    yield p
    p.stop()


def gql(platform, query, variables=None, tok=AGENT):
    return platform.graphql_data(query, variables, tok)


def provision(platform, **kiosk):
    site = gql(platform, "mutation($s: SiteInput!) { saveSite(site: $s) { id } }", {"s": {
        "name": f"Accueil {uuid.uuid4().hex[:6]}", "commune": "labege", "competence": "Accueil"}})["saveSite"]
    creds = gql(platform, "mutation($k: KioskInput!) { registerKiosk(kiosk: $k) { provisioningUrl kiosk { id } } }",
                {"k": {"siteId": site["id"], "name": "Borne de test", "repeatSeconds": 0, **kiosk}})["registerKiosk"]
    return site["id"], creds["kiosk"]["id"], creds["provisioningUrl"]


def counted(platform, site_id):
    now = datetime.now(timezone.utc)
    data = gql(platform, "query($s: ID, $f: DateTime!, $t: DateTime!) { satisfaction(siteId: $s, from: $f, to: $t) "
                         "{ total { total counts } } }",
               {"s": site_id, "f": (now - timedelta(days=2)).isoformat(), "t": (now + timedelta(days=2)).isoformat()})
    return data["satisfaction"]["total"]


def open_kiosk(browser, url):
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    page = context.new_page()
    page.goto(url.replace("/kiosk#", "/kiosk?thanks=50#"))
    page.wait_for_selector("button.rate")
    page.wait_for_function("navigator.serviceWorker && navigator.serviceWorker.controller !== null", timeout=15000)
    return context, page


def test_online_vote_then_fifty_offline_votes_across_a_reload_arrive_exactly_once(platform, browser, mongo):
    site_id, kiosk_id, url = provision(platform)
    context, page = open_kiosk(browser, url)
    assert "#token=" not in page.url, "the token leaves the address bar once stored"
    page.get_by_role("button", name="Très satisfait").click()
    wait_until(lambda: counted(platform, site_id)["total"] == 1, 20, 0.2, "the online vote counted")

    votes = mongo.client().parvis_satisfaction.votes
    context.set_offline(True)
    for _ in range(50):
        page.get_by_role("button", name="Satisfait", exact=True).click()
    wait_until(lambda: page.evaluate("window.parvisKiosk.queueLength()") == 50, 10, 0.1, "50 votes queued")
    page.reload()  # offline: the service worker serves the app; the queue is in IndexedDB
    page.wait_for_selector("button.rate")
    assert page.evaluate("window.parvisKiosk.queueLength()") == 50
    assert votes.count_documents({"kiosk_id": kiosk_id}) == 1, "nothing left while offline"
    assert page.get_by_text("hors ligne").count() == 0 and page.get_by_text("erreur").count() == 0

    context.set_offline(False)
    page.evaluate("window.dispatchEvent(new Event('online'))")
    wait_until(lambda: page.evaluate("window.parvisKiosk.queueLength()") == 0, 60, 0.2, "the queue emptied")
    wait_until(lambda: counted(platform, site_id)["total"] == 51, 20, 0.2, "51 votes counted")
    assert votes.count_documents({"kiosk_id": kiosk_id}) == 51
    assert counted(platform, site_id)["counts"][:2] == [1, 50]
    kiosk = gql(platform, "query($s: ID) { kiosks(siteId: $s) { lastSeenAt appVersion } }", {"s": site_id})["kiosks"][0]
    assert kiosk["lastSeenAt"] is not None and kiosk["appVersion"] == "1.0.0", "the kiosk sent its heartbeat"
    context.close()


def test_a_negative_vote_asks_the_follow_up_question(platform, browser, mongo):
    site_id, kiosk_id, url = provision(platform, followUp={"question": "Qu'est-ce qui n'est pas allé ?",
                                                           "choices": ["L'attente", "L'accueil"]})
    context, page = open_kiosk(browser, url)
    wait_until(lambda: page.evaluate("JSON.parse(localStorage.getItem('parvis.kiosk.config') || 'null')") is not None,
               10, 0.1, "the settings fetched by the heartbeat")
    page.get_by_role("button", name="Très insatisfait").click()
    page.get_by_role("button", name="L'attente").click()
    votes = mongo.client().parvis_satisfaction.votes
    wait_until(lambda: votes.find_one({"kiosk_id": kiosk_id}), 20, 0.2, "the vote stored")
    assert votes.find_one({"kiosk_id": kiosk_id})["follow_up"] == "L'attente"
    context.close()


def test_the_kiosk_has_no_serious_accessibility_violation(platform, browser):
    _, _, url = provision(platform, followUp={"question": "Qu'est-ce qui n'est pas allé ?", "choices": ["L'attente"]})
    context, page = open_kiosk(browser, url)
    axe = Axe()
    for screen in ("vote", "follow-up"):
        if screen == "follow-up":
            page.wait_for_function("localStorage.getItem('parvis.kiosk.config') !== null")
            page.get_by_role("button", name="Très insatisfait").click()
            page.wait_for_selector("#follow-up:not([hidden])")
        violations = axe.run(page).response["violations"]
        bad = [(v["id"], v["impact"]) for v in violations if v["impact"] in ("serious", "critical")]
        assert bad == [], f"{screen}: {bad}"
    context.close()


def test_the_smileys_are_usable_with_the_keyboard(platform, browser, mongo):
    _, kiosk_id, url = provision(platform)
    context, page = open_kiosk(browser, url)
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.getAttribute('data-rating')") == "1"
    page.keyboard.press("Tab")
    page.keyboard.press("Enter")  # "Satisfait"
    votes = mongo.client().parvis_satisfaction.votes
    wait_until(lambda: votes.find_one({"kiosk_id": kiosk_id}), 20, 0.2, "the vote stored")
    assert votes.find_one({"kiosk_id": kiosk_id})["rating"] == 2
    context.close()
