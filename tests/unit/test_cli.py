"""The `parvis` command's offline parts: tokens print only the token; schema --check tells staleness."""
import subprocess
import sys

import pytest

from gateway import auth
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
