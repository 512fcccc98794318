"""satisfaction service contracts: the platform's ping for now; the service's own issue fills the rest."""
from __future__ import annotations

from contracts.platform import declare_ping

SERVICE = "satisfaction"
PING = declare_ping(SERVICE)
