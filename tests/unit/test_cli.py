"""The `parvis` command's offline parts: tokens print only the token; schema --check tells staleness."""
import subprocess
import sys

from gateway import auth
from tests.support import ROOT, TEST_SECRET


def parvis(*args, env_extra=None):
    import os

    env = {**os.environ, "PARVIS_SECRET": TEST_SECRET, **(env_extra or {})}
    return subprocess.run([sys.executable, "-m", "parvis.cli", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=60)


def test_token_prints_only_a_verifiable_token():
    out = parvis("token", "organizer", "--org", "org-commune-labege", "--subject", "alice", "--ttl", "60")
    assert out.returncode == 0, out.stderr
    [line] = out.stdout.splitlines()
    caller = auth.verify(TEST_SECRET, line)
    assert (caller.role, caller.org, caller.subject) == ("organizer", "org-commune-labege", "alice")


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
