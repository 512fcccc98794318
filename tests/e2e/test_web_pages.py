"""The web in Debian's Chromium against the real stack (`parvis up`: demo accounts, kiosks, events): an association
proposes an event, an agent approves it (and a later revision, side by side), a citizen subscribed to the commune
reads it in "Mes notifications", with JavaScript off; an agent registers a kiosk, its QR code decodes to the
provisioning link, the kiosk opened from it votes and the satisfaction page shows the votes; axe-core on every
page of every role; CSRF refusals, the session cookie's flags, /graphql deaf to the cookie, a role taken away ending
the session; the size of pages and of the site's JavaScript."""
import email
import email.policy
import re
from datetime import date, timedelta
from pathlib import Path

import httpx
import pytest
from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import expect

from tests.support import Platform, token, wait_until

expect.set_options(timeout=15_000)  # a page after a POST and its redirect, on a loaded machine

ASSOCIATION = "contact@comite-des-fetes-de-labege.example"
AGENT = "agent@sicoval.example"
OPERATOR = "operateur@sicoval.example"
LIMITS = {"PARVIS_LOGIN_CODES_PER_ADDRESS": "100", "PARVIS_LOGIN_CODES_PER_IP": "1000",
          "PARVIS_LOGIN_ATTEMPTS_PER_ADDRESS": "100", "PARVIS_LOGIN_ATTEMPTS_PER_IP": "1000",
          "PARVIS_NOTIFY_INTERVAL": "0.3"}


@pytest.fixture(scope="module")
def platform(mongo, broker):
    mongo.drop_all()
    p = Platform(mongo, broker, **LIMITS)
    up = p.up("agenda", "satisfaction", "notification", "gateway")
    yield p
    faults = [line for line in up.lines if "unexpected error" in line]
    p.stop_reporting_crashes()
    for line in faults:  # the gateway's faults, for the test log
        print(line.replace("\\n", "\n"))


def mails(platform) -> set[str]:
    return {p.name for p in (Path(platform.data_dir) / "mail").glob("*.eml")}


def code_for(platform, address: str, before: set[str]) -> str:
    """The code of the sign-in message to `address` that arrived after `before` (the messages there then)."""
    def latest():
        for name in sorted(mails(platform) - before, reverse=True):
            msg = email.message_from_bytes((Path(platform.data_dir) / "mail" / name).read_bytes(),
                                           policy=email.policy.default)
            found = re.search(r"\b(\d{6})\b", msg["Subject"] or "")
            if msg["To"] == address and found:  # not a message about its events
                return found.group(1)
        return None
    return wait_until(latest, 20, 0.2, f"the code sent to {address}")


def sign_in(platform, browser, address: str, javascript: bool = True):
    context = browser.new_context(java_script_enabled=javascript, base_url=platform.url)
    page = context.new_page()
    since = mails(platform)
    page.goto("/connexion")
    page.get_by_label("Adresse électronique").fill(address)
    page.get_by_role("button", name="Recevoir un code").click()
    page.get_by_label("Code à 6 chiffres").fill(code_for(platform, address, since))
    page.get_by_role("button", name="Se connecter").click()
    expect(page.get_by_text("Vous êtes connecté.")).to_be_visible()
    return context, page


def http_session(platform, address: str) -> httpx.Client:
    client = httpx.Client(base_url=platform.url, headers={"Origin": platform.url}, timeout=20)
    since = mails(platform)
    form = client.get("/connexion").text
    client.post("/connexion", data={"csrf": csrf(form), "email": address})
    form = client.get("/connexion/code").text
    r = client.post("/connexion/code", data={"csrf": csrf(form), "code": code_for(platform, address, since)})
    assert r.status_code == 303, r.text
    return client


def csrf(html: str) -> str:
    return re.search(r'name="csrf" value="([0-9a-f]+)"', html).group(1)


def day_in(days: int) -> str:
    return (date.today() + timedelta(days=days)).isoformat()


def propose(page, title: str, day: str | None = None):
    day = day or day_in(60)
    page.goto("/organisation/evenements/nouveau")
    page.get_by_label("Titre de l'événement").fill(title)
    page.get_by_label("Catégorie", exact=True).select_option("fete-locale")
    page.get_by_label("Jour de début").first.fill(day)
    page.get_by_label("Heure de début").first.fill("19:00")
    page.get_by_label("Jour de fin").first.fill(day)
    page.get_by_label("Heure de fin").first.fill("23:00")
    page.get_by_label("Commune", exact=True).select_option("labege")
    page.locator("#lieu").fill("Place de la mairie")
    page.get_by_role("button", name="Enregistrer").click()
    expect(page.get_by_text("Brouillon enregistré")).to_be_visible()
    return page.url.rsplit("/", 1)[1]


def test_an_association_proposes_an_agent_approves_a_subscribed_citizen_is_told(platform, browser):
    # A citizen, without JavaScript, follows Labège's events in his space.
    citizen, cpage = sign_in(platform, browser, "habitant@example.org", javascript=False)
    cpage.goto("/compte/abonnements?sujet=agenda:commune:labege")
    cpage.get_by_label("Dans mon espace (Mes notifications)").check()
    cpage.get_by_role("button", name="M'abonner").click()
    expect(cpage.get_by_text("Votre abonnement est enregistré.")).to_be_visible()
    expect(cpage.get_by_role("cell", name="Les événements à Labège")).to_be_visible()

    org, opage = sign_in(platform, browser, ASSOCIATION)
    # A mistake first: the error summary links to the field, which says what is wrong.
    opage.goto("/organisation/evenements/nouveau")
    opage.get_by_role("button", name="Enregistrer").click()
    summary = opage.locator(".error-summary")
    expect(summary).to_be_visible()
    assert opage.title().startswith("Erreur")
    assert opage.locator("#titre").get_attribute("aria-describedby") == "titre-error"
    event_id = propose(opage, "Bal du comité")
    opage.get_by_role("button", name="Soumettre à la modération").click()
    expect(opage.get_by_text("Événement soumis")).to_be_visible()
    expect(opage.get_by_text("En attente de modération")).to_be_visible()

    agent, apage = sign_in(platform, browser, AGENT)
    apage.goto("/console/moderation")
    apage.get_by_role("link", name="Bal du comité").click()
    apage.get_by_role("button", name="Publier").click()
    expect(apage.get_by_text("Événement publié.")).to_be_visible()

    def told():
        cpage.goto("/compte/notifications")
        return cpage.get_by_text("Bal du comité").count() > 0
    wait_until(told, 30, 0.5, "the citizen's in-app notification")
    assert cpage.get_by_text("Nouveau").count() >= 1
    cpage.get_by_role("button", name=re.compile("Tout marquer comme lu")).click()
    expect(cpage.get_by_text("Notifications marquées comme lues.")).to_be_visible()

    # The association edits its published event: the agent sees both versions side by side.
    opage.goto(f"/organisation/evenements/{event_id}/modifier")
    opage.get_by_label("Titre de l'événement").fill("Grand bal du comité")
    opage.get_by_role("button", name="Enregistrer").click()
    expect(opage.get_by_text("Elle attend la modération")).to_be_visible()
    apage.goto(f"/console/moderation/{event_id}")
    table = apage.locator("table.comparison")
    expect(table.get_by_role("rowheader", name=re.compile("Titre.*modifié"))).to_be_visible()
    assert table.locator("del").first.inner_text() == "Bal du comité"
    assert table.locator("ins").first.inner_text() == "Grand bal du comité"
    apage.get_by_role("button", name="Publier la modification").click()
    cpage.goto(f"/agenda/events/{event_id}")
    expect(cpage.get_by_role("heading", name="Grand bal du comité")).to_be_visible()

    # The public agenda finds it by commune and text, without JavaScript; a cancellation is said in words.
    cpage.goto("/agenda?commune=labege&texte=grand+bal")
    expect(cpage.get_by_role("link", name="Grand bal du comité")).to_be_visible()
    opage.goto(f"/organisation/evenements/{event_id}/annuler")
    opage.get_by_label("Raison").fill("Météo")
    opage.get_by_role("button", name="Annuler l'événement").click()
    expect(opage.get_by_text("annoncé comme annulé")).to_be_visible()
    for context in (citizen, org, agent):
        context.close()


def test_a_rejected_event_shows_its_reason_to_the_association(platform, browser):
    org, opage = sign_in(platform, browser, ASSOCIATION, javascript=False)
    event_id = propose(opage, "Loto d'automne", day_in(90))
    opage.get_by_role("button", name="Soumettre à la modération").click()
    agent, apage = sign_in(platform, browser, AGENT)
    apage.goto(f"/console/moderation/{event_id}")
    apage.get_by_role("button", name="Refuser").click()
    expect(apage.locator("#raison-error")).to_be_visible()  # a refusal needs its reason
    apage.get_by_label("Raison du refus").fill("Merci d'indiquer le tarif.")
    apage.get_by_role("button", name="Refuser").click()
    opage.goto(f"/organisation/evenements/{event_id}")
    expect(opage.get_by_text("Merci d'indiquer le tarif.")).to_be_visible()
    expect(opage.get_by_text("Refusé")).to_be_visible()
    org.close()
    agent.close()


QR_PIXELS = """(svg) => new Promise((done) => {
  // Whole pixels per module (8), so that no module is blurred across two pixels by a fractional scale.
  const box = /viewBox="0 0 (\\d+) (\\d+)"/.exec(svg), side = box ? Number(box[1]) * 8 : 800;
  const img = new Image();
  img.onload = () => {
    const w = side, h = side;
    const canvas = document.createElement('canvas'); canvas.width = w; canvas.height = h;
    const g = canvas.getContext('2d'); g.imageSmoothingEnabled = false;
    g.fillStyle = '#fff'; g.fillRect(0, 0, w, h); g.drawImage(img, 0, 0, w, h);
    const rgba = g.getImageData(0, 0, w, h).data, lum = [];
    for (let i = 0; i < rgba.length; i += 4) { lum.push(rgba[i] < 128 ? 0 : 255); }
    done({w, h, lum});
  };
  img.onerror = () => done({w: 0, h: 0, lum: [], error: 'the SVG did not load'});
  img.src = 'data:image/svg+xml;charset=utf-8,' + encodeURIComponent(
    svg.replace('<svg ', `<svg width="${side}" height="${side}" shape-rendering="crispEdges" `));
})"""


def test_an_agent_registers_a_kiosk_by_its_qr_code_and_sees_its_votes(platform, browser):
    import zxingcpp

    agent, apage = sign_in(platform, browser, AGENT)
    apage.goto("/console/bornes/nouvelle")
    apage.get_by_label("Lieu", exact=True).select_option("site-piscine-castanet")
    apage.get_by_label("Nom de la borne").fill("Borne du hall")
    apage.get_by_label("Secondes entre deux votes comptés").fill("0")
    apage.get_by_role("button", name="Enregistrer la borne").click()
    link = apage.locator("#lien-borne").inner_text().strip()
    assert link.startswith(f"{platform.url}/kiosk#token=")
    svg = apage.locator("#qr svg").evaluate("e => e.outerHTML")
    pixels = apage.evaluate(QR_PIXELS, svg)
    image = zxingcpp.ImageView(bytes(pixels["lum"]), pixels["w"], pixels["h"], zxingcpp.ImageFormat.Lum)
    assert [r.text for r in zxingcpp.read_barcodes(image)] == [link], "the QR code is the provisioning link"

    kiosk = browser.new_context()
    kpage = kiosk.new_page()
    kpage.goto(link.replace("/kiosk#", "/kiosk?thanks=50#"))
    for name in ("Très satisfait", "Très satisfait", "Insatisfait"):
        kpage.get_by_role("button", name=name, exact=True).click()
        kpage.wait_for_timeout(150)

    def shown():
        apage.goto("/console/satisfaction?lieu=site-piscine-castanet")
        row = apage.locator("#table-lieux tr", has_text="Piscine")
        return row.count() and row.locator("td").first.inner_text() == "3"
    wait_until(shown, 30, 0.5, "the kiosk's votes in the satisfaction table")
    assert apage.locator("figure svg[role=img]").count() == 3, "three charts, each beside its table"
    assert apage.locator("#table-heures tbody tr").count() >= 1
    apage.goto("/console/bornes")
    expect(apage.get_by_role("row", name=re.compile("Borne du hall.*En ligne"))).to_be_visible()
    kiosk.close()
    agent.close()


PAGES = {
    None: ["/", "/agenda", "/agenda?commune=labege", "/connexion", "/agenda/events/{event}"],
    "habitant@example.org": ["/compte", "/compte/abonnements", "/compte/notifications"],
    ASSOCIATION: ["/organisation/evenements", "/organisation/evenements/nouveau", "/organisation/evenements/{own}",
                  "/organisation/evenements/{own}/retirer"],
    AGENT: ["/console", "/console/moderation", "/console/bornes", "/console/bornes/nouvelle", "/console/lieux/nouveau",
            "/console/satisfaction", "/console/notifications", "/console/notifications/modeles/login_code",
            "/console/notifications/envois", "/console/notifications/webhooks", "/console/organisateurs"],
    OPERATOR: ["/console/sante", "/console/lettres-mortes", "/console/sessions", "/console/roles"],
}


def test_every_page_of_every_role_passes_axe_is_small_and_the_script_is_light(platform, browser):
    published = platform.graphql_data("{ events(first: 1) { edges { node { id } } } }")["events"]["edges"][0]["node"]["id"]
    axe, problems, sizes = Axe(), [], {}
    for who, paths in PAGES.items():
        context, page = sign_in(platform, browser, who) if who else (browser.new_context(base_url=platform.url), None)
        page = page or context.new_page()
        own = None
        if who == ASSOCIATION:
            own = propose(page, "Concert de printemps", day_in(120))
        for path in paths:
            url = path.format(event=published, own=own)
            response = page.goto(url)
            assert response.status == 200, (who, url, response.status)
            sizes[url] = len(response.body())
            bad = [(v["id"], v["impact"], [n["target"] for n in v["nodes"]][:3])
                   for v in axe.run(page).response["violations"] if v["impact"] in ("serious", "critical")]
            if bad:
                problems.append((who, url, bad))
            if path == "/organisation/evenements/nouveau":  # the form with its errors shown
                page.get_by_role("button", name="Enregistrer").click()
                bad = [(v["id"], v["impact"]) for v in axe.run(page).response["violations"]
                       if v["impact"] in ("serious", "critical")]
                if bad:
                    problems.append((who, url + " (errors)", bad))
        context.close()
    assert problems == []
    assert max(sizes.values()) < 100_000, sorted(sizes.items(), key=lambda kv: -kv[1])[:3]
    script = httpx.get(f"{platform.url}/static/parvis.js", timeout=10)
    assert script.status_code == 200 and len(script.content) < 50_000


def test_forms_refuse_a_missing_or_foreign_csrf_token_and_the_cookie_is_guarded(platform):
    client = http_session(platform, "habitant@example.org")
    cookie = next(c for c in client.cookies.jar if c.name == "parvis_session")
    assert cookie.has_nonstandard_attr("HttpOnly") and cookie.get_nonstandard_attr("SameSite") == "lax"
    form = client.get("/compte/abonnements").text
    subscribe = {"sujet": "agenda:commune:escalquens", "canal": "EMAIL"}
    assert client.post("/compte/abonnements", data=subscribe).status_code == 403  # no token
    other = http_session(platform, "voisin@example.org")
    foreign = csrf(other.get("/compte/abonnements").text)
    assert client.post("/compte/abonnements", data={**subscribe, "csrf": foreign}).status_code == 403
    evil = client.post("/compte/abonnements", data={**subscribe, "csrf": csrf(form)},
                       headers={"Origin": "https://evil.example"})
    assert evil.status_code == 403
    assert client.post("/compte/abonnements", data={**subscribe, "csrf": csrf(form)}).status_code == 303
    # The API never reads the cookie: a cross-site request carrying it is the public's.
    me = client.post("/graphql", json={"query": "{ me { role } }"}).json()
    assert me["data"]["me"]["role"] == "PUBLIC"
    # Signing out ends the token itself, not only the cookie.
    value = cookie.value
    form = client.get("/compte").text
    client.post("/deconnexion", data={"csrf": csrf(form)})
    reused = httpx.post(f"{platform.url}/graphql", json={"query": "{ me { role } }"},
                        headers={"Authorization": f"Bearer {value}"}, timeout=10)
    assert reused.status_code == 401
    client.close()
    other.close()


def test_a_role_taken_away_ends_the_session(platform):
    operator = token("operator", subject="operator:test")
    platform.graphql_data('mutation { grantRole(email: "remplacant@sicoval.example", role: AGENT) { email } }',
                          token=operator)
    client = http_session(platform, "remplacant@sicoval.example")
    assert client.get("/console/bornes").status_code == 200
    ended = platform.graphql_data('mutation { revokeRole(email: "remplacant@sicoval.example") { endedSessions } }',
                                  token=operator)["revokeRole"]["endedSessions"]
    assert ended == 1
    response = wait_until(lambda: (lambda r: r.status_code == 303 and r)(client.get("/console/bornes")), 10, 0.5,
                          "the session refused")
    assert response.headers["location"].startswith("/connexion?suite=")
    again = http_session(platform, "remplacant@sicoval.example")  # signs in again: a citizen now
    assert again.get("/console/bornes").status_code == 403
    assert again.get("/compte/abonnements").status_code == 200
    client.close()
    again.close()
