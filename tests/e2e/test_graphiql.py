"""GraphiQL offline: the first URL `make run` prints renders and runs a query in headless Chromium with every request
outside the gateway refused (no internet), its React and GraphiQL served by the gateway at the pinned versions
(whose Subresource Integrity hashes the browser checks)."""
import json
import re
import urllib.parse

import httpx
import pytest
from playwright.sync_api import sync_playwright

from gateway import graphiql
from tests.support import ROOT, Platform, launch_chromium


@pytest.fixture(scope="module")
def platform(mongo, broker):
    p = Platform(mongo, broker)
    p.gateway()
    yield p
    p.stop()


def strawberry_page() -> str:
    from strawberry.http.ides import get_graphql_ide_html

    return get_graphql_ide_html(graphql_ide="graphiql")


def test_the_pinned_versions_are_those_strawberrys_page_names():
    """After a Strawberry upgrade naming other versions, bump gateway/static/graphiql/package.json (and its lock)."""
    pinned = json.loads((ROOT / "gateway/static/graphiql/package.json").read_text())["dependencies"]
    assert graphiql.wanted(strawberry_page()) == pinned
    lock = json.loads((ROOT / "gateway/static/graphiql/package-lock.json").read_text())["packages"]
    assert {name: lock[f"node_modules/{name}"]["version"] for name in pinned} == pinned


def test_graphiql_renders_and_runs_a_query_without_internet(platform):
    outside: list[str] = []
    with sync_playwright() as pw:
        browser = launch_chromium(pw)
        try:
            page = browser.new_page()

            def only_the_gateway(route):
                host = urllib.parse.urlparse(route.request.url).hostname
                if host in ("127.0.0.1", "localhost"):
                    return route.continue_()
                outside.append(route.request.url)
                return route.abort("internetdisconnected")

            page.route("**/*", only_the_gateway)
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            query = "{ me { role } }"
            page.goto(f"{platform.url}/graphql?q={urllib.parse.quote(query)}", wait_until="load")  # the page reads q
            page.wait_for_selector(".graphiql-container", timeout=20_000)
            assert "Loading" not in page.inner_text("body")[:200]
            page.click(".graphiql-execute-button")
            page.wait_for_function("document.querySelector('.graphiql-response') && "
                                   "document.querySelector('.graphiql-response').innerText.includes('PUBLIC')",
                                   timeout=20_000)
            response = page.inner_text(".graphiql-response")
        finally:
            browser.close()
    assert outside == [], f"GraphiQL asked the internet for {outside}"
    assert not errors, errors
    assert re.search(r'"role":\s*"PUBLIC"', response), response


def test_only_the_pages_files_are_served(platform):
    base = f"{platform.url}{graphiql.ASSETS_PATH}"
    assert httpx.get(base + "graphiql/graphiql.min.js").status_code == 200
    assert httpx.get(base + "graphiql/graphiql.min.js").headers["content-type"].startswith("text/javascript")
    for path in ("graphiql/package.json", "graphql/index.js", "graphiql/../../package.json", "react/../x.js"):
        assert httpx.get(base + path).status_code == 404, path
    html = httpx.get(f"{platform.url}/graphql", headers={"Accept": "text/html"}).text
    assert "unpkg.com" not in html and f"{graphiql.ASSETS_PATH}react/umd/react.production.min.js" in html
    assert 'integrity="sha384-' in html
