"""The compiled GraphQL paths' contract with Strawberry: the private parts they use are checked, and anything
unexpected turns them off (Strawberry then answers every request)."""
from types import SimpleNamespace

import pytest

from gateway.compiled import CompiledPaths, strawberry_internals
from gateway.schema import build_schema
from gateway.settings import GatewaySettings


def test_strawberry_is_the_version_and_shape_the_compiled_paths_were_written_against():
    """Fails loudly on an upgrade of strawberry-graphql: read gateway/compiled/strawberry_internals.py, check
    each part against the new version, then move STRAWBERRY_VERSION (and the pin in pyproject.toml)."""
    assert strawberry_internals.check() == []


def test_a_changed_strawberry_turns_the_compiled_paths_off(monkeypatch):
    monkeypatch.setattr(strawberry_internals, "version", lambda _: "9.9.9")
    assert "strawberry-graphql 9.9.9 installed" in strawberry_internals.check()[0]
    gateway = SimpleNamespace(schema=build_schema(), public_agenda=None, settings=SimpleNamespace(production=False))
    paths = CompiledPaths(gateway)
    assert paths.events is None and paths.votes is None and paths.links is None


def test_the_setting_picks_the_paths(tmp_path):
    def read(value):
        return GatewaySettings.from_env({"PARVIS_DATA_DIR": str(tmp_path), "PARVIS_COMPILED_PATHS": value})

    assert read("events").compiled_paths == ("events",) and read("none").compiled_paths == ()
    assert read("votes, events").compiled_paths == ("votes", "events")
    with pytest.raises(ValueError, match="PARVIS_COMPILED_PATHS"):
        read("everything")
    gateway = SimpleNamespace(schema=build_schema(), public_agenda=None, settings=SimpleNamespace(production=False))
    assert CompiledPaths(gateway, ("votes",)).events is None and CompiledPaths(gateway, ("votes",)).votes
    assert CompiledPaths(gateway, ("links",)).links and CompiledPaths(gateway, ("votes",)).links is None
