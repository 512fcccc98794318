"""The gateway's settings: the platform's (core/settings.py); the gateway's own limits join them here."""
from __future__ import annotations

from dataclasses import dataclass

from core.settings import BaseSettings


@dataclass(frozen=True)
class GatewaySettings(BaseSettings):
    """What the gateway reads: the platform's settings (HTTP port, secret, public URL, …)."""
