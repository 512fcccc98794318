"""The deployment files: Dockerfile, docker-compose.yml, Prometheus config and rules, Grafana provisioning.

Validated with the real tools (docker-compose, promtool; `make install` installs them) and checked against
the code: every metric a rule or a panel reads is one that the services or the gateway export.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
import tomllib
from pathlib import Path

import pytest
import yaml

from core.settings import SERVICES

ROOT = Path(__file__).resolve().parents[2]
INFRA = ROOT / "infra"
PROMETHEUS_CONFIG = INFRA / "prometheus" / "prometheus.yml"
RULE_FILES = sorted((INFRA / "prometheus" / "rules").glob("*.yml"))  # every file Prometheus loads (rules/*.yml)
DASHBOARDS = INFRA / "grafana" / "dashboards"
DASHBOARD_FILES = sorted(DASHBOARDS.glob("*.json"))
PROCESSES = (*SERVICES, "gateway")
SERVICE_METRICS_PORT = 9100
GATEWAY_PORT = 8000


# -- helpers ----------------------------------------------------------------------------------------
def tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"`{name}` is not on PATH: run `make install` (infra/scripts/system-deps.sh installs it)",
                    pytrace=False)
    return path


def run(argv: list[str], env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)


COMPOSE_SECRETS = {"PARVIS_SECRET": "a-test-secret-of-enough-length", "RABBITMQ_PASSWORD": "a0b1c2d3e4f5",
                   "GRAFANA_ADMIN_PASSWORD": "f5e4d3c2b1a0"}


def compose_env(**extra: str) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("COMPOSE_") and k not in COMPOSE_SECRETS}
    env.update(extra)
    return env


def promtool_check_rules(path: Path) -> subprocess.CompletedProcess:
    return run([tool("promtool"), "check", "rules", str(path)])


def promtool_test_rules(tmp_path: Path, input_series: str) -> None:
    """promtool's rule unit test over our rules: `input_series` is the YAML from the series on (with the
    test's alert_rule_test), indented for one test of a 1-minute interval."""
    (tmp_path / "test.yml").write_text(f"""\
rule_files: {json.dumps([str(p) for p in RULE_FILES])}
evaluation_interval: 1m
tests:
  - interval: 1m
    input_series:
""" + input_series)
    proc = run([tool("promtool"), "test", "rules", str(tmp_path / "test.yml")])
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


@pytest.fixture(scope="module")
def prometheus() -> dict:
    return yaml.safe_load(PROMETHEUS_CONFIG.read_text())


@pytest.fixture(scope="module")
def rules() -> dict:
    """The groups of every rules file together."""
    return {"groups": [g for path in RULE_FILES for g in yaml.safe_load(path.read_text())["groups"]]}


@pytest.fixture(scope="module", params=DASHBOARD_FILES, ids=[p.name for p in DASHBOARD_FILES])
def dashboard(request) -> dict:
    """Each dashboard file in turn: every test that takes it runs once per file."""
    return json.loads(request.param.read_text())


def dockerfile_final_stage() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of the last stage, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", (ROOT / "Dockerfile").read_text())
    instructions = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            instructions.append((word.upper(), rest.strip()))
    last_from = max(i for i, (word, _) in enumerate(instructions) if word == "FROM")
    return instructions[last_from:]


# -- PromQL: the metric names an expression reads ---------------------------------------------------
PROMQL_WORDS = {"and", "or", "unless", "by", "without", "on", "ignoring", "group_left", "group_right", "bool",
                "offset", "inf", "nan", "atan2"}


def metric_names(expr: str) -> set[str]:
    """Metric names in a PromQL expression: strings, label matchers, ranges and grouping clauses removed,
    then every identifier that is not a function, an aggregation, a keyword or part of a number."""
    s = re.sub(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'', '""', expr)
    s = re.sub(r"\{[^}]*\}", " ", s)
    s = re.sub(r"\[[^\]]*\]", " ", s)
    s = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", s)
    names = set()
    for m in re.finditer(r"[A-Za-z_:][A-Za-z0-9_:]*", s):
        before = s[m.start() - 1] if m.start() else " "
        if before.isdigit() or before == ".":  # 1e3, 5m
            continue
        if s[m.end():].lstrip().startswith("(") or m.group().lower() in PROMQL_WORDS:
            continue
        names.add(m.group())
    return names


def test_the_metric_name_extractor_finds_names_and_only_names():
    expr = ('histogram_quantile(0.95, sum by (service, le) (rate(parvis_a_bucket{service=~"x|y", le!="1"}[5m])))'
            ' / on (service) group_left sum(parvis_b) > 1e3 or absent(up{job="agenda"}) unless rabbitmq_c offset 5m')
    assert metric_names(expr) == {"parvis_a_bucket", "parvis_b", "up", "rabbitmq_c"}


@pytest.fixture(scope="module")
def exported_labels() -> dict[str, set[str]]:
    """Sample names in the default registry once the gateway, the common metrics and every service's
    modules are imported, as a /metrics page would show them, with the label names of each
    (in a subprocess: a registry of its own)."""
    script = textwrap.dedent(f"""
        import importlib, json
        import prometheus_client
        import gateway.app, services.common.metrics  # noqa: F401 - they register the metrics
        for name in {list(SERVICES)!r}:
            importlib.import_module("services." + name + ".service")
        labels = {{}}
        # The registry's collectors: a labelled metric without children has no sample to read labels from.
        for collector in list(prometheus_client.REGISTRY._collector_to_names):
            names = set(getattr(collector, "_labelnames", ()))
            for family in collector.describe() if hasattr(collector, "describe") else collector.collect():
                if family.type == "counter":
                    samples = [family.name + "_total"]
                elif family.type in ("histogram", "gaugehistogram"):
                    samples = [family.name + s for s in ("_bucket", "_sum", "_count")]
                elif family.type == "summary":
                    samples = [family.name, family.name + "_sum", family.name + "_count"]
                else:
                    samples = [family.name]
                for sample in samples:
                    labels[sample] = sorted(names | ({{"le"}} if sample.endswith("_bucket") else set()))
        print(json.dumps(labels))
    """)
    proc = run([sys.executable, "-c", script])
    assert proc.returncode == 0, proc.stderr
    labels = {name: set(names) for name, names in json.loads(proc.stdout.strip().splitlines()[-1]).items()}
    for name in ("parvis_entrypoint_calls_total", "parvis_http_requests_total",
                 *(f"parvis_{s}_" for s in ("agenda", "satisfaction", "notification"))):
        assert any(n.startswith(name) for n in labels), f"{name}: a module was not imported"
    assert labels["parvis_entrypoint_calls_total"] == {"service", "kind", "entrypoint", "outcome"}
    return labels


def assert_exported(exprs: list[str], exported: set[str], also: set[str] = frozenset()) -> None:
    used = set().union(*(metric_names(e) for e in exprs))
    assert any(n.startswith("parvis_") for n in used), used
    outside = {n for n in used if n.startswith("rabbitmq_") or n == "up"}
    missing = sorted(used - exported - set(also) - outside)
    assert not missing, f"not exported by the code (services/*, gateway/*): {missing}"


# -- PromQL: the label names an expression reads ----------------------------------------------------
TARGET_LABELS = {"job", "instance"}  # added by Prometheus to every scraped sample


def label_problems(expr: str, labels: dict[str, set[str]]) -> list[str]:
    """Labels an expression matches or groups on that its metrics do not have. Only metrics the code
    exports (keys of `labels`) are checked; grouping labels are checked when every metric is one of them."""
    s = re.sub(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'', '""', expr)
    problems = []
    for m in re.finditer(r"([A-Za-z_:][A-Za-z0-9_:]*)\s*\{([^}]*)\}", s):
        name, matchers = m.groups()
        if name in labels:
            for key in re.findall(r"([A-Za-z_][A-Za-z0-9_]*)\s*(?:=~|!~|!=|=)", matchers):
                if key not in labels[name] | TARGET_LABELS:
                    problems.append(f"{name} has no label {key!r}")
    names = metric_names(expr)
    if names and names <= set(labels):
        have = set().union(*(labels[n] for n in names)) | TARGET_LABELS
        for group in re.findall(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)", s):
            for key in filter(None, (k.strip() for k in group.split(","))):
                if key not in have:
                    problems.append(f"no metric of the expression has a label {key!r}")
    return problems


def test_the_label_checker_finds_unknown_labels_and_only_those():
    labels = {"parvis_a_total": {"site", "rating"}, "parvis_b_bucket": {"since", "le"}}
    assert label_problems('sum by (site, rating, instance) (rate(parvis_a_total{site=~"$site", job="x"}[5m]))'
                          ' / on (site) group_left sum by (site) (parvis_a_total)', labels) == []
    assert label_problems('histogram_quantile(0.95, sum by (since, le) (rate(parvis_b_bucket[5m])))', labels) == []
    assert label_problems('sum by (kiosk) (rate(parvis_a_total{status="x", site="a{b}"}[5m]))', labels) == [
        "parvis_a_total has no label 'status'", "no metric of the expression has a label 'kiosk'"]
    # Metrics the code does not export (RabbitMQ's, recorded series) are left to their own checks.
    assert label_problems('sum by (queue) (rabbitmq_queue_messages{queue="q"}) or sum by (x) (a:b{y="1"})',
                          labels) == []


def assert_labels_exist(exprs: list[str], labels: dict[str, set[str]]) -> None:
    problems = {e: p for e in exprs if (p := label_problems(e, labels))}
    assert not problems, f"labels the code does not export: {problems}"


# -- Dockerfile ---------------------------------------------------------------------------------------
def test_the_image_runs_parvis_as_a_non_root_user_in_production_mode():
    stage = dockerfile_final_stage()
    words = [w for w, _ in stage]
    assert stage[0][1].split()[0] == "python:3.11-slim", stage[0]
    users = [args for w, args in stage if w == "USER"]
    assert users and users[-1].split(":")[0] not in ("root", "0"), "the final stage must end as a non-root USER"
    # Nothing after the last USER line switches back.
    assert words.index("ENTRYPOINT") > max(i for i, w in enumerate(words) if w == "USER")
    assert json.loads(dict(stage)["ENTRYPOINT"]) == ["parvis"]
    assert json.loads(dict(stage)["CMD"]) == ["gateway"]
    env = " ".join(args for w, args in stage if w == "ENV")
    assert "PYTHONUNBUFFERED=1" in env and "PARVIS_ENV=production" in env


def test_the_image_build_copies_every_package_and_pip_installs_the_project():
    text = (ROOT / "Dockerfile").read_text()
    assert re.search(r"^RUN .*\bpip install \.(\s|$)", text, re.M), "the project is installed with `pip install .`"
    copied = {src.rstrip("/") for line in re.findall(r"^COPY (?!--from)(.*)$", text, re.M)
              for src in line.split()[:-1]}
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    patterns = pyproject["tool"]["setuptools"]["packages"]["find"]["include"]
    packages = {p.name for p in ROOT.iterdir() if (p / "__init__.py").exists()
                and any(re.fullmatch(pat.replace("*", ".*"), p.name) for pat in patterns)}
    assert packages == {"core", "parvis", "services", "gateway", "contracts"}
    needed = packages | {"pyproject.toml", pyproject["project"]["readme"]}
    assert needed <= copied, f"not copied into the image: {sorted(needed - copied)}"
    for src in copied:
        assert (ROOT / src).exists(), src
    ignored = {line.strip().rstrip("/") for line in (ROOT / ".dockerignore").read_text().splitlines()
               if line.strip() and not line.startswith("#")}
    assert {".venv", "var", ".git"} <= ignored
    assert not needed & ignored, needed & ignored


# -- docker-compose.yml -------------------------------------------------------------------------------
def default(value: str) -> str:
    """The value compose uses where optional variables are unset: each `${VAR:-default}` becomes `default`."""
    return re.sub(r"\$\{\w+:-([^}]*)\}", r"\1", value)


def test_docker_compose_validates_the_file():
    proc = run([tool("docker-compose"), "-f", "docker-compose.yml", "config", "-q"],
               env=compose_env(**COMPOSE_SECRETS))
    assert proc.returncode == 0, proc.stderr


@pytest.mark.parametrize("missing", sorted(COMPOSE_SECRETS))
def test_docker_compose_refuses_to_run_without_each_secret(missing):
    """No default credentials (the broker ran with guest/guest, Grafana with admin/admin)."""
    env = compose_env(**{k: v for k, v in COMPOSE_SECRETS.items() if k != missing})
    proc = run([tool("docker-compose"), "-f", "docker-compose.yml", "config", "-q"], env=env)
    assert proc.returncode != 0 and missing in proc.stderr, proc.stderr


def test_every_process_is_built_from_the_dockerfile_and_runs_as_its_user(compose):
    services = compose["services"]
    assert set(PROCESSES) <= set(services), set(PROCESSES) - set(services)
    for name in PROCESSES:
        svc = services[name]
        build = svc["build"] if isinstance(svc["build"], dict) else {"context": svc["build"]}
        assert (ROOT / build["context"]).resolve() == ROOT, name
        assert build.get("dockerfile", "Dockerfile") == "Dockerfile", name
        assert "user" not in svc, f"{name} overrides the image's non-root USER"
        assert svc["command"] == (["gateway"] if name == "gateway" else ["service", name]), name
        env = svc["environment"]
        assert env["PARVIS_ENV"] == "production", name
        assert env["PARVIS_SECRET"].startswith("${PARVIS_SECRET:?"), name
        assert "guest" not in env["AMQP_URL"] and "${RABBITMQ_PASSWORD:?" in env["AMQP_URL"], name
        assert default(env["AMQP_URL"]).endswith("@rabbitmq:5672/"), name
        assert default(env["MONGO_URL"]) == "mongodb://mongo:27017/?replicaSet=rs0", name
    for name in SERVICES:
        assert str(services[name]["environment"]["PARVIS_METRICS_PORT"]) == str(SERVICE_METRICS_PORT), name
    assert f"{GATEWAY_PORT}:{GATEWAY_PORT}" in [str(p) for p in services["gateway"]["ports"]]


def test_every_process_has_a_healthcheck_that_reads_its_own_endpoint(compose):
    services = compose["services"]
    for name in PROCESSES:
        test = services[name]["healthcheck"]["test"]
        assert test[:3] == ["CMD", "python", "-c"], (name, test)
        compile(test[3], f"{name} healthcheck", "exec")  # the one-liner is valid Python
        url = (f"http://127.0.0.1:{GATEWAY_PORT}/healthz" if name == "gateway"
               else f"http://127.0.0.1:{SERVICE_METRICS_PORT}/metrics")
        assert url in test[3], (name, test)
    for name in ("mongo", "rabbitmq"):
        assert services[name]["healthcheck"]["test"], name


def test_every_process_waits_for_a_healthy_mongo_and_rabbitmq(compose):
    services = compose["services"]
    for name in PROCESSES:
        depends = services[name]["depends_on"]
        for infra in ("mongo", "rabbitmq"):
            assert depends[infra] == {"condition": "service_healthy"}, (name, infra)
    gateway = services["gateway"]["depends_on"]
    for name in SERVICES:
        assert gateway[name] == {"condition": "service_healthy"}, name


def test_mongo_is_a_replica_set_that_initiates_itself(compose):
    mongo = compose["services"]["mongo"]
    assert mongo["image"].startswith("mongo:7")
    command = mongo["command"] if isinstance(mongo["command"], list) else mongo["command"].split()
    assert command[command.index("--replSet") + 1] == "rs0"
    check = " ".join(mongo["healthcheck"]["test"])
    assert "mongosh" in check and "rs.initiate" in check and "mongo:27017" in check


def test_rabbitmq_has_the_management_and_prometheus_plugins(compose):
    rabbit = compose["services"]["rabbitmq"]
    assert rabbit["image"] == "rabbitmq:3.13-management"
    assert "./infra/rabbitmq/enabled_plugins:/etc/rabbitmq/enabled_plugins:ro" in rabbit["volumes"]
    plugins = (INFRA / "rabbitmq" / "enabled_plugins").read_text().strip()
    assert re.fullmatch(r"\[[a-z_,\s]*\]\.", plugins), "an Erlang list of atoms ending with a dot"
    assert {"rabbitmq_management", "rabbitmq_prometheus"} <= set(re.findall(r"[a-z_]+", plugins))
    assert rabbit["healthcheck"]["test"] == ["CMD", "rabbitmq-diagnostics", "-q", "ping"]


def test_mounted_files_exist_and_data_lives_in_named_volumes(compose):
    declared = set(compose["volumes"])
    assert {"mongo-data", "rabbitmq-data", "prometheus-data", "grafana-data"} <= declared
    for name, svc in compose["services"].items():
        for volume in svc.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (ROOT / source).exists(), f"{name} mounts {source}, which does not exist"
            else:
                assert source in declared, f"{name} uses an undeclared volume {source}"
    grafana = compose["services"]["grafana"]["volumes"]
    assert "./infra/grafana/provisioning:/etc/grafana/provisioning:ro" in grafana
    assert "./infra/grafana/dashboards:/var/lib/grafana/dashboards:ro" in grafana
    assert "./infra/prometheus:/etc/prometheus:ro" in compose["services"]["prometheus"]["volumes"]
    assert "--config.file=/etc/prometheus/prometheus.yml" in compose["services"]["prometheus"]["command"]


# -- Prometheus ---------------------------------------------------------------------------------------
def test_promtool_accepts_the_config_and_its_rule_files():
    proc = run([tool("promtool"), "check", "config", str(PROMETHEUS_CONFIG)])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"{len(RULE_FILES)} rule files found" in proc.stdout + proc.stderr


@pytest.mark.parametrize("path", RULE_FILES, ids=[p.name for p in RULE_FILES])
def test_promtool_accepts_the_rules(path):
    proc = promtool_check_rules(path)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_the_scrape_config_has_a_job_per_process_on_the_right_port(prometheus):
    assert prometheus["global"]["scrape_interval"] == "15s"
    assert prometheus["rule_files"] == ["rules/*.yml"]
    jobs = {job["job_name"]: job for job in prometheus["scrape_configs"]}
    assert set(PROCESSES) | {"rabbitmq"} <= set(jobs), set(PROCESSES) - set(jobs)

    def targets(job: dict) -> set[str]:
        found = {t for sc in job.get("static_configs", []) for t in sc["targets"]}
        found |= {f"{n}:{sd['port']}" for sd in job.get("dns_sd_configs", []) for n in sd["names"]}
        return found

    for name in SERVICES:
        assert targets(jobs[name]) == {f"{name}:{SERVICE_METRICS_PORT}"}, name
    assert targets(jobs["gateway"]) == {f"gateway:{GATEWAY_PORT}"}
    assert jobs["gateway"].get("metrics_path", "/metrics") == "/metrics"
    assert targets(jobs["rabbitmq"]) == {"rabbitmq:15692"}


def test_rules_read_only_metrics_and_labels_the_code_exports(rules, exported_labels):
    all_rules = [r for group in rules["groups"] for r in group["rules"]]
    recorded = {r["record"] for r in all_rules if "record" in r}
    assert_exported([r["expr"] for r in all_rules], set(exported_labels), also=recorded)
    assert_labels_exist([r["expr"] for r in all_rules], exported_labels)
    alerts = {r["alert"] for r in all_rules if "alert" in r}
    assert {"ServiceDown", "HighErrorRatio", "OutboxBacklog", "EventsDeadLettered", "GatewaySlow",
            "KioskOffline", "SatisfactionAlertOpen", "NotificationBacklogHigh", "NotificationFailuresHigh",
            "GatewayPublicCopyStale", "ConsultationPaperMismatchOpen", "ConsultationVotesSlow"} <= alerts


def test_the_alerts_fire_when_they_should(tmp_path):
    """promtool's rule unit tests: a service down, one absent, a dead letter, errors above 5 %."""
    up = "".join(f"      - series: 'up{{job=\"{job}\", instance=\"{job}:1\"}}'\n        values: '1x12'\n"
                 for job in ("consultation", "satisfaction", "payment_link", "gateway"))
    promtool_test_rules(tmp_path, f"""\
      - series: 'up{{job="agenda", instance="10.0.0.5:9100"}}'
        values: '0x12'
{up}      - series: 'parvis_events_handled_total{{service="satisfaction", handler="on_event_published", outcome="dead_lettered"}}'
        values: '0 1 1 1 1 1'
      - series: 'parvis_entrypoint_calls_total{{service="agenda", kind="rpc", entrypoint="search_events", outcome="ok"}}'
        values: '0+60x12'
      - series: 'parvis_entrypoint_calls_total{{service="agenda", kind="rpc", entrypoint="search_events", outcome="error"}}'
        values: '0+12x12'
    alert_rule_test:
      - eval_time: 3m
        alertname: ServiceDown
        exp_alerts:
          - exp_labels: {{severity: critical, job: agenda, instance: "10.0.0.5:9100"}}
            exp_annotations:
              summary: "agenda (10.0.0.5:9100) ne répond plus"
              description: "Prometheus n'arrive plus à lire /metrics de 10.0.0.5:9100 depuis 1 minute."
      - eval_time: 3m
        alertname: ServiceAbsent
        exp_alerts:
          - exp_labels: {{severity: critical, job: notification}}
            exp_annotations:
              summary: "Aucune instance de notification ne fonctionne"
      - eval_time: 5m
        alertname: EventsDeadLettered
        exp_alerts:
          - exp_labels: {{severity: warning, service: satisfaction, handler: on_event_published}}
            exp_annotations:
              summary: "satisfaction.on_event_published : événements en lettres mortes"
              description: "Voir `parvis dlq list`, corriger, puis `parvis dlq replay`."
      - eval_time: 11m
        alertname: HighErrorRatio
        exp_alerts:
          - exp_labels: {{severity: warning, service: agenda}}
            exp_annotations:
              summary: "agenda : 16.67% des appels échouent"
""")


def test_the_domain_alerts_fire_when_they_should(tmp_path):
    """Kiosks offline (two satisfaction instances report the same count: one alert, not a sum), permanent
    notification failures above 10 % on one channel only, a gateway whose public copy stops syncing."""
    promtool_test_rules(tmp_path, f"""\
      - series: 'parvis_satisfaction_kiosks_offline{{job="satisfaction", instance="a:9100", site="mairie"}}'
        values: '0 0 1x30'
      - series: 'parvis_satisfaction_kiosks_offline{{job="satisfaction", instance="b:9100", site="mairie"}}'
        values: '0 0 1x30'
      - series: 'parvis_satisfaction_kiosks_offline{{job="satisfaction", instance="a:9100", site="piscine"}}'
        values: '0x32'
      - series: 'parvis_notifications_total{{job="notification", instance="a:9100", channel="all", status="created"}}'
        values: '0+100x30'
      - series: 'parvis_notifications_total{{job="notification", instance="a:9100", channel="email", status="delivered"}}'
        values: '0+60x30'
      - series: 'parvis_notifications_total{{job="notification", instance="a:9100", channel="email", status="permanent-failure"}}'
        values: '0+12x30'
      - series: 'parvis_notifications_total{{job="notification", instance="a:9100", channel="sms", status="delivered"}}'
        values: '0+60x30'
      - series: 'parvis_notifications_total{{job="notification", instance="a:9100", channel="sms", status="permanent-failure"}}'
        values: '0+1x30'
      - series: 'parvis_gateway_public_sync_age_seconds{{job="gateway", instance="gw1:8000"}}'
        values: '0+60x10'
      - series: 'parvis_gateway_public_sync_age_seconds{{job="gateway", instance="gw2:8000"}}'
        values: '3x10'
    alert_rule_test:
      - eval_time: 10m
        alertname: KioskOffline
        exp_alerts: []
      - eval_time: 18m
        alertname: KioskOffline
        exp_alerts:
          - exp_labels: {{severity: warning, site: mairie}}
            exp_annotations:
              summary: "Site mairie : 1 borne(s) de satisfaction hors ligne"
              description: "Borne muette pendant les heures d'ouverture : vérifier son alimentation et son réseau."
      - eval_time: 5m
        alertname: NotificationFailuresHigh
        exp_alerts: []
      - eval_time: 16m
        alertname: NotificationFailuresHigh
        exp_alerts:
          - exp_labels: {{severity: warning, channel: email}}
            exp_annotations:
              summary: "Notifications email : 16.67% des envois échouent définitivement"
              description: "Vérifier le fournisseur (SMTP, SMS) et les adresses refusées."
      - eval_time: 5m
        alertname: GatewayPublicCopyStale
        exp_alerts: []
      - eval_time: 8m
        alertname: GatewayPublicCopyStale
        exp_alerts:
          - exp_labels: {{severity: warning, job: gateway, instance: "gw1:8000"}}
            exp_annotations:
              summary: "Passerelle gw1:8000 : copie publique de l'agenda synchronisée il y a 8m 0s"
              description: "Les requêtes publiques lisent une copie figée : vérifier l'agenda et la connexion RabbitMQ de la passerelle."
""")


def test_the_consultation_alerts_fire_when_they_should(tmp_path):
    """Paper sheets whose entries disagree: an alert after two hours open (two instances report the same count:
    one alert), none while a mismatch is settled within the hour; votes slow above 1 s at p95 for 10 minutes."""
    promtool_test_rules(tmp_path, f"""\
      - series: 'parvis_consultation_paper_mismatches{{job="consultation", instance="a:9100"}}'
        values: '0 0 1x150 0x30'
      - series: 'parvis_consultation_paper_mismatches{{job="consultation", instance="b:9100"}}'
        values: '0 0 1x150 0x30'
      - series: 'parvis_consultation_time_to_vote_seconds_bucket{{job="consultation", instance="a:9100", kind="ballot", le="1.0"}}'
        values: '0+100x20 2000+10x20'
      - series: 'parvis_consultation_time_to_vote_seconds_bucket{{job="consultation", instance="a:9100", kind="ballot", le="2.5"}}'
        values: '0+100x20 2000+100x20'
      - series: 'parvis_consultation_time_to_vote_seconds_bucket{{job="consultation", instance="a:9100", kind="ballot", le="+Inf"}}'
        values: '0+100x20 2000+100x20'
    alert_rule_test:
      - eval_time: 1h
        alertname: ConsultationPaperMismatchOpen
        exp_alerts: []
      - eval_time: 2h30m
        alertname: ConsultationPaperMismatchOpen
        exp_alerts:
          - exp_labels: {{severity: warning}}
            exp_annotations:
              summary: "1 feuille(s) de bulletins papier en désaccord depuis plus de 2 heures"
              description: "Deux saisies d'une même feuille diffèrent : une nouvelle saisie de la feuille les départage (paperEntries, statut MISMATCH). D'ici là, ses bulletins ne sont pas comptés."
      - eval_time: 3h
        alertname: ConsultationPaperMismatchOpen
        exp_alerts: []
      - eval_time: 15m
        alertname: ConsultationVotesSlow
        exp_alerts: []
      - eval_time: 40m
        alertname: ConsultationVotesSlow
        exp_alerts:
          - exp_labels: {{severity: warning, kind: ballot}}
            exp_annotations:
              summary: "Votes (ballot) : p95 à 2.417s pour enregistrer une réponse ou un bulletin"
""")


def test_the_payment_alerts_fire_when_they_should(tmp_path):
    """The provider failing (more than 5 unavailable calls in 10 minutes, for 10 minutes) pages; a payment without
    its result for over 30 minutes, reported by the reconciling replica, warns after 15 minutes; an anomaly warns
    at once and stops an hour later."""
    promtool_test_rules(tmp_path, f"""\
      - series: 'parvis_payment_link_provider_errors_total{{job="payment_link", instance="a:9100", provider="payfip", operation="fetch_result", kind="unavailable"}}'
        values: '0x10 0+2x40 80x30'
      - series: 'parvis_payment_link_unconfirmed{{job="payment_link", instance="a:9100", age="over30m"}}'
        values: '0x10 2x40 0x30'
      - series: 'parvis_payment_link_unconfirmed{{job="payment_link", instance="b:9100", age="over30m"}}'
        values: '0x80'
      - series: 'parvis_payment_link_anomalies_total{{job="payment_link", instance="a:9100", kind="bill_paid_twice"}}'
        values: '0x10 1x100'
    alert_rule_test:
      - eval_time: 5m
        alertname: PaymentProviderErrors
        exp_alerts: []
      - eval_time: 40m
        alertname: PaymentProviderErrors
        exp_alerts:
          - exp_labels: {{severity: critical, provider: payfip}}
            exp_annotations:
              summary: "Paiements : le prestataire payfip échoue (20 appels en erreur en 10 minutes)"
              description: "Les payeurs ne peuvent pas commencer un paiement et les résultats ne sont pas relus : vérifier l'accès au prestataire (PARVIS_PAYFIP_URL, réseau, certificats) et son état."
      - eval_time: 1h15m
        alertname: PaymentProviderErrors
        exp_alerts: []
      - eval_time: 20m
        alertname: PaymentsUnconfirmed
        exp_alerts: []
      - eval_time: 40m
        alertname: PaymentsUnconfirmed
        exp_alerts:
          - exp_labels: {{severity: warning}}
            exp_annotations:
              summary: "2 paiement(s) sans résultat du prestataire depuis plus de 30 minutes"
              description: "Ni la notification ni la réconciliation n'ont donné de résultat : vérifier le prestataire (P5 prolongé, injoignable) ; le paiement passe en échec (P0020) à la fin de sa session de 90 minutes si rien ne vient."
      - eval_time: 30m
        alertname: PaymentAnomaly
        exp_alerts:
          - exp_labels: {{severity: warning, kind: bill_paid_twice}}
            exp_annotations:
              summary: "Paiement anormal (bill_paid_twice) : un agent doit vérifier et rembourser"
              description: "Le prestataire a confirmé un paiement pour un lien déjà terminé, ou une facture a été payée deux fois : voir les journaux du service payment_link (anomaly) et rembourser le payeur."
      - eval_time: 1h30m
        alertname: PaymentAnomaly
        exp_alerts: []
""")


# -- Grafana ------------------------------------------------------------------------------------------
def dashboard_panels(dashboard: dict) -> list[dict]:
    panels = []
    for panel in dashboard["panels"]:
        panels.append(panel)
        panels.extend(panel.get("panels", []))  # a collapsed row holds its panels
    return panels


def dashboard_variables(dashboard: dict) -> set[str]:
    return {v["name"] for v in dashboard["templating"]["list"]}


GRAFANA_VARIABLES = {"__rate_interval", "__interval", "__range"}


def dashboard_exprs(dashboard: dict) -> list[str]:
    """The panels' queries as Prometheus would receive them: $__rate_interval is a duration, and every
    dashboard variable (multi-value, "All" = .*) appears in regex matchers only."""
    exprs = [t["expr"] for p in dashboard_panels(dashboard) for t in p.get("targets", []) if t.get("expr")]
    exprs = [re.sub(r"\$\{?__rate_interval\}?", "1m", e) for e in exprs]
    return [re.sub(r"\$\{?(\w+)\}?", ".*", e) for e in exprs]


def test_grafana_provisions_the_prometheus_datasource_and_the_dashboards_folder(compose):
    datasources = yaml.safe_load((INFRA / "grafana/provisioning/datasources/prometheus.yml").read_text())
    (ds,) = datasources["datasources"]
    assert (ds["type"], ds["uid"], ds["url"]) == ("prometheus", "prometheus", "http://prometheus:9090")
    providers = yaml.safe_load((INFRA / "grafana/provisioning/dashboards/parvis.yml").read_text())["providers"]
    assert [p["options"]["path"] for p in providers] == ["/var/lib/grafana/dashboards"]
    assert all(p["type"] == "file" for p in providers)


def test_every_dashboard_file_has_its_own_uid_and_title():
    dashboards = [json.loads(p.read_text()) for p in DASHBOARD_FILES]
    assert {p.name for p in DASHBOARD_FILES} >= {"platform.json", "services.json"}
    for key in ("uid", "title"):
        values = [d[key] for d in dashboards]
        assert len(values) == len(set(values)), f"dashboards share a {key}: {values}"


def test_the_dashboard_is_grafana_json(dashboard):
    assert dashboard["title"].startswith("Parvis — ")
    assert dashboard["description"]
    assert 36 <= dashboard["schemaVersion"] <= 41
    assert dashboard["uid"] and re.fullmatch(r"[A-Za-z0-9_-]{1,40}", dashboard["uid"])
    assert dashboard["editable"] is False  # provisioned from the repo: edits belong in the file
    for variable in dashboard["templating"]["list"]:
        assert variable["type"] == "query" and variable["datasource"]["uid"] == "prometheus", variable["name"]
        assert variable["includeAll"] and variable["allValue"] == ".*", variable["name"]
        assert re.fullmatch(r"label_values\(\w+, ?\w+\)", variable["query"]["query"]), variable["name"]
    panels = dashboard_panels(dashboard)
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    cells = {}
    for panel in panels:
        assert {"type", "title", "gridPos"} <= set(panel), panel.get("title")
        g = panel["gridPos"]
        assert g["x"] >= 0 and g["w"] > 0 and g["x"] + g["w"] <= 24, panel["title"]
        for x in range(g["x"], g["x"] + g["w"]):
            for y in range(g["y"], g["y"] + g["h"]):
                assert (x, y) not in cells, f"{panel['title']} overlaps {cells[(x, y)]}"
                cells[(x, y)] = panel["title"]
        if panel["type"] != "row":
            assert panel["targets"], panel["title"]
            assert panel["datasource"]["uid"] == "prometheus", panel["title"]
            refs = [t["refId"] for t in panel["targets"]]
            assert len(refs) == len(set(refs)), panel["title"]
            for target in panel["targets"]:
                assert target["datasource"]["uid"] == "prometheus", panel["title"]
    refs = set(re.findall(r"\$\{?(\w+)", " ".join(t["expr"] for p in panels for t in p.get("targets", []))))
    assert refs <= dashboard_variables(dashboard) | GRAFANA_VARIABLES, f"undefined dashboard variables: {refs}"
    exprs = [t["expr"] for p in panels for t in p.get("targets", [])]
    for name in dashboard_variables(dashboard):
        for expr in exprs:  # a multi-value variable only works in a regex matcher
            assert not re.search(rf'[^~]"\$\{{?{name}\b', expr), (name, expr)


def test_the_platform_dashboard_has_a_service_variable():
    dashboard = json.loads((DASHBOARDS / "platform.json").read_text())
    assert dashboard["title"] == "Parvis — plateforme"
    (variable,) = [v for v in dashboard["templating"]["list"] if v["name"] == "service"]
    assert "parvis_entrypoint_calls_total" in json.dumps(variable["query"])


def test_the_services_dashboard_has_a_site_variable():
    dashboard = json.loads((DASHBOARDS / "services.json").read_text())
    assert dashboard["title"] == "Parvis — agenda, bornes, notifications"
    (variable,) = dashboard["templating"]["list"]
    assert variable["name"] == "site"
    assert variable["query"]["query"] == "label_values(parvis_satisfaction_votes_counted_total,site)"
    rows = [p["title"] for p in dashboard["panels"] if p["type"] == "row"]
    assert [r.split(" ")[0] for r in rows] == ["Agenda", "Bornes", "Notifications"], rows
    exprs = [t["expr"] for p in dashboard_panels(dashboard) for t in p.get("targets", [])]
    assert all("$__rate_interval" in e for e in exprs if "rate(" in e)
    assert any('{site=~"$site"}' in e for e in exprs)


def test_every_dashboard_variable_reads_a_label_the_code_exports(dashboard, exported_labels):
    for variable in dashboard["templating"]["list"]:
        metric, label = re.fullmatch(r"label_values\((\w+), ?(\w+)\)", variable["query"]["query"]).groups()
        assert metric in exported_labels, (variable["name"], metric)
        assert label in exported_labels[metric], (variable["name"], metric, label)
        assert variable["query"]["metric"] == metric and variable["query"]["label"] == label, variable["name"]


def test_every_dashboard_query_parses(dashboard, tmp_path):
    exprs = dashboard_exprs(dashboard)
    assert len(exprs) >= 15
    rules = {"groups": [{"name": "dashboard", "rules": [
        {"record": f"dashboard:query_{i}", "expr": e} for i, e in enumerate(exprs)]}]}
    path = tmp_path / "dashboard-queries.yml"
    path.write_text(yaml.safe_dump(rules, allow_unicode=True))
    proc = promtool_check_rules(path)
    assert proc.returncode == 0, proc.stdout + proc.stderr


# The metrics each dashboard is there to show (a dashboard not listed here gets the generic checks only).
DASHBOARD_METRICS = {
    "Parvis — plateforme": (
        "parvis_entrypoint_calls_total", "parvis_entrypoint_duration_seconds_bucket", "parvis_workers_in_flight",
        "parvis_workers_max", "parvis_outbox_pending", "parvis_outbox_lag_seconds_bucket",
        "parvis_events_handled_total", "parvis_http_requests_total", "parvis_http_request_duration_seconds_bucket",
        "parvis_rpc_client_duration_seconds_bucket", "rabbitmq_queue_messages_ready"),
    "Parvis — agenda, bornes, notifications": (
        "parvis_agenda_transitions_total", "parvis_agenda_moderation_queue",
        "parvis_agenda_time_to_decision_seconds_bucket", "parvis_gateway_public_events",
        "parvis_gateway_public_sync_age_seconds", "parvis_gateway_public_syncs_total",
        "parvis_gateway_fast_path_total", "parvis_satisfaction_votes_counted_total",
        "parvis_satisfaction_votes_received_total", "parvis_satisfaction_happy_index",
        "parvis_satisfaction_ingest_lag_seconds_bucket", "parvis_satisfaction_kiosks_offline",
        "parvis_satisfaction_alerts_open", "parvis_notifications_total",
        "parvis_notification_delivery_seconds_bucket", "parvis_notification_backlog",
        "parvis_notification_retries_total"),
    "Parvis — consultations et budgets participatifs": (
        "parvis_consultation_participations_total", "parvis_consultation_time_to_vote_seconds_bucket",
        "parvis_consultation_open", "parvis_consultation_paper_mismatches", "parvis_consultation_refused_total",
        "parvis_consultation_cast_round_ballots_bucket"),
    "Parvis — paiements en ligne": (
        "parvis_payment_link_payments_total", "parvis_payment_link_collected_cents_total",
        "parvis_payment_link_refunded_cents_total", "parvis_payment_link_provider_call_seconds_bucket",
        "parvis_payment_link_provider_errors_total", "parvis_payment_link_unconfirmed",
        "parvis_payment_link_anomalies_total", "parvis_payment_link_reconciled_total"),
}


def test_every_dashboard_query_reads_metrics_and_labels_the_code_exports(dashboard, exported_labels):
    exprs = dashboard_exprs(dashboard)
    assert_exported(exprs, set(exported_labels))
    assert_labels_exist(exprs, exported_labels)
    used = set().union(*(metric_names(e) for e in exprs))
    for wanted in DASHBOARD_METRICS.get(dashboard["title"], ()):
        assert wanted in used, f"no panel shows {wanted}"


# -- Service-level objectives (infra/prometheus/rules/slo.yml) ------------------------------------------------
SLOS = {"agenda_availability", "agenda_latency", "kiosk_votes_accepted", "vote_counted", "notification_delivery",
        "login_code_delivery"}
SLO_WINDOWS = ("5m", "30m", "1h", "6h", "3d")


def test_every_slo_has_an_objective_and_its_error_ratio_over_every_window(rules):
    all_rules = [r for group in rules["groups"] for r in group["rules"]]
    objectives = {r["labels"]["slo"]: float(re.fullmatch(r"vector\(([\d.]+)\)", r["expr"]).group(1))
                  for r in all_rules if r.get("record") == "slo:objective:ratio"}
    assert set(objectives) == SLOS and all(0.9 < o < 1 for o in objectives.values())
    for window in SLO_WINDOWS:
        recorded = [r for r in all_rules if r.get("record") == f"slo:error_ratio:rate{window}"]
        assert {r["labels"]["slo"] for r in recorded} == SLOS, window
        assert all(f"[{window}]" in r["expr"] and not re.search(r"\[(?!%s\])" % window, r["expr"]) for r in recorded)
    burns = {r["alert"]: r for r in all_rules if r.get("alert", "").startswith("SLOErrorBudgetBurn")}
    pairs = {name: (re.findall(r"slo:error_ratio:rate(\w+)", r["expr"]),
                    re.findall(r"\((\d+(?:\.\d+)?) \* \(1 - slo:objective:ratio\)\)", r["expr"]))
             for name, r in burns.items()}
    assert pairs == {"SLOErrorBudgetBurnFast": (["1h", "5m"], ["14.4", "14.4"]),
                     "SLOErrorBudgetBurnMedium": (["6h", "30m"], ["6", "6"]),
                     "SLOErrorBudgetBurnSlow": (["3d", "6h"], ["1", "1"])}
    readme = (ROOT / "README.md").read_text()
    for slo in SLOS:
        assert f"`{slo}`" in readme, f"the README does not describe the SLO {slo}"
    for alert in {r["alert"] for r in all_rules if "alert" in r}:
        assert f"`{alert}`" in readme, f"the README's runbook has no entry for {alert}"


def promtool_test_slo(tmp_path: Path, interval: str, input_series: str, tests: str) -> None:
    (tmp_path / "slo-test.yml").write_text(f"""\
rule_files: {json.dumps([str(p) for p in RULE_FILES])}
evaluation_interval: {interval}
tests:
  - interval: {interval}
    input_series:
{input_series}    alert_rule_test:
{tests}""")
    proc = run([tool("promtool"), "test", "rules", str(tmp_path / "slo-test.yml")])
    assert proc.returncode == 0, proc.stdout + proc.stderr


def ops(field: str, kind: str, ok: str, error: str, rejected: str = "0+0x200") -> str:
    return "".join(f"      - series: 'parvis_graphql_operations_total{{job=\"gateway\", instance=\"gw:8000\", type=\"{kind}\", "
                   f"field=\"{field}\", outcome=\"{outcome}\"}}'\n        values: '{values}'\n"
                   for outcome, values in (("ok", ok), ("error", error), ("rejected", rejected)))


def test_a_fast_burn_pages_within_minutes_and_stops_soon_after_the_fix(tmp_path):
    """The public agenda failing 5 % of its queries (50 times its 0.1 % budget) for 30 minutes: the 1 h / 5 min pair
    pages within minutes (the 6 h / 30 min one too); 10 minutes after the fix, the 5 min window has cleared and
    the fast alert stops, though the hour still holds the errors. Refusals (the callers' mistakes) burn nothing, and
    kiosks failing 0.1 % (under their 0.5 % budget) page nobody."""
    promtool_test_slo(tmp_path, "1m", ops("events", "query", "0+1000x60", "0+50x30 1500+0x30", "0+300x60")
                      + ops("submitKioskVotes", "mutation", "0+1000x60", "0+1x60"), """\
      - eval_time: 2m
        alertname: SLOErrorBudgetBurnFast
        exp_alerts: []
      - eval_time: 6m
        alertname: SLOErrorBudgetBurnFast
        exp_alerts:
          - exp_labels: {severity: critical, window: 1h, slo: agenda_availability}
            exp_annotations:
              summary: "SLO agenda_availability : budget d'erreur consommé 14,4 fois trop vite (1 h et 5 min)"
              description: "À ce rythme, 2 % du budget de 30 jours part en une heure. Voir le runbook du README, « agenda_availability »."
      - eval_time: 20m
        alertname: SLOErrorBudgetBurnMedium
        exp_alerts:
          - exp_labels: {severity: critical, window: 6h, slo: agenda_availability}
            exp_annotations:
              summary: "SLO agenda_availability : budget d'erreur consommé 6 fois trop vite (6 h et 30 min)"
              description: "À ce rythme, 5 % du budget de 30 jours part en six heures. Voir le runbook du README, « agenda_availability »."
      - eval_time: 42m
        alertname: SLOErrorBudgetBurnFast
        exp_alerts: []
""")


def test_a_slow_burn_opens_a_ticket_and_pages_nobody(tmp_path):
    """2 % of sign-in codes failing (twice the 1 % budget): over hours only the 3 d / 6 h pair fires, as a warning.
    Codes delivered late (over 30 s) count as bad as well as those never delivered."""
    series = """\
      - series: 'parvis_login_code_delivery_seconds_count{job="notification", instance="n:9100"}'
        values: '0+100x120'
      - series: 'parvis_login_code_delivery_seconds_bucket{job="notification", instance="n:9100", le="30.0"}'
        values: '0+99x120'
      - series: 'parvis_login_code_failures_total{job="notification", instance="n:9100"}'
        values: '0+1x120'
"""
    promtool_test_slo(tmp_path, "5m", series, """\
      - eval_time: 7h
        alertname: SLOErrorBudgetBurnFast
        exp_alerts: []
      - eval_time: 7h
        alertname: SLOErrorBudgetBurnMedium
        exp_alerts: []
      - eval_time: 7h
        alertname: SLOErrorBudgetBurnSlow
        exp_alerts:
          - exp_labels: {severity: warning, window: 3d, slo: login_code_delivery}
            exp_annotations:
              summary: "SLO login_code_delivery : budget d'erreur consommé au rythme qui l'épuise en 30 jours (3 j et 6 h)"
              description: "10 % du budget de 30 jours est parti en trois jours. Un ticket, pas un appel : voir le runbook du README."
""")


# -- the `ha` profile ----------------------------------------------------------------------------------------
def test_docker_compose_validates_the_ha_profile():
    proc = run([tool("docker-compose"), "-f", "docker-compose.yml", "--profile", "ha", "config", "-q"],
               env=compose_env(**COMPOSE_SECRETS))
    assert proc.returncode == 0, proc.stderr


def test_the_ha_profile_is_a_three_node_rabbitmq_cluster_and_a_three_member_replica_set(compose):
    services = compose["services"]
    rabbits = sorted(n for n, s in services.items() if s.get("profiles") == ["ha"] and re.fullmatch(r"rabbitmq-\d", n))
    mongos = sorted(n for n, s in services.items() if s.get("profiles") == ["ha"] and n.startswith("mongo-"))
    assert rabbits == ["rabbitmq-1", "rabbitmq-2", "rabbitmq-3"] and mongos == ["mongo-1", "mongo-2", "mongo-3"]
    assert all(not s.get("profiles") for n, s in services.items() if n not in rabbits + mongos + ["rabbitmq-lb"]), \
        "only the ha members are in a profile: `docker compose up` runs what it ran before"
    conf = (INFRA / "rabbitmq" / "cluster.conf").read_text()
    assert "cluster_formation.peer_discovery_backend = classic_config" in conf
    assert sorted(re.findall(r"nodes\.\d+ = rabbit@([\w-]+)", conf)) == rabbits
    for name in rabbits:
        svc = services[name]
        assert svc["hostname"] == name  # the node's name, hence its data directory and its peers' view of it
        assert "./infra/rabbitmq/cluster.conf:/etc/rabbitmq/conf.d/20-cluster.conf:ro" in svc["volumes"]
        assert f"{name}-data:/var/lib/rabbitmq" in svc["volumes"]
        assert svc["environment"]["RABBITMQ_ERLANG_COOKIE"].startswith("${RABBITMQ_ERLANG_COOKIE")
    for name in mongos:
        command = services[name]["command"]
        assert command[command.index("--replSet") + 1] == "rs-ha" and services[name]["hostname"] == name
    check = " ".join(services["mongo-1"]["healthcheck"]["test"])
    assert sorted(re.findall(r"host:'([\w-]+):27017'", check)) == mongos and "_id:'rs-ha'" in check
    # The services are pointed at them by variables; the defaults stay the single broker and database.
    env = services["agenda"]["environment"]
    assert "@${PARVIS_RABBITMQ_HOST:-rabbitmq}:5672/" in env["AMQP_URL"]
    assert env["MONGO_URL"] == "mongodb://${PARVIS_MONGO_HOSTS:-mongo:27017}/?replicaSet=${PARVIS_MONGO_REPLICA_SET:-rs0}"
    assert env["PARVIS_QUEUE_TYPE"] == "${PARVIS_QUEUE_TYPE:-classic}"
    header = (ROOT / "docker-compose.yml").read_text().split("services:")[0]
    assert "PARVIS_RABBITMQ_HOST=rabbitmq-lb" in header and "PARVIS_MONGO_REPLICA_SET=rs-ha" in header
    assert "PARVIS_MONGO_HOSTS=mongo-1:27017,mongo-2:27017,mongo-3:27017" in header
    # The load balancer in front of the cluster sends connections to each of its nodes.
    lb = services["rabbitmq-lb"]
    assert lb["profiles"] == ["ha"] and "./infra/rabbitmq/haproxy.cfg:/usr/local/etc/haproxy/haproxy.cfg:ro" in lb["volumes"]
    haproxy = (INFRA / "rabbitmq" / "haproxy.cfg").read_text()
    assert sorted(re.findall(r"server ([\w-]+) \1:5672 check", haproxy)) == rabbits
    for name in rabbits:  # the cluster's nodes take the same credentials as the single broker
        assert services[name]["environment"]["RABBITMQ_DEFAULT_PASS"].startswith("${RABBITMQ_PASSWORD:?"), name
