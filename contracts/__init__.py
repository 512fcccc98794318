"""Contracts of the Parvis bus: every RPC payload and every event, as pydantic v2 models.

One module per service declares its RPC methods (request and reply models) and its events; this
package collects them into one registry that producers, consumers, the gateway and the AsyncAPI
generator all read.
"""
from contracts.base import (  # noqa: F401
    ContractViolation,
    Envelope,
    EventContract,
    RpcContract,
    build_envelope,
    event_contracts,
    parse_envelope,
    rpc_contracts,
)

# Declaring is importing: each service's module fills the registries of base.py.
from contracts import platform, agenda, consultation, satisfaction, payment_link, notification  # noqa: F401,E402
