"""Bounded work per request, pure parts: the query cost, the client's address behind proxies, the rate limiter,
recurrence rules, the compiled plans' cache keys, settings production refuses, CSV cells."""
import time
from datetime import datetime

import pytest
from graphql import parse, validate

from contracts.agenda import EventInput
from contracts.errors import BadInput
from gateway.limits import RateLimiter, client_address, parse_networks
from gateway.schema import LIMIT_RULES, MAX_QUERY_COST, build_schema
from services.agenda import domain

SCHEMA = build_schema()


def cost_errors(query: str) -> list:
    return [e for e in validate(SCHEMA._schema, parse(query), LIMIT_RULES)
            if (e.extensions or {}).get("code") == "QUERY_TOO_COSTLY"]


def test_a_query_that_may_return_too_many_objects_is_refused_before_it_runs():
    """30 aliases of events(first: 500) passed every limit: 15,000 events rendered by one request."""
    many = "{ " + " ".join(f"a{i}: events(first: 500) {{ edges {{ node {{ id }} }} }}" for i in range(30)) + " }"
    [error] = cost_errors(many)
    assert "trop coûteuse" in error.message and str(MAX_QUERY_COST) in error.message
    rich = """query($n: Int!) { events(first: $n) { totalCount edges { node { id title startsAt commune { slug name }
      occurrences { startsAt endsAt } organizer { id name } location { place } contact { name } } } } }"""
    assert cost_errors(rich) == [], "a full page of 500 with a rich selection is fine"
    assert cost_errors("{ communes { slug } categories { slug } events(first: 50) { totalCount } }") == []


def test_forwarded_addresses_are_believed_from_trusted_proxies_only():
    trusted = parse_networks("10.0.0.0/8, 127.0.0.1")

    def scope(peer, forwarded=None):
        headers = [(b"x-forwarded-for", forwarded.encode())] if forwarded else []
        return {"client": (peer, 4242), "headers": headers}

    assert client_address(scope("203.0.113.5", "198.51.100.7"), trusted) == "203.0.113.5", "not from a proxy"
    assert client_address(scope("10.1.2.3", "198.51.100.7"), trusted) == "198.51.100.7"
    # A client writing its own header in front of the proxy's is not believed: the right-most untrusted hop is.
    assert client_address(scope("10.1.2.3", "1.2.3.4, 198.51.100.7, 10.9.9.9"), trusted) == "198.51.100.7"
    assert client_address(scope("10.1.2.3", "198.51.100.7"), ()) == "10.1.2.3", "no proxy configured"


def test_the_rate_limiter_allows_a_burst_then_the_rate_and_forgets_old_clients():
    limiter = RateLimiter(rate=2, burst=3, keys=2)
    now = 1000.0
    assert [limiter.allow("a", now) for _ in range(3)] == [0, 0, 0]
    assert limiter.allow("a", now) == pytest.approx(0.5)
    assert limiter.allow("a", now + 0.5) == 0, "refilled at 2 a second"
    assert limiter.allow("b", now) == 0 and limiter.allow("c", now) == 0
    assert "a" not in limiter.buckets and len(limiter.buckets) == 2, "bounded memory"
    assert RateLimiter(rate=0, burst=0).allow("x") == 0, "0: no limit"


@pytest.mark.parametrize("rrule", [
    "FREQ=SECONDLY;BYMONTH=2;BYMONTHDAY=30;COUNT=1",
    "FREQ=HOURLY;COUNT=3",
    "FREQ=DAILY;COUNT=1\nDTSTART:19000101",
    "FREQ=DAILY;COUNT=2;X-NAME=1",
    "FREQ=DAILY;COUNT=5000",
    "FREQ=DAILY;UNTIL=20400101T000000",
    "FREQ=DAILY;BYMONTH=2;BYMONTHDAY=30;COUNT=1",   # never matches: dateutil would look until the year 9999
    "FREQ=MONTHLY;BYMONTH=2;BYMONTHDAY=30;COUNT=1",
    "FREQ=WEEKLY;BYDAY=MO;BYSETPOS=5;COUNT=2",
    "FREQ=MONTHLY;BYDAY=MO;BYSETPOS=6;COUNT=2",
    "FREQ=DAILY;INTERVAL=366;BYMONTH=2;COUNT=1",
    "FREQ=WEEKLY",                                  # no end
])
def test_recurrence_rules_are_bounded_and_quick(rrule):
    """FREQ=SECONDLY;BYMONTH=2;BYMONTHDAY=30;COUNT=1 took 5 s of CPU in the agenda service, and an embedded
    DTSTART made events in 1900 (and could break the ICS export for everybody)."""
    ref = domain.Reference({"labege": "Labège"}, {"concert": "Concert"}, {})
    data = EventInput.model_validate({"title": "Atelier", "category": "concert", "location": {"commune": "labege"},
                                      "rrule": rrule, "slots": [{"starts_at": "2027-03-06T10:00:00",
                                                                 "ends_at": "2027-03-06T12:00:00"}]})
    started = time.perf_counter()
    with pytest.raises(BadInput) as exc:
        domain.validate_event(data, ref, datetime(2026, 12, 1))
    assert exc.value.field == "rrule" and time.perf_counter() - started < 0.5


def test_compiled_plans_are_kept_under_a_digest_not_the_documents_text():
    from gateway.compiled.events import FastQueries

    fast = FastQueries(SCHEMA, public_agenda=None)
    query = "{ events(first: 3) { totalCount } }" + " " * 20_000
    fast.plan(query, None)
    [(key, _)] = fast.plans.keys()
    assert isinstance(key, bytes) and len(key) == 16
    assert fast.planned({"query": "{ events { totalCount } }" + " " * 40_000}, _Counter()) is None, "over 32 KiB"


class _Counter:
    def labels(self, *_):
        return self

    def inc(self):
        pass


def test_production_refuses_an_smtp_password_in_clear(tmp_path):
    from core.settings import SettingsError
    from services.notification.settings import NotificationSettings

    env = {"PARVIS_ENV": "production", "PARVIS_SECRET": "s" * 40, "PARVIS_DATA_DIR": str(tmp_path)}
    with pytest.raises(SettingsError, match="SMTP_URL"):
        NotificationSettings.from_env({**env, "SMTP_URL": "smtp://user:secret@mail.example:25"})
    assert NotificationSettings.from_env({**env, "SMTP_URL": "smtp://user:secret@mail.example:587?starttls=1"}).smtp
    assert NotificationSettings.from_env({**env, "SMTP_URL": "smtp://relay.local:25"}).smtp, "no password: no secret"


def test_csv_cells_never_run_as_formulas():
    """A title like =HYPERLINK("http://evil…") was written as is: a spreadsheet runs it (OWASP CSV injection)."""
    import csv
    import io

    from gateway.routes.agenda import to_csv

    ref = domain.Reference({"labege": "Labège"}, {"concert": "Concert"}, {})
    fields = domain.validate_event(EventInput.model_validate({
        "title": '=HYPERLINK("http://evil.example","Cliquez")', "category": "concert", "tags": ["+33 6", "@moi"],
        "location": {"commune": "labege", "place": "-1 (sous-sol)"},
        "slots": [{"starts_at": "2027-03-06T10:00:00", "ends_at": "2027-03-06T12:00:00"}]}), ref,
        datetime(2026, 12, 1))
    now = datetime(2026, 12, 1)
    view = domain.event_view({"_id": "e1", **fields, "organizer": "o", "organizer_name": "O",
                              "moderation_state": "published", "status": "scheduled", "created_at": now,
                              "updated_at": now})
    [row] = list(csv.DictReader(io.StringIO(to_csv([view], "https://x.example").decode("utf-8-sig"))))
    assert row["titre"] == "'=HYPERLINK(\"http://evil.example\",\"Cliquez\")"
    assert row["lieu"] == "'-1 (sous-sol)" and row["mots_cles"] == "'+33 6|@moi"


def test_compose_has_no_default_credentials_and_grafana_listens_on_loopback():
    import os
    import shutil
    import subprocess

    import yaml

    from tests.support import ROOT

    env = {**os.environ, "PARVIS_SECRET": "s" * 40, "RABBITMQ_PASSWORD": "p4ss", "GRAFANA_ADMIN_PASSWORD": "g4ss"}
    out = subprocess.run([shutil.which("docker-compose") or "docker-compose", "-f", "docker-compose.yml", "config"],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    config = yaml.safe_load(out.stdout)
    text = out.stdout
    assert "guest" not in text and "admin:admin" not in text
    [grafana] = config["services"]["grafana"]["ports"]
    # docker-compose v1 prints "ip:host:container", v2 a mapping
    host_ip = grafana["host_ip"] if isinstance(grafana, dict) else grafana.split(":")[0]
    assert host_ip == "127.0.0.1"
    assert config["services"]["rabbitmq"]["environment"]["RABBITMQ_DEFAULT_PASS"] == "p4ss"
