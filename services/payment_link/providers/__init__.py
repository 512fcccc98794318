"""Payment providers behind one small interface: start a session, read its trusted result, refund.

The service never believes what reaches its notification URL: a notification only names a provider id
(`notification_id`), whose result is then read back with `fetch_result`. Two providers implement it:
PayFiP over its SOAP web service (`payfip.PayfipProvider`, zeep) and a sandbox card provider for the demo
(`sandbox.SandboxCardProvider`); in development and tests both talk to parvis/payfip_sim.py over loopback,
with the same code as in production. Failures are ProviderError with a French message.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Protocol, runtime_checkable

from contracts.errors import BadInput, ParvisError, ServiceUnavailable


class ProviderError(Exception):
    """A provider call that did not give an answer we can use; `message` is French, for an agent."""

    retryable = False

    def __init__(self, message: str, *, provider_code: str | None = None, field: str | None = None,
                 detail: str | None = None):
        super().__init__(message)
        self.message, self.provider_code, self.field, self.detail = message, provider_code, field, detail

    def to_parvis_error(self) -> ParvisError:
        """What crosses the bus: the request was refused (BadInput, naming our field) or the provider failed."""
        return ServiceUnavailable(self.message, self.field)


class ProviderRefused(ProviderError):
    """The provider refused our request (PayFiP: FonctionnelleErreur): sending it again changes nothing."""

    def to_parvis_error(self) -> ParvisError:
        return BadInput(self.message, self.field)


class ProviderUnavailable(ProviderError):
    """Timeout, connection refused, a technical fault or an unreadable answer: try again later."""

    retryable = True


@dataclass(frozen=True)
class Capabilities:
    refunds: bool  # the provider refunds by API (else: the public accountant, marked by an agent)
    cancel_session: bool  # a running session can be stopped (else: wait for its result)
    reuse_window: timedelta  # a second « Payer » within it gives the same session again


@dataclass(frozen=True)
class SessionRequest:
    """What a provider needs to take one payment (the régie's settings included)."""

    payment_id: str
    amount: int
    reference: str
    description: str
    objet: str
    email: str
    language: str
    notify_url: str
    return_url: str
    exer: str = ""
    numcli: str = ""
    payfip_mode: str = "T"


@dataclass(frozen=True)
class Session:
    provider_id: str
    next_url: str


@dataclass(frozen=True)
class ProviderResult:
    """The provider's trusted answer about one session. `status` is the provider's own code (PayFiP:
    P, V, R, Z, A, or the fault codes P5 and P1; sandbox: created, success, declined, cancelled, expired,
    error), mapped onto our states by domain.provider_outcome."""

    provider: str
    provider_id: str
    status: str
    amount: int | None = None
    reference: str | None = None
    numcli: str | None = None
    email: str | None = None
    paid_at: datetime | None = None
    authorisation_code: str | None = None
    raw: dict = field(default_factory=dict)


@dataclass(frozen=True)
class RefundResult:
    provider_refund_id: str | None
    status: str  # submitted | success | error


@runtime_checkable
class PaymentProvider(Protocol):
    name: str
    capabilities: Capabilities

    def start_session(self, request: SessionRequest) -> Session:
        """Opens a session; returns the provider's id for it and where to send the payer."""

    def fetch_result(self, provider_id: str) -> ProviderResult:
        """The provider's trusted answer, read from the provider itself (never from a notification)."""

    def notification_id(self, body: str, content_type: str | None) -> str | None:
        """The provider id named by an (untrusted) notification body, or None when it names none."""

    def refund(self, provider_id: str, amount: int, amount_available: int, refund_id: str) -> RefundResult:
        """Refunds part of a paid session (capabilities.refunds); raises ProviderRefused otherwise."""

    def cancel_session(self, provider_id: str) -> None:
        """Stops a running session (capabilities.cancel_session); raises ProviderRefused otherwise."""


def build_providers(payfip_url: str | None = None, sandbox_url: str | None = None,
                    timeout: float = 15.0) -> dict[str, PaymentProvider]:
    """The providers of a process: PayFiP at `payfip_url` (the DGFiP's when None; the simulator's in
    development), the sandbox card provider when `sandbox_url` is set (development and demo only)."""
    from services.payment_link.providers.payfip import DGFIP_URL, PayfipProvider
    from services.payment_link.providers.sandbox import SandboxCardProvider

    providers: dict[str, PaymentProvider] = {"payfip": PayfipProvider(payfip_url or DGFIP_URL, timeout=timeout)}
    if sandbox_url:
        providers["sandbox"] = SandboxCardProvider(sandbox_url, timeout=timeout)
    return providers
