"""The `parvis` command's offline parts: tokens print only the token; schema --check tells staleness."""
import subprocess
import sys

import pytest

from gateway import auth
from core.settings import SERVICES
from tests.support import ROOT, TEST_SECRET


def parvis(*args, env_extra=None):
    import os

    env = {**os.environ, "PARVIS_SECRET": TEST_SECRET, **(env_extra or {})}
    return subprocess.run([sys.executable, "-m", "parvis.cli", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=60)


def test_token_prints_only_a_verifiable_token():
    out = parvis("token", "agent", "--subject", "alice", "--ttl", "60")
    assert out.returncode == 0, out.stderr
    [line] = out.stdout.splitlines()
    caller = auth.verify(TEST_SECRET, line)
    assert (caller.role, caller.subject) == ("agent", "alice")


@pytest.mark.parametrize("ttl", ["0", "-5", str(400 * 86400)])
def test_token_refuses_a_lifetime_that_makes_no_sense(ttl):
    out = parvis("token", "agent", "--ttl", ttl)
    assert out.returncode == 2 and out.stdout == "" and "--ttl" in out.stderr


def test_token_from_another_directory_signs_with_the_platform_secret_and_never_makes_one(tmp_path):
    """Run from elsewhere, `parvis token` read ./var (a new secret, silently): the gateway refused its tokens."""
    import os

    data, elsewhere = tmp_path / "data", tmp_path / "elsewhere"
    data.mkdir(), elsewhere.mkdir()
    (data / "secret").write_text("s" * 48)
    env = {k: v for k, v in os.environ.items() if k not in ("PARVIS_SECRET", "PARVIS_DATA_DIR")}
    out = subprocess.run([sys.executable, "-m", "parvis.cli", "token", "agent"], cwd=elsewhere,
                         env={**env, "PARVIS_DATA_DIR": str(data), "PYTHONPATH": str(ROOT)},
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and auth.verify("s" * 48, out.stdout.strip()).role == "agent"
    empty = tmp_path / "empty"
    out = subprocess.run([sys.executable, "-m", "parvis.cli", "token", "agent"], cwd=elsewhere,
                         env={**env, "PARVIS_DATA_DIR": str(empty), "PYTHONPATH": str(ROOT)},
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and "no secret" in out.stderr and out.stdout == ""
    assert not (empty / "secret").exists() and not (elsewhere / "var").exists()


def test_token_refuses_a_missing_scope_with_a_message():
    out = parvis("token", "kiosk")
    assert out.returncode == 2 and out.stdout == "" and "--kiosk" in out.stderr


def test_schema_check_passes_on_the_committed_files():
    out = parvis("schema", "--check")
    assert out.returncode == 0, out.stderr


def test_help_lists_the_commands():
    out = parvis("--help")
    for command in ("up", "service", "gateway", "token", "revoke", "dlq", "seed", "schema"):
        assert command in out.stdout


def test_replicas_are_read_for_every_service_or_one_and_refused_when_they_make_no_sense():
    from parvis.supervisor import parse_replicas

    assert parse_replicas(None) == {s: 1 for s in SERVICES}
    assert parse_replicas(["2"]) == {s: 2 for s in SERVICES}
    assert parse_replicas(["2,notification=1", "satisfaction=3"]) == {
        "agenda": 2, "consultation": 2, "satisfaction": 3, "payment_link": 2, "notification": 1}
    for bad in ("0", "x", "kiosk=2", "satisfaction=", "17"):
        with pytest.raises(SystemExit) as exc:
            parse_replicas([bad])
        assert "--replicas" in str(exc.value)


def test_each_replica_gets_its_own_metrics_port_after_the_first_ones(monkeypatch, tmp_path):
    from parvis.supervisor import Supervisor

    monkeypatch.setenv("PARVIS_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("PARVIS_METRICS_PORT_BASE", "9101")
    sup = Supervisor([], replicas={"agenda": 1, "consultation": 1, "satisfaction": 2, "payment_link": 1,
                                   "notification": 3})
    assert sup.metrics_ports() == {"agenda": [9101], "consultation": [9102], "satisfaction": [9103, 9108],
                                   "payment_link": [9104], "notification": [9105, 9110, 9115]}
    children = sup.children_for("notification", 0)
    assert [c.name for c in children] == ["notification.1", "notification.2", "notification.3"]
    assert [c.env["PARVIS_METRICS_PORT"] for c in children] == ["9105", "9110", "9115"]
    assert [c.name for c in sup.children_for("agenda", 0)] == ["agenda"]
