"""Agenda transitions with nameko's worker_factory on the real database: every transition writes its
contract-valid event into the same document (outbox), and the service re-checks roles and scope."""
from datetime import datetime, timedelta, timezone
from unittest.mock import Mock

import pytest

from contracts import parse_envelope
from contracts.errors import BadInput, Forbidden
from contracts.platform import Caller
from nameko.testing.services import worker_factory
from parvis.seed import demo_data
from services.agenda.service import AgendaService
from services.agenda.store import AgendaStore
from services.common.events import EventBuilder
from services.common.mongo import OUTBOX, mongo_client
from services.common.rpc import CallerView


@pytest.fixture
def store(parvis_env):
    client = mongo_client(parvis_env["mongo_url"])
    client.drop_database("parvis_agenda_ev")
    repo = AgendaStore(client["parvis_agenda_ev"])
    repo.ensure_indexes()
    worker(repo, "operator").import_reference_data(**demo_data())
    yield repo
    client.drop_database("parvis_agenda_ev")
    client.close()


def worker(store, role, org=None, subject="tester"):
    ctx = Mock(data={"correlation_id": "corr-agenda"})
    return worker_factory(AgendaService, store=store, events=EventBuilder("agenda", ctx),
                          caller=CallerView(Caller(role=role, org=org, subject=subject)))


def envelopes(store, event_id):
    doc = store.db.events.find_one({"_id": event_id})
    return sorted((parse_envelope(env) for env in (doc.get(OUTBOX) or {}).values()), key=lambda p: p[0].occurred_at)


def draft(**over):
    start = (datetime.now(timezone.utc) + timedelta(days=20)).replace(tzinfo=None, microsecond=0)
    event = {"title": "Fête locale", "slots": [{"starts_at": start, "ends_at": start + timedelta(hours=3)}],
             "location": {"commune": "labege"}, "category": "fete-locale", **over}
    return {"event": event}


def test_each_transition_writes_its_event_in_the_same_document(store):
    org = worker(store, "organizer", org="org-commune-labege")
    eid = org.create_event(**draft())["id"]
    org.submit_event(id=eid)
    worker(store, "agent").moderate_event(id=eid, version=store.get_event(eid)["version"], decision="approve")
    worker(store, "agent").set_event_status(id=eid, status="cancelled", reason="Alerte météo")
    org.withdraw_event(id=eid)
    parsed = envelopes(store, eid)
    assert [e.type for e, _ in parsed] == ["agenda.event_submitted", "agenda.event_published",
                                           "agenda.event_cancelled", "agenda.event_withdrawn"]
    published = parsed[1][1]
    assert published.url == f"/agenda/events/{eid}" and published.organizer == "org-commune-labege"
    assert published.commune == "labege" and published.category == "fete-locale"
    assert parsed[2][1].reason == "Alerte météo" and all(e.correlation_id == "corr-agenda" for e, _ in parsed)


def test_rejection_carries_the_reason_and_revisions_wait_for_an_agent(store):
    org = worker(store, "organizer", org="org-commune-labege")
    agent = worker(store, "agent")
    eid = org.create_event(**draft())["id"]
    org.submit_event(id=eid)
    with pytest.raises(BadInput):
        agent.moderate_event(id=eid, version=store.get_event(eid)["version"], decision="reject")
    agent.moderate_event(id=eid, version=store.get_event(eid)["version"], decision="reject", reason="Date erronée")
    org.submit_event(id=eid)
    agent.moderate_event(id=eid, version=store.get_event(eid)["version"], decision="approve")
    revised = org.update_event(id=eid, **draft(title="Fête locale (nouveau programme)"))
    assert revised["title"] == "Fête locale" and revised["pending_revision"]["title"].endswith("programme)")
    assert agent.moderation_queue()["counts"] == {"submitted": 0, "revisions": 1, "total": 1}
    agent.moderate_event(id=eid, version=store.get_event(eid)["version"], decision="approve")
    types = [(e.type, getattr(d, "revision", None)) for e, d in envelopes(store, eid)]
    assert types == [("agenda.event_submitted", False), ("agenda.event_rejected", False),
                     ("agenda.event_submitted", False), ("agenda.event_published", False),
                     ("agenda.event_submitted", True), ("agenda.event_published", True)]
    assert envelopes(store, eid)[1][1].reason == "Date erronée"
    assert worker(store, "public").get_event(id=eid)["title"] == "Fête locale (nouveau programme)"


def test_scope_is_checked_again_in_the_service(store):
    eid = worker(store, "organizer", org="org-commune-labege").create_event(**draft())["id"]
    with pytest.raises(Forbidden):
        worker(store, "organizer", org="org-commune-escalquens").submit_event(id=eid)
    with pytest.raises(Forbidden):
        worker(store, "citizen").create_event(**draft())
    with pytest.raises(Forbidden):
        worker(store, "organizer", org="org-commune-labege").create_event(organizer="org-sicoval", **draft())
