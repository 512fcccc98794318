"""Contracts: envelopes are validated both ways, and every declared event is consumed somewhere."""
import ast
import uuid
from pathlib import Path

import pytest

from contracts import ContractViolation, build_envelope, event_contracts, parse_envelope, rpc_contracts

ORG = {"id": "org-x", "slug": "x", "name": "X", "kind": "commune"}


def test_envelope_carries_the_required_fields_in_utc():
    env = build_envelope("agenda.organization_upserted", ORG, "agenda", "corr-1")
    assert uuid.UUID(env["event_id"])
    assert env["type"] == "agenda.organization_upserted" and env["version"] == 1
    assert env["producer"] == "agenda" and env["correlation_id"] == "corr-1"
    assert env["occurred_at"].endswith("Z")
    envelope, data = parse_envelope(env)
    assert data.slug == "x" and envelope.occurred_at.utcoffset().total_seconds() == 0


@pytest.mark.parametrize("event_type, data, producer, reason", [
    ("agenda.unknown", ORG, "agenda", "not declared"),
    ("agenda.organization_upserted", {**ORG, "kind": "club"}, "agenda", "kind"),
    ("agenda.organization_upserted", {**ORG, "typo": 1}, "agenda", "typo"),
    ("agenda.organization_upserted", ORG, "notification", "may not emit"),
])
def test_building_an_invalid_event_is_refused(event_type, data, producer, reason):
    with pytest.raises(ContractViolation, match=reason):
        build_envelope(event_type, data, producer)


@pytest.mark.parametrize("mutate", [
    lambda e: e.pop("event_id"),
    lambda e: e.update(event_id="not-a-uuid"),
    lambda e: e.update(version=2),
    lambda e: e["data"].pop("name"),
    lambda e: e.update(type="agenda.nope"),
])
def test_parsing_an_invalid_message_is_refused(mutate):
    env = build_envelope("agenda.organization_upserted", ORG, "agenda")
    mutate(env)
    with pytest.raises(ContractViolation):
        parse_envelope(env)


def test_every_service_answers_ping():
    names = set(rpc_contracts())
    for service in ("agenda", "consultation", "satisfaction", "payment_link", "notification"):
        assert f"{service}.ping" in names


ROOT = Path(__file__).resolve().parents[2]
# Events declared for consumers outside the platform (partners, later issues) would be listed here.
# Receipts for partners: published on the bus for other systems, called back to webhooks by the
# notification service from its own records (not by consuming them).
EXTERNAL_ONLY: set[str] = {"notification.delivered", "notification.failed"}
# The consultation service's events that nothing in the platform reacts to (the notification service announces
# openings, results, budget phases and decisions on projects; the agenda shows a scheduled consultation's meetings):
# published for partners' systems.
EXTERNAL_ONLY |= {"consultation.closed", "consultation.archived", "consultation.project_submitted"}


def _handled_event_types() -> set[str]:
    """Event types named in @handle_event(...) decorators across services/ (service.py and its mixins)."""
    found = set()
    contracts = {c.__name__: t for t, c in event_contracts().items()}
    for path in (ROOT / "services").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "handle_event":
                arg = node.args[1]
                if isinstance(arg, ast.Constant):
                    found.add(arg.value)
                elif isinstance(arg, ast.Attribute) and isinstance(arg.value, ast.Attribute):
                    found.add(contracts.get(arg.value.attr))
    return found


def test_every_declared_event_is_handled_somewhere_or_listed_as_external():
    """Guard test, after GOV.UK Notify's test_all_queues_used: no event goes nowhere."""
    unhandled = set(event_contracts()) - _handled_event_types() - EXTERNAL_ONLY
    assert not unhandled, f"events nobody consumes: {sorted(unhandled)}"


def test_every_dispatched_event_type_is_declared():
    declared = set(event_contracts())
    used = set()
    for path in (ROOT / "services").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "build" and node.args:
                arg = node.args[0]
                if isinstance(arg, ast.Constant):
                    used.add(arg.value)
    assert used <= declared, sorted(used - declared)
