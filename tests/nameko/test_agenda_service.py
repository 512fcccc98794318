"""The agenda service's reference-data import with nameko's worker_factory, on the real database."""
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
from services.common.mongo import OUTBOX, OUTBOX_COUNT, mongo_client
from services.common.rpc import CallerView


@pytest.fixture
def store(parvis_env):
    client = mongo_client(parvis_env["mongo_url"])
    client.drop_database("parvis_agenda_wf")
    repo = AgendaStore(client["parvis_agenda_wf"])
    repo.ensure_indexes()
    yield repo
    client.drop_database("parvis_agenda_wf")
    client.close()


def make_worker(store, role="operator"):
    ctx = Mock(data={"correlation_id": "corr-42"})
    return worker_factory(AgendaService, store=store, events=EventBuilder("agenda", ctx),
                          caller=CallerView(Caller(role=role)))


def test_import_writes_each_organisation_with_its_event_in_one_document(store):
    service = make_worker(store)
    report = service.import_reference_data(**demo_data())
    assert report["organizations_created"] == 43 and report["communes"] == 36
    doc = store.db.organizations.find_one({"_id": "org-commune-labege"})
    assert doc["name"] == "Mairie de Labège" and doc[OUTBOX_COUNT] == 1
    [envelope] = doc[OUTBOX].values()
    parsed, data = parse_envelope(envelope)
    assert parsed.correlation_id == "corr-42" and data.id == "org-commune-labege"


def test_import_is_idempotent_and_announces_only_changes(store):
    service = make_worker(store)
    service.import_reference_data(**demo_data())
    data = demo_data()
    data["organizations"][0]["name"] = "Sicoval (communauté d'agglomération)"
    report = service.import_reference_data(**data)
    assert (report["organizations_created"], report["organizations_updated"], report["organizations_unchanged"]) == (0, 1, 42)
    assert store.db.organizations.find_one({"_id": "org-sicoval"})[OUTBOX_COUNT] == 2


def test_import_refuses_bad_input_and_wrong_roles(store):
    data = demo_data()
    data["communes"][0]["slug"] = "Not A Slug"
    with pytest.raises(BadInput) as exc:
        make_worker(store).import_reference_data(**data)
    assert exc.value.field == "communes.0.slug"
    with pytest.raises(Forbidden):
        make_worker(store, role="organizer").import_reference_data(**demo_data())
    assert store.db.organizations.count_documents({}) == 0


def test_agents_search_events_in_states_from_the_database_and_the_public_from_the_read_model(store):
    """Two ways to search: an agent naming moderation states reads every event in them (the database, offset
    cursors); anybody else gets the public's view (the read model, keyset cursors). Filters apply to both."""
    from datetime import datetime, timedelta

    make_worker(store).import_reference_data(**demo_data())
    start = datetime.now() + timedelta(days=3)

    def event(title, commune, later=0):
        # Different starts: events starting together are ordered by their (random) ids.
        begin = start + timedelta(minutes=later)
        return {"title": title, "category": "concert", "location": {"commune": commune},
                "slots": [{"starts_at": begin.isoformat(), "ends_at": (begin + timedelta(hours=2)).isoformat()}]}

    agent = make_worker(store, role="agent")
    draft = agent.create_event(event=event("Fête du village", "labege"), organizer="org-commune-labege")
    other = agent.create_event(event=event("Fête de l'école", "escalquens", later=30),
                               organizer="org-commune-escalquens")
    agent.submit_event(id=other["id"])
    published = agent.create_event(event=event("Concert des fêtes", "labege"), organizer="org-commune-labege")
    agent.moderate_event(id=published["id"], version=published["version"], decision="approve")

    found = agent.search_events(filter={"moderation_states": ["draft", "submitted"], "text": "FETE"}, first=1)
    assert [i["id"] for i in found["items"]] == [draft["id"]] and found["total"] == 2 and found["has_next"]
    rest = agent.search_events(filter={"moderation_states": ["draft", "submitted"], "text": "fete"}, first=5,
                               after=found["end_cursor"])
    assert [i["id"] for i in rest["items"]] == [other["id"]]
    only_labege = agent.search_events(filter={"moderation_states": ["draft"], "communes": ["escalquens"]})
    assert only_labege["total"] == 0
    public = make_worker(store, role="public").search_events(filter={"text": "fêtes", "moderation_states": ["draft"]})
    assert [i["id"] for i in public["items"]] == [published["id"]], "the public sees published events only"
