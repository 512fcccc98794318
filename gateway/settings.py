"""The gateway's settings: the platform's (core/settings.py); the gateway's own limits join them here."""
from __future__ import annotations

from dataclasses import dataclass

from core.settings import BaseSettings, setting


def _paths(raw: str) -> tuple[str, ...]:
    from gateway.compiled import PATHS

    names = tuple(p.strip() for p in raw.split(",") if p.strip() and p.strip() != "none")
    unknown = set(names) - set(PATHS)
    if unknown:
        raise ValueError(f"a list of {', '.join(PATHS)}, or none")
    return names


@dataclass(frozen=True)
class GatewaySettings(BaseSettings):
    """What the gateway reads besides the platform's settings (HTTP port, secret, public URL, …)."""

    compiled_paths: tuple[str, ...] = setting("PARVIS_COMPILED_PATHS", ("events", "votes"), "GraphQL operations "
                                              "answered without graphql-core's executor (gateway/compiled/): "
                                              "`events`, `votes`, or `none`", parse=_paths, shown="`events,votes`")
