"""axe-core on every page of the web, for every role (signed out, citizen, organiser, agent, operator) against the real
stack (`parvis up`: demo accounts, events, kiosks, the demo survey and budget, the demo bills): the pages are read from the web's own
registry (`gateway.web.core.PAGES`), so a new page cannot be forgotten (the test fails until it says how to reach it);
no serious or critical violation, each page's HTML under 100 KB."""
import re

import pytest
from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import expect

from gateway.web import _load_pages, core
from tests.e2e.test_web_pages import AGENT, ASSOCIATION, LIMITS, OPERATOR, day_in, propose, sign_in
from tests.support import Platform, token

CITIZEN = "habitant@example.org"  # the demo citizen: his bills are in the demo data
ROLES = {None: "public", CITIZEN: "citizen", ASSOCIATION: "organizer", AGENT: "agent", OPERATOR: "operator"}
# How to reach each page that needs more than its path: its parameters, from the demo data or made by the test.
PARAMS = {
    "/console/notifications/modeles/{name}": [{"name": "login_code"}],
    "/console/moderation/{id}": [{"id": "{own}"}],
    "/console/bornes/{id}/{action:str}": [{"id": "{kiosk}", "action": "nouveau-lien"},
                                          {"id": "{kiosk}", "action": "revoquer"}],
    "/consultations/{id}/vote": [{"id": "{budget}"}, {"id": "{budget}?section=labege"}],
    "/consultations/{id}/recu": [{"id": "{budget}"}],
    "/consultations/{id}/repondre": [{"id": "{survey}"}],
    "/consultations/{id}/projets": [{"id": "{budget}"}],
    "/consultations/{id}/proposer": [{"id": "{budget}"}],
    "/consultations/{id}/verifier": [{"id": "{budget}"}, {"id": "{survey}?code=ABCD-2345-WXYZ"}],
    "/console/consultations/{id}/modifier": [{"id": "{survey}"}, {"id": "{budget}"}],
    "/console/consultations/{id}": [{"id": "{survey}"}, {"id": "{budget}"}],
    "/console/consultations/{id}/papier": [{"id": "{survey}"}, {"id": "{budget}"}],
    "/console/consultations/{id}/projets": [{"id": "{budget}"}],
    "/console/consultations/{id}/questions/{qid}": [{"id": "{survey}", "qid": "{question}"}],
    "/organisation/evenements/{id}/modifier": [{"id": "{own}"}],
    "/pay/{id}": [{"id": "{payment}"}],
    "/pay/{id}/retour": [{"id": "{payment}"}],
    "/console/paiements/{id}": [{"id": "{payment}"}],
    "/organisation/evenements/{id}": [{"id": "{own}"}],
    "/organisation/evenements/{id}/{action:str}": [{"id": "{own}", "action": a}
                                                   for a in ("retirer", "annuler", "reporter")],
}
# Pages of the gateway's other routes that a person reaches from the web's pages.
# A page shown with another status than 200: a bill's return page before any payment says that none began.
STATUS = {"/pay/{payment}/retour": 409}
OTHER_PAGES = ["/agenda/events/{event}", "/consultations/{survey}", "/consultations/{budget}"]


@pytest.fixture(scope="module")
def platform(mongo, broker):
    mongo.drop_all()
    p = Platform(mongo, broker, **LIMITS)
    p.up("agenda", "satisfaction", "consultation", "payment_link", "notification", "gateway")
    yield p
    p.stop_reporting_crashes()


def get_pages() -> list[core.Page]:
    _load_pages()
    return [p for p in core.PAGES if "GET" in p.methods]


def urls(spec: core.Page) -> list[str]:
    if "{" not in spec.path:
        return [spec.path]
    assert spec.path in PARAMS, f"{spec.path}: say in PARAMS how the axe test reaches this page"
    found = []
    for params in PARAMS[spec.path]:
        found.append(re.sub(r"\{(\w+)(?::\w+)?\}", lambda m: params[m.group(1)], spec.path))
    return found


def may_see(spec: core.Page, role: str) -> bool:
    return spec.roles is None or role in spec.roles


def test_every_page_is_listed():
    for spec in get_pages():
        urls(spec)


def serious(page) -> list:
    violations = Axe().run(page).response["violations"]
    return [(v["id"], v["impact"], [n["target"] for n in v["nodes"]][:3]) for v in violations
            if v["impact"] in ("serious", "critical")]


def test_every_page_of_every_role_passes_axe_and_is_small(platform, browser):
    known = {"event": platform.graphql_data("{ events(first: 1) { edges { node { id } } } }")
             ["events"]["edges"][0]["node"]["id"]}
    for c in platform.graphql_data("{ consultations(first: 20) { edges { node { id kind title } } } }")[
            "consultations"]["edges"]:
        known[{"SURVEY": "survey", "BUDGET": "budget"}.get(c["node"]["kind"], "other")] = c["node"]["id"]
    known["payment"] = platform.graphql_data("{ payments(first: 1) { edges { node { id } } } }", token=token("agent"))[
        "payments"]["edges"][0]["node"]["id"]
    known["question"] = platform.graphql_data("query($id: ID!) { consultation(id: $id) { questions { id } } }",
                                              {"id": known["survey"]})["consultation"]["questions"][-1]["id"]
    problems, sizes, seen = [], {}, set()
    for who, role in ROLES.items():
        context, page = sign_in(platform, browser, who) if who else (browser.new_context(base_url=platform.url), None)
        page = page or context.new_page()
        if role == "organizer":
            known["own"] = propose(page, "Concert de l'harmonie", day_in(100))
            page.get_by_role("button", name="Soumettre à la modération").click()
            expect(page.get_by_text("Événement soumis")).to_be_visible()
        if role == "citizen":  # a vote, so that its receipt page is shown
            page.goto(f"/consultations/{known['budget']}/vote?section=labege")
            page.get_by_label(re.compile("^Boîtes à livres")).check()
            page.get_by_role("button", name="Voter").click()
            expect(page.get_by_role("heading", name="Merci, votre vote est enregistré")).to_be_visible()
        if role == "agent":
            page.goto("/console/bornes")
            known["kiosk"] = page.locator('a[href$="/nouveau-lien"]').first.get_attribute("href").split("/")[3]
        targets = [u for spec in get_pages() if may_see(spec, role) for u in urls(spec)] + OTHER_PAGES
        for target in targets:
            url = re.sub(r"\{(\w+)\}", lambda m: known.get(m.group(1), m.group(0)), target)
            if "{" in url:  # a parameter not made yet (the organiser's own event is made as the organiser)
                continue
            response = page.goto(url)
            assert response.status == STATUS.get(target, 200), (role, url, response.status)
            sizes[(role, url)] = len(response.body())
            bad = serious(page)
            if bad:
                problems.append((role, url, bad))
            seen.add(target)
        context.close()
    assert problems == []
    assert max(sizes.values()) < 100_000, sorted(sizes.items(), key=lambda kv: -kv[1])[:3]
    assert not {u for spec in get_pages() for u in urls(spec)} - seen, "a page seen by no role"
