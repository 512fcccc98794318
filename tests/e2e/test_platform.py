"""The whole platform as `parvis up` runs it, through real HTTP: readiness, GraphQL, auth, limits,
metrics, logs, the supervisor's restart of a crashed child and its clean stop."""
import json
import os
import signal
import subprocess
import time

import httpx
import pytest

from tests.support import Platform, token, wait_until


@pytest.fixture(scope="module")
def platform(mongo, broker):
    mongo.drop_all()
    p = Platform(mongo, broker)
    up = p.up()
    p.up_proc = up
    yield p
    p.stop()


def gql(platform, query, variables=None, tok=None, headers=None):
    h = {"Authorization": f"Bearer {tok}"} if tok else {}
    h.update(headers or {})
    r = httpx.post(f"{platform.url}/graphql", json={"query": query, "variables": variables or {}}, headers=h, timeout=10)
    return r


def test_readyz_reports_every_service_ready(platform):
    r = httpx.get(f"{platform.url}/readyz", timeout=5)
    body = r.json()
    assert r.status_code == 200 and body["status"] == "ready" and body["broker"] is True
    assert set(body["services"]) == {"agenda", "consultation", "satisfaction", "payment_link", "notification"}
    assert all(s["ok"] and s["database"] for s in body["services"].values())
    assert httpx.get(f"{platform.url}/healthz").json() == {"status": "ok"}


def test_the_banner_prints_urls_and_demo_tokens(platform):
    out = platform.up_proc.output()
    assert f"{platform.url}/graphql" in out and "Demo tokens" in out and "agent " in out


def test_parvis_urls_prints_the_banner_again(platform):
    out = subprocess.run([os.sys.executable, "-m", "parvis.cli", "urls"], env=platform.env, capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0 and f"{platform.url}/graphql" in out.stdout and "Demo tokens" in out.stdout


def test_logs_say_what_a_person_should_read(platform):
    """At INFO: requests answered, work done, refusals in one line; not the timers and polls that run every second
    and find nothing (they are at DEBUG), nor the embedded database's expected fallbacks."""
    time.sleep(3)  # a few ticks of the 1 s timers and of the gateway's syncs
    r = gql(platform, '{ event(id: "evt-nope") { id } organizations { id } }', tok=token("agent"))
    assert r.status_code == 200
    unknown = gql(platform, 'mutation { moderateEvent(id: "evt-nope", version: 1, decision: APPROVE) { id } }',
                  tok=token("agent"))
    assert unknown.json()["errors"][0]["extensions"]["code"] == "NOT_FOUND"
    wait_until(lambda: any(line.get("entrypoint") == "moderate_event" and "refused" in line.get("msg", "")
                           for line in platform.up_proc.json_logs()), 5, 0.1, "the refusal logged")
    lines = platform.up_proc.json_logs()
    idle = [line for line in lines if line.get("entrypoint") in ("refresh_public_snapshot", "callbacks", "dispatch",
                                                                 "public_feed", "list_revoked_tokens", "ping")
            and line.get("msg", "").endswith(" ms")]  # "<entrypoint> ok in N ms": a tick or poll that did nothing
    assert idle == [], idle[:3]
    [refusal] = [line for line in lines if line.get("entrypoint") == "moderate_event" and "refused" in line["msg"]]
    assert refusal["level"] == "info" and "NOT_FOUND" in refusal["msg"] and refusal["service"] == "agenda"
    assert "exc" not in refusal
    assert not [line for line in lines if line.get("logger") == "nameko.containers" and line.get("level") != "info"
                and "moderate_event" in line.get("msg", "")], "nameko's own traceback of an expected refusal"
    assert "aggregation fallback" not in platform.up_proc.output()
    assert any(line.get("entrypoint") == "list_organizations" and "ok in" in line.get("msg", "") for line in lines)


def test_demo_data_is_seeded_once_and_readable_by_the_public(platform):
    data = gql(platform, "{ communes { slug name } organizations(kind: COMMUNE) { id name commune } themes { name } }").json()
    assert "errors" not in data, data
    assert len(data["data"]["communes"]) == 36
    assert {"slug": "belbeze-de-lauragais", "name": "Belbèze-de-Lauragais"} in data["data"]["communes"]
    assert len(data["data"]["organizations"]) == 36
    assert len(data["data"]["themes"]) == 15
    # Seeding again changes nothing.
    out = subprocess.run([os.sys.executable, "-m", "parvis.cli", "seed"], env=platform.env, capture_output=True,
                         text=True, timeout=60)
    report = json.loads(out.stdout)
    assert report["organizations_created"] == 0 and report["organizations_unchanged"] == 43
    assert report["events_created"] == 0 and report["events_existing"] == 5


def test_a_fresh_platform_shows_upcoming_demo_events(platform):
    data = gql(platform, '{ events(filter: {communes: ["labege"]}, first: 10) { totalCount edges { node { title commune { slug } } } } }').json()
    assert "errors" not in data, data
    titles = {e["node"]["title"] for e in data["data"]["events"]["edges"]}
    assert "Fête de la musique d'hiver à Labège" in titles
    search = gql(platform, '{ events(filter: {text: "marche producteurs"}, first: 5) { totalCount } }').json()
    assert search["data"]["events"]["totalCount"] >= 1


def test_roles_are_enforced_with_typed_errors(platform):
    r = gql(platform, "{ serviceHealth { name ok } }")
    assert r.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    r = gql(platform, "{ serviceHealth { name ok } }", tok=token("organizer", org="org-commune-labege"))
    assert r.json()["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    r = gql(platform, "{ me { role organizationId } serviceHealth { name ok latencyMs } }", tok=token("operator"))
    body = r.json()
    assert "errors" not in body and body["data"]["me"]["role"] == "OPERATOR"
    assert all(s["ok"] for s in body["data"]["serviceHealth"])


def test_bad_tokens_are_refused_before_graphql_runs(platform):
    for value in ("Bearer nonsense", "Basic abc", "Bearer " + token("agent", ttl=-5)):
        r = httpx.post(f"{platform.url}/graphql", json={"query": "{ me { role } }"}, headers={"Authorization": value})
        assert r.status_code == 401
        assert r.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"


def test_a_revoked_token_stops_working(platform):
    victim = token("agent")
    assert gql(platform, "{ me { role } }", tok=victim).status_code == 200
    from gateway import auth

    claims = auth.claims_unverified(victim)
    r = gql(platform, "mutation($id: String!, $exp: DateTime!) { revokeToken(tokenId: $id, expiresAt: $exp, reason: \"perdu\") { tokenId } }",
            {"id": claims["jti"], "exp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(claims["exp"]))}, tok=token("operator"))
    assert r.json()["data"]["revokeToken"]["tokenId"] == claims["jti"], r.text
    r = gql(platform, "{ me { role } }", tok=victim)
    assert r.status_code == 401 and "révoqué" in r.json()["errors"][0]["message"]


def test_query_limits(platform):
    many_tokens = "{ " + " ".join("communes { slug name }" for _ in range(400)) + " }"
    r = gql(platform, many_tokens).json()
    assert r["errors"][0]["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED" and "trop longue" in r["errors"][0]["message"].lower()
    aliases = "{ " + " ".join(f"a{i}: communes {{ slug }}" for i in range(40)) + " }"
    r = gql(platform, aliases).json()
    assert r["errors"][0]["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED"
    big = httpx.post(f"{platform.url}/graphql", content=b'{"query": "' + b" " * (2 << 20) + b'{ me { role } }"}',
                     headers={"content-type": "application/json"})
    assert big.status_code == 413 and big.json()["errors"][0]["extensions"]["code"] == "PAYLOAD_TOO_LARGE"


def test_requests_graphql_cannot_read_get_a_json_error_with_a_code(platform):
    """A body that is not JSON got a plain-text 400 in English, without extensions.code."""
    for body, headers, status, code in (
            (b"{not json", {"content-type": "application/json"}, 400, "BAD_REQUEST"),
            (b'{"variables": {}}', {"content-type": "application/json"}, 400, "BAD_REQUEST"),
            (b"query=x", {"content-type": "text/plain"}, 400, "BAD_REQUEST")):
        r = httpx.post(f"{platform.url}/graphql", content=body, headers=headers, timeout=10)
        assert r.status_code == status and r.json()["errors"][0]["extensions"]["code"] == code, r.text
        assert r.json()["errors"][0]["message"][0].isupper() and "JSON" in r.json()["errors"][0]["message"] or code
    r = httpx.post(f"{platform.url}/graphql", content=b"{not json", headers={"content-type": "application/json"})
    assert "n'est pas du JSON valide" in r.json()["errors"][0]["message"]
    english = httpx.post(f"{platform.url}/graphql", json={"query": "{ nope }"}, headers={"Accept-Language": "en"})
    assert english.json()["errors"][0]["message"] == "Cannot query field 'nope' on type 'Query'."
    french = httpx.post(f"{platform.url}/graphql", json={"query": "{ nope }"})
    assert french.json()["errors"][0]["message"] == "Le champ « nope » n'existe pas sur le type « Query »."


def test_an_organisers_token_names_an_organisation_that_exists(platform):
    def parvis_token(*args):
        return subprocess.run([os.sys.executable, "-m", "parvis.cli", "token", *args], env=platform.env,
                              capture_output=True, text=True, timeout=60)

    good = parvis_token("organizer", "--org", "org-commune-labege")
    assert good.returncode == 0 and good.stdout.count(".") == 2, good.stderr
    nope = parvis_token("organizer", "--org", "org-nope")
    assert nope.returncode == 2 and "organisation inconnue" in nope.stderr and nope.stdout == ""


def test_graphiql_in_dev(platform):
    r = httpx.get(f"{platform.url}/graphql", headers={"Accept": "text/html"})
    assert r.status_code == 200 and "graphiql" in r.text.lower()


def test_metrics_everywhere_and_correlation_id_in_service_logs(platform):
    cid = "e2e-correlation-0001"
    r = gql(platform, "{ communes { slug } }", headers={"X-Correlation-Id": cid})
    assert r.headers["x-correlation-id"] == cid
    gateway_metrics = httpx.get(f"{platform.url}/metrics").text
    assert 'parvis_http_requests_total{route="/graphql",status="200"}' in gateway_metrics
    assert 'parvis_rpc_client_calls_total{method="list_communes",outcome="ok",service="agenda"}' in gateway_metrics
    assert 'parvis_graphql_operations_total{field="communes",outcome="ok",type="query"}' in gateway_metrics
    for i, service in enumerate(["agenda", "consultation", "satisfaction", "payment_link", "notification"]):
        text = httpx.get(f"http://127.0.0.1:{platform.metrics_base + i}/metrics").text
        assert f'parvis_workers_max{{service="{service}"}}' in text
        assert 'parvis_entrypoint_duration_seconds_bucket{entrypoint="ping",kind="rpc",le="0.05"' in text
    wait_until(lambda: any(line.get("correlation_id") == cid and line.get("service") == "agenda"
                           and line.get("entrypoint") == "list_communes" for line in platform.up_proc.json_logs()),
               5, 0.1, "agenda's log line with the request's correlation id")


def test_production_mode_hides_introspection_and_graphiql(platform):
    port = platform.http_port + 1 if platform.http_port < 65000 else platform.http_port - 1
    gw = platform.gateway(PARVIS_ENV="production", PARVIS_HTTP_PORT=str(port))
    try:
        url = f"http://127.0.0.1:{port}/graphql"
        r = httpx.post(url, json={"query": "{ __schema { types { name } } }"}).json()
        assert r["errors"][0]["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED"
        assert httpx.get(url, headers={"Accept": "text/html"}).status_code != 200 or "graphiql" not in httpx.get(url, headers={"Accept": "text/html"}).text.lower()
        assert httpx.post(url, json={"query": "{ communes { slug } }"}).json()["data"]["communes"]
        # A person's mistake in a variable is theirs, in production too (it was "Erreur interne", logged).
        r = httpx.post(url, json={"query": "query($f: EventFilter) { events(filter: $f) { totalCount } }",
                                  "variables": {"f": {"from": "2026-13-45T10:00"}}}).json()
        assert r["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT" and "Date et heure invalides" in r["errors"][0]["message"]
    finally:
        gw.stop()
    assert "Traceback" not in gw.output()


def _environ(pid: str) -> str:
    try:
        with open(f"/proc/{pid}/environ", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="ignore")
    except OSError:
        return ""


def test_supervisor_restarts_a_crashed_service(platform):
    pids = subprocess.run(["pgrep", "-f", "parvis.cli service consultation"], capture_output=True, text=True).stdout.split()
    mine = [p for p in pids if f"PARVIS_DATA_DIR={platform.data_dir}" in _environ(p)]
    assert len(mine) == 1, pids
    os.kill(int(mine[0]), signal.SIGKILL)
    wait_until(lambda: "consultation exited with code -9" in platform.up_proc.output(), 10, 0.1, "the crash reported")
    wait_until(lambda: httpx.get(f"{platform.url}/readyz", timeout=5).status_code == 200, 60, 0.5, "ready again")


def test_sigterm_stops_everything_cleanly_and_quickly(mongo, broker):
    """A stop took ~10.5 s and ended with the agenda killed: each child was signalled twice, and nameko's timers
    refused the second stop with tracebacks."""
    p = Platform(mongo, broker)
    up = p.up("agenda", "consultation", "gateway", "--no-seed")
    children = subprocess.run(["pgrep", "-P", str(up.proc.pid)], capture_output=True, text=True).stdout.split()
    assert len(children) == 3
    started = time.monotonic()
    up.proc.send_signal(signal.SIGTERM)
    assert up.proc.wait(30) == 0
    took = time.monotonic() - started
    for pid in children:
        assert not os.path.exists(f"/proc/{pid}"), f"child {pid} still running"
    out = up.output()
    assert "stopped" in out and "Traceback" not in out and "exited with code -9" not in out
    assert out.count("stopping on SIGTERM") == 2, "each service is told once"
    assert took < 5, f"the stop took {took:.1f} s"
    p.stop()


def test_make_run_stops_on_ctrl_c_and_on_parvis_stop(mongo, broker):
    """`make run` execs `parvis up`: Ctrl-C (SIGINT to the terminal's process group) stops everything; a script that
    only knows make's process gets nothing through (GNU make waits for its children on SIGINT): `parvis stop`."""
    from tests.support import ROOT

    def parvis_processes(p) -> list[str]:
        pids = subprocess.run(["pgrep", "-f", "parvis"], capture_output=True, text=True).stdout.split()
        return [pid for pid in pids if f"PARVIS_DATA_DIR={p.data_dir}" in _environ(pid)]

    for stop in ("ctrl-c", "parvis stop"):
        p = Platform(mongo, broker)
        make = subprocess.Popen(["make", "--no-print-directory", "run"], cwd=ROOT, env={**p.env, "MAKEFLAGS": ""},
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
        try:
            lines = []
            for line in make.stdout:
                lines.append(line)
                if "PARVIS-UP" in line:
                    break
            assert "PARVIS-UP" in "".join(lines), "".join(lines[-30:])
            assert len(parvis_processes(p)) >= 7  # supervisor, database, five services, gateway, dev mail
            if stop == "ctrl-c":
                os.killpg(make.pid, signal.SIGINT)
            else:
                out = subprocess.run([os.sys.executable, "-m", "parvis.cli", "stop"], env=p.env, capture_output=True,
                                     text=True, timeout=60)
                assert out.returncode == 0 and "stopped" in out.stdout, out.stderr
            assert make.wait(30) is not None
            wait_until(lambda: not parvis_processes(p), 20, 0.2, f"every process stopped ({stop})")
        finally:
            if make.poll() is None:
                os.killpg(make.pid, signal.SIGKILL)
                make.wait()
            make.stdout.close()
            p.stop()


def test_a_port_taken_stops_the_start_with_the_reason(mongo, broker):
    """A service whose metrics port was taken ran without metrics while the banner printed that port."""
    import socket

    p = Platform(mongo, broker)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", p.metrics_base + 1))  # consultation's
        taken.listen()
        out = subprocess.run([os.sys.executable, "-m", "parvis.cli", "up", "consultation", "--no-seed"], env=p.env,
                             capture_output=True, text=True, timeout=60)
    assert out.returncode == 1 and f"{p.metrics_base + 1} for consultation's metrics" in out.stdout, out.stdout
    p.stop()
