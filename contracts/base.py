"""The envelope every event travels in, and the registries of RPC and event contracts.

The registries are filled as the service modules declare their contracts; `contracts/__init__.py` imports
them all, so whoever imports anything from `contracts` sees every contract. This module imports none of them.
"""
from __future__ import annotations

import uuid
from datetime import datetime, timezone
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator


class ContractViolation(Exception):
    """A payload that does not match its contract: never retried, it goes to the dead letters."""


class Model(BaseModel):
    """Base of every contract model: unknown fields are refused, so typos do not pass silently."""

    model_config = ConfigDict(extra="forbid", frozen=False)


class Envelope(Model):
    event_id: str = Field(description="UUID of this event; consumers deduplicate on it")
    type: str = Field(description="'<service>.<event>', also the routing key on '<service>.events'")
    version: int = Field(ge=1)
    occurred_at: datetime = Field(description="When the fact happened, UTC")
    producer: str
    correlation_id: str | None = None
    data: dict[str, Any]

    @field_validator("occurred_at")
    @classmethod
    def _utc(cls, value: datetime) -> datetime:
        if value.tzinfo is None:
            return value.replace(tzinfo=timezone.utc)
        return value.astimezone(timezone.utc)

    @field_validator("event_id")
    @classmethod
    def _uuid(cls, value: str) -> str:
        uuid.UUID(value)
        return value


_EVENTS: dict[str, type["EventContract"]] = {}
_RPC: dict[str, "RpcContract"] = {}


class EventContract(Model):
    """Subclass with `event_type = "<service>.<name>"` to declare an event and its data."""

    event_type: ClassVar[str]
    version: ClassVar[int] = 1
    summary: ClassVar[str] = ""

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if "event_type" in cls.__dict__:
            if cls.event_type in _EVENTS:
                raise RuntimeError(f"event {cls.event_type} declared twice")
            _EVENTS[cls.event_type] = cls


class RpcContract:
    """One RPC method: `service.method`, its request (keyword arguments) and its reply."""

    def __init__(self, service: str, method: str, request: type[Model], reply: Any, summary: str = ""):
        self.service, self.method, self.request, self.reply, self.summary = service, method, request, reply, summary
        self.name = f"{service}.{method}"
        if self.name in _RPC:
            raise RuntimeError(f"rpc {self.name} declared twice")
        _RPC[self.name] = self


class Empty(Model):
    pass


def event_contracts() -> dict[str, type[EventContract]]:
    """Every declared event (the package `contracts` imports every service's module, which declares them)."""
    return dict(_EVENTS)


def rpc_contracts() -> dict[str, RpcContract]:
    return dict(_RPC)


def build_envelope(event_type: str, data: dict | BaseModel, producer: str, correlation_id: str | None = None) -> dict:
    """Validate `data` against the contract of `event_type` and wrap it; returns a JSON-ready dict."""
    contract = event_contracts().get(event_type)
    if contract is None:
        raise ContractViolation(f"event type {event_type!r} is not declared in contracts/")
    if not event_type.startswith(producer + "."):
        raise ContractViolation(f"{producer} may not emit {event_type}")
    try:
        model = data if isinstance(data, contract) else contract.model_validate(
            data.model_dump() if isinstance(data, BaseModel) else data
        )
    except ValidationError as exc:
        raise ContractViolation(f"{event_type}: {exc}") from None
    envelope = Envelope(
        event_id=str(uuid.uuid4()),
        type=event_type,
        version=contract.version,
        occurred_at=datetime.now(timezone.utc),
        producer=producer,
        correlation_id=correlation_id,
        data=model.model_dump(mode="json"),
    )
    return envelope.model_dump(mode="json")


def parse_envelope(body: Any) -> tuple[Envelope, EventContract]:
    """Validate an incoming message: the envelope, then its data against the declared contract."""
    try:
        envelope = Envelope.model_validate(body)
    except ValidationError as exc:
        raise ContractViolation(f"invalid envelope: {exc}") from None
    contract = event_contracts().get(envelope.type)
    if contract is None:
        raise ContractViolation(f"event type {envelope.type!r} is not declared in contracts/")
    if envelope.version != contract.version:
        raise ContractViolation(f"{envelope.type} version {envelope.version} is not {contract.version}")
    try:
        data = contract.model_validate(envelope.data)
    except ValidationError as exc:
        raise ContractViolation(f"{envelope.type}: {exc}") from None
    return envelope, data
