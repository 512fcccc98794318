"""Reliable event handlers in a real nameko container, over the real broker and database:
retries with backoff, then the dead-letter queue, replay from it, idempotency by event_id."""
import itertools
import os
import subprocess
import sys

import time

import eventlet
import pymongo
import pytest
from nameko.amqp.publish import Publisher
from nameko.standalone.events import get_event_exchange

from contracts import build_envelope
from contracts.errors import BadInput
from core import deadletters as dlq
from services.common import events as events_module
from services.common.events import handle_event
from services.common.metrics import EVENTS_HANDLED
from tests.support import ROOT, wait_until

ORG = {"id": "org-x", "slug": "x", "name": "X", "kind": "association"}
_names = itertools.count()


def make_service(behaviour):
    """A service class with one handler of agenda.organization_upserted, named uniquely per test."""
    calls = []

    class Service:
        name = f"reliability_probe_{os.getpid()}_{next(_names)}"

        @handle_event("agenda", "agenda.organization_upserted")
        def on_org(self, data, envelope):
            calls.append(envelope.event_id)
            behaviour(len(calls))

    return Service, calls


def publish(amqp_url, body):
    exchange = get_event_exchange("agenda", {})
    Publisher(amqp_url, declare=[exchange]).publish(body, exchange=exchange, routing_key="agenda.organization_upserted")


def dead_letters_of(amqp_url, service_name):
    return [r for r in dlq.list_dead_letters(amqp_url) if (r["handler"] or "").startswith(service_name + ".")]


@pytest.fixture
def start(container_factory, parvis_env):
    def go(service_cls):
        container = container_factory(service_cls, {"AMQP_URI": parvis_env["amqp_url"], "serializer": "json"})
        container.start()
        return container
    return go


def test_a_failing_handler_is_retried_with_backoff_then_dead_lettered_then_replayed(start, parvis_env):
    failing = {"on": True}

    def behaviour(n):
        if failing["on"]:
            raise RuntimeError(f"boom {n}")

    Service, calls = make_service(behaviour)
    start(Service)
    env = build_envelope("agenda.organization_upserted", ORG, "agenda")
    publish(parvis_env["amqp_url"], env)

    rows = wait_until(lambda: dead_letters_of(parvis_env["amqp_url"], Service.name), 15, 0.2, "a dead letter")
    assert len(calls) == 3, "one try and two retries (PARVIS_RETRY_DELAYS=0.2,0.4)"
    [row] = rows
    assert row["event_id"] == env["event_id"] and row["attempts"] == 3 and "boom 3" in row["error"]
    eventlet.sleep(1.0)
    assert len(calls) == 3, "no poison loop: nothing more after the dead letter"

    # Listing leaves the dead letter in place; the operator fixes the cause and replays it.
    assert dead_letters_of(parvis_env["amqp_url"], Service.name)
    failing["on"] = False
    out = subprocess.run([sys.executable, "-m", "parvis.cli", "dlq", "replay", row["id"]], cwd=ROOT,
                         env={**os.environ}, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "replayed 1 message" in out.stdout
    wait_until(lambda: len(calls) == 4, 10, 0.1, "the replayed event handled")
    assert not dead_letters_of(parvis_env["amqp_url"], Service.name)


def test_an_event_delivered_three_times_is_handled_once(start, parvis_env):
    Service, calls = make_service(lambda n: None)
    start(Service)
    env = build_envelope("agenda.organization_upserted", ORG, "agenda")
    for _ in range(3):
        publish(parvis_env["amqp_url"], env)
    other = build_envelope("agenda.organization_upserted", ORG, "agenda")
    publish(parvis_env["amqp_url"], other)
    wait_until(lambda: len(calls) == 2, 10, 0.05, "two distinct events handled")
    eventlet.sleep(0.5)
    assert calls.count(env["event_id"]) == 1 and calls.count(other["event_id"]) == 1
    duplicates = EVENTS_HANDLED.labels(Service.name, "on_org", "duplicate")._value.get()
    assert duplicates == 2


@pytest.fixture
def inbox_of(parvis_env):
    client = pymongo.MongoClient(parvis_env["mongo_url"])
    yield lambda service: client[f"parvis_{service.name}"]["_inbox"]
    client.close()


def test_a_claim_held_by_another_process_defers_the_event_until_its_lease_runs_out(start, parvis_env,
                                                                                  monkeypatch, inbox_of):
    """Another replica (or one killed between claim and done) holds the claim: the delivery is
    deferred, not run twice and not dropped; once the lease runs out it is taken over, once."""
    monkeypatch.setattr(events_module, "INBOX_LEASE", 1.5)
    Service, calls = make_service(lambda n: None)
    env = build_envelope("agenda.organization_upserted", ORG, "agenda")
    inbox = inbox_of(Service)
    inbox.insert_one({"_id": f"on_org:{env['event_id']}", "type": env["type"], "state": "running",
                      "owner": "a-process-that-died", "at": time.time()})
    start(Service)
    publish(parvis_env["amqp_url"], env)
    eventlet.sleep(0.8)
    assert calls == [], "the claim of another process is honoured"
    assert EVENTS_HANDLED.labels(Service.name, "on_org", "deferred")._value.get() >= 1
    wait_until(lambda: calls, 10, 0.05, "the event taken over after the lease")
    eventlet.sleep(0.5)
    assert calls == [env["event_id"]]
    row = inbox.find_one({"_id": f"on_org:{env['event_id']}"})
    assert row["state"] == "done" and row["owner"] != "a-process-that-died"
    # A redelivery afterwards is a plain duplicate.
    publish(parvis_env["amqp_url"], env)
    wait_until(lambda: EVENTS_HANDLED.labels(Service.name, "on_org", "duplicate")._value.get() == 1, 5, 0.05,
               "the redelivery acknowledged as a duplicate")
    assert calls == [env["event_id"]]


def test_a_failed_handler_releases_its_claim_so_its_retry_runs(start, parvis_env, inbox_of):
    Service, calls = make_service(lambda n: (_ for _ in ()).throw(RuntimeError("once")) if n == 1 else None)
    start(Service)
    env = build_envelope("agenda.organization_upserted", ORG, "agenda")
    publish(parvis_env["amqp_url"], env)
    wait_until(lambda: len(calls) == 2, 10, 0.05, "the retry after the failure")
    inbox = inbox_of(Service)
    assert inbox.find_one({"_id": f"on_org:{env['event_id']}"})["state"] == "done"


def test_a_message_that_breaks_its_contract_goes_straight_to_the_dead_letters(start, parvis_env):
    Service, calls = make_service(lambda n: None)
    start(Service)
    env = build_envelope("agenda.organization_upserted", ORG, "agenda")
    env["data"]["kind"] = "club"  # not in the contract
    publish(parvis_env["amqp_url"], env)
    [row] = wait_until(lambda: dead_letters_of(parvis_env["amqp_url"], Service.name), 10, 0.1, "a dead letter")
    assert row["attempts"] == 0 and "ContractViolation" in row["error"]
    assert calls == []
    dlq.replay(parvis_env["amqp_url"], {row["id"]})  # leave the shared queue clean: it fails again
    [row] = wait_until(lambda: dead_letters_of(parvis_env["amqp_url"], Service.name), 10, 0.1, "a dead letter")
    assert calls == []


def test_a_domain_refusal_is_not_retried(start, parvis_env):
    def refuse(n):
        raise BadInput("Organisation inconnue", "id")

    Service, calls = make_service(refuse)
    start(Service)
    publish(parvis_env["amqp_url"], build_envelope("agenda.organization_upserted", ORG, "agenda"))
    [row] = wait_until(lambda: dead_letters_of(parvis_env["amqp_url"], Service.name), 10, 0.1, "a dead letter")
    assert len(calls) == 1 and row["attempts"] == 1 and "BadInput" in row["error"]


# -- batches: @handle_event(..., batch=N) ----------------------------------------------------------------------------
def make_batch_service(behaviour, size=20):
    """A service whose handler of agenda.organization_upserted takes batches; `behaviour(batch_number, items)` answers
    {index: exception} or raises. Records each batch's event ids."""
    batches = []

    class Service:
        name = f"reliability_batch_probe_{os.getpid()}_{next(_names)}"

        @handle_event("agenda", "agenda.organization_upserted", batch=size)
        def on_org(self, items):
            batches.append([envelope.event_id for _, envelope in items])
            assert all(data.id == ORG["id"] for data, _ in items), "each item's data parsed against its contract"
            return behaviour(len(batches), items)

    return Service, batches


def handled(batches):
    return [event_id for batch in batches for event_id in batch]


def test_a_batch_handler_takes_the_events_waiting_together_and_each_once(start, parvis_env, inbox_of):
    def slow_first(n, items):
        if n == 1:
            eventlet.sleep(0.5)  # the others arrive meanwhile and wait for the next batch

    Service, batches = make_batch_service(slow_first)
    start(Service)
    envs = [build_envelope("agenda.organization_upserted", ORG, "agenda") for _ in range(25)]
    for env in envs:
        publish(parvis_env["amqp_url"], env)
    for env in envs[:5]:  # delivered twice
        publish(parvis_env["amqp_url"], env)
    wait_until(lambda: len(set(handled(batches))) == 25, 15, 0.05, "every event handled")
    eventlet.sleep(0.5)
    assert sorted(handled(batches)) == sorted(e["event_id"] for e in envs), "each once, the copies not run"
    assert max(len(b) for b in batches) > 1 and max(len(b) for b in batches) <= 20, [len(b) for b in batches]
    inbox = inbox_of(Service)
    assert inbox.count_documents({"state": "done"}) == 25
    assert EVENTS_HANDLED.labels(Service.name, "on_org", "ok")._value.get() == 25
    assert EVENTS_HANDLED.labels(Service.name, "on_org", "duplicate")._value.get() == 5


def test_an_item_that_fails_in_a_batch_is_retried_or_dead_lettered_alone(start, parvis_env, inbox_of):
    envs = [build_envelope("agenda.organization_upserted", ORG, "agenda") for _ in range(6)]
    flaky, refused = envs[1]["event_id"], envs[4]["event_id"]
    tries = {flaky: 0}

    def behaviour(n, items):
        failed = {}
        for i, (_, envelope) in enumerate(items):
            if envelope.event_id == flaky:
                tries[flaky] += 1
                if tries[flaky] == 1:
                    failed[i] = RuntimeError("database hiccup")
            elif envelope.event_id == refused:
                failed[i] = BadInput("Organisation inconnue", "id")
        return failed

    Service, batches = make_batch_service(behaviour)
    start(Service)
    for env in envs:
        publish(parvis_env["amqp_url"], env)
    [row] = wait_until(lambda: dead_letters_of(parvis_env["amqp_url"], Service.name), 10, 0.1, "a dead letter")
    assert row["event_id"] == refused and row["attempts"] == 1 and "BadInput" in row["error"]
    wait_until(lambda: tries[flaky] == 2, 10, 0.05, "the failed item's retry")
    eventlet.sleep(0.5)
    counts = {e["event_id"]: handled(batches).count(e["event_id"]) for e in envs}
    assert counts == {**{e["event_id"]: 1 for e in envs}, flaky: 2}, "only the failed item ran again"
    inbox = inbox_of(Service)
    assert {d["_id"].split(":", 1)[1] for d in inbox.find({"state": "done"})} == \
        {e["event_id"] for e in envs} - {refused}
    assert inbox.find_one({"_id": f"on_org:{refused}"}) is None, "a refused event's claim released"


def test_a_batch_that_raises_is_retried_item_by_item_after_its_delay(start, parvis_env):
    def behaviour(n, items):
        if n == 1:
            raise RuntimeError("database away")

    Service, batches = make_batch_service(behaviour)
    start(Service)
    envs = [build_envelope("agenda.organization_upserted", ORG, "agenda") for _ in range(3)]
    for env in envs:
        publish(parvis_env["amqp_url"], env)
    # (no batch yet at the first looks: the first one is only known once the service took it)
    wait_until(lambda: batches and len(handled(batches)) >= len(batches[0]) + 3, 10, 0.05,
               "the failed batch's items again")
    eventlet.sleep(0.5)
    first = set(batches[0])
    again = handled(batches[1:])
    assert first <= set(again) and len(again) == 3 and set(again) == {e["event_id"] for e in envs}
    assert not dead_letters_of(parvis_env["amqp_url"], Service.name)
