"""The gateway's settings: the platform's (core/settings.py); the gateway's own limits join them here."""
from __future__ import annotations

from dataclasses import dataclass

from core.settings import BaseSettings, setting


def _networks(raw: str) -> tuple:
    from gateway.limits import parse_networks

    return parse_networks(raw)


def _paths(raw: str) -> tuple[str, ...]:
    from gateway.compiled import PATHS

    names = tuple(p.strip() for p in raw.split(",") if p.strip() and p.strip() != "none")
    unknown = set(names) - set(PATHS)
    if unknown:
        raise ValueError(f"a list of {', '.join(PATHS)}, or none")
    return names


def _batched(raw: str) -> tuple[str, ...]:
    from gateway.batching import BATCHED

    names = tuple(p.strip() for p in raw.split(",") if p.strip() and p.strip() != "none")
    unknown = set(names) - set(BATCHED)
    if unknown:
        raise ValueError(f"a list of {', '.join(BATCHED)}, or none")
    return names


@dataclass(frozen=True)
class GatewaySettings(BaseSettings):
    """What the gateway reads besides the platform's settings (HTTP port, secret, public URL, …)."""

    trusted_proxies: tuple = setting("PARVIS_TRUSTED_PROXIES", (), "reverse proxies (addresses or CIDR networks, "
                                     "comma-separated) whose X-Forwarded-For gives the client's address; from anybody "
                                     "else the header is ignored", parse=_networks, shown="none")
    rate_limit: float = setting("PARVIS_RATE_LIMIT", 100.0, "requests a second an anonymous client (by address) may "
                                "make on average, per gateway process (0: no limit)")
    rate_burst: float = setting("PARVIS_RATE_BURST", 300.0, "requests an anonymous client may make at once")
    compiled_paths: tuple[str, ...] = setting("PARVIS_COMPILED_PATHS", ("events", "votes", "ballots", "links"),
                                              "GraphQL operations answered without graphql-core's executor "
                                              "(gateway/compiled/): `events`, `votes`, `ballots`, `links`, or `none`",
                                              parse=_paths, shown="`events,votes,ballots,links`")
    rpc_batches: tuple[str, ...] = setting("PARVIS_RPC_BATCHES", ("consultation.cast_budget_ballot",
                                                                 "payment_link.create_payment_link",
                                                                 "payment_link.handle_notification"),
                                           "hot writes whose calls arriving together go to their service as one RPC "
                                           "(gateway/batching.py), or `none`", parse=_batched,
                                           shown="`consultation.cast_budget_ballot,payment_link.create_payment_link,"
                                                 "payment_link.handle_notification`")
    rpc_batches_in_flight: int = setting("PARVIS_RPC_BATCHES_IN_FLIGHT", 2, "batches of one method a gateway process "
                                         "has in flight at once; a second leaves once as many calls as the smallest "
                                         "in flight are waiting, the calls arriving meanwhile wait for the next one")
