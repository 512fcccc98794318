"""Quorum queues (PARVIS_QUEUE_TYPE=quorum) on a single RabbitMQ node of the test's own: the handlers', retry and
dead-letter queues are declared quorum, events flow through them, a dead letter survives a restart of the node
and is listed and replayed by `parvis dlq`; a service set for the other type refuses to start and says why."""
from __future__ import annotations

import subprocess
import sys
from types import SimpleNamespace

import pytest
from kombu import Connection
from nameko.standalone.events import get_event_exchange

from contracts import build_envelope
from core import deadletters as dlq
from parvis.seed import demo_data
from tests.support import ROOT, Platform, rpc_call, wait_until

pytestmark = pytest.mark.slow


@pytest.fixture
def platform(mongo, node):
    mongo.drop_all()
    p = Platform(mongo, SimpleNamespace(url=node.url), PARVIS_QUEUE_TYPE="quorum")
    yield p
    p.stop_reporting_crashes()


def test_events_flow_through_quorum_queues_and_dead_letters_survive_a_restart(platform, node, mongo):
    platform.service("notification")
    platform.service("agenda")
    rpc_call(node.url, "agenda", "import_reference_data", **demo_data())
    contacts = mongo.client().parvis_notification.organization_contacts
    wait_until(lambda: contacts.count_documents({}) == 43, 30, 0.2, "every organisation handled")

    queues = {q["name"]: q for q in node.queues("name", "type", "durable", "arguments")}
    handler = "evt-agenda-agenda.organization_upserted--notification.on_organization_upserted"
    assert queues[handler]["type"] == "quorum" and queues[handler]["durable"]
    assert queues["parvis.dead-letters"]["type"] == "quorum"
    retries = [q for name, q in queues.items() if name.startswith(handler + ".retry-")]
    assert len(retries) == 2 and all(q["type"] == "quorum" for q in retries)  # PARVIS_RETRY_DELAYS=0.2,0.4
    assert not [n for n, q in queues.items() if n.startswith("evt-") and q["type"] != "quorum"]

    # A message that breaks its contract is dead-lettered at once; the node restarts; it is still there.
    bad = build_envelope("agenda.organization_upserted", {"id": "org-bad", "slug": "bad", "name": "Bad",
                                                          "kind": "association"}, "agenda")
    bad["data"]["kind"] = "not-a-kind"
    with Connection(node.url) as conn:
        conn.Producer().publish(bad, exchange=get_event_exchange("agenda", {}), routing_key="agenda.organization_upserted",
                                serializer="json", delivery_mode=2, retry=True)
    wait_until(lambda: [r for r in dlq.list_dead_letters(node.url) if r["event_id"] == bad["event_id"]], 20, 0.2,
               "the dead letter")
    node.stop()
    node.start()
    rows = wait_until(lambda: [r for r in dlq.list_dead_letters(node.url) if r["event_id"] == bad["event_id"]], 30,
                      0.5, "the dead letter after the restart")
    assert rows[0]["handler"] == "notification.on_organization_upserted" and "ContractViolation" in rows[0]["error"]
    assert dlq.replay(node.url, {bad["event_id"]})[0]["queue"] == handler
    wait_until(lambda: [r for r in dlq.list_dead_letters(node.url) if r["event_id"] == bad["event_id"]], 20, 0.2,
               "dead-lettered again (it still breaks its contract)")


def test_a_service_set_for_the_other_type_refuses_to_start_and_says_why(platform, node):
    platform.service("notification")  # declares its queues as quorum
    proc = subprocess.run([sys.executable, "-m", "parvis.cli", "service", "notification"], cwd=ROOT, timeout=60,
                          env={**platform.env, "PARVIS_QUEUE_TYPE": "classic", "PARVIS_METRICS_PORT": "0"},
                          capture_output=True, text=True)
    assert proc.returncode != 0
    assert "PARVIS_QUEUE_TYPE=classic" in proc.stdout + proc.stderr and "Switching to quorum queues" in \
        proc.stdout + proc.stderr, (proc.stdout + proc.stderr)[-3000:]
