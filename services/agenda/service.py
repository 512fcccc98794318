"""Agenda service entrypoints: thin; rules in domain.py, storage in store.py."""
from __future__ import annotations

from nameko.rpc import rpc

from contracts import agenda as c
from services.agenda import domain
from services.agenda.store import AgendaStore
from services.common.events import Events
from services.common.mongo import Mongo
from services.common.rpc import contract
from services.common.service import ServiceBase


class AgendaService(ServiceBase):
    name = "agenda"
    store: AgendaStore = Mongo(AgendaStore)
    events = Events()

    @rpc
    @contract(c.IMPORT_REFERENCE_DATA)
    def import_reference_data(self, data: c.ReferenceData) -> c.ImportReport:
        self.caller.require({"agent", "operator"})
        created = updated = unchanged = 0
        for org in data.organizations:
            existing = self.store.get_organization(org.id)
            if not domain.organization_changed(existing, org):
                unchanged += 1
                continue
            event = self.events.build(c.OrganizationUpserted.event_type, org.model_dump())
            self.store.save_organization(org.model_dump(), event)
            if existing is None:
                created += 1
            else:
                updated += 1
        return c.ImportReport(
            communes=self.store.upsert_reference("communes", [x.model_dump() for x in data.communes]),
            organizations_created=created,
            organizations_updated=updated,
            organizations_unchanged=unchanged,
            categories=self.store.upsert_reference("categories", [x.model_dump() for x in data.categories]),
            themes=self.store.upsert_reference("themes", [x.model_dump() for x in data.themes]),
        )

    @rpc
    @contract(c.LIST_COMMUNES)
    def list_communes(self, _req) -> list[dict]:
        return self.store.list_reference("communes")

    @rpc
    @contract(c.LIST_ORGANIZATIONS)
    def list_organizations(self, req: c.ListOrganizations) -> list[dict]:
        return self.store.list_organizations(req.kind)

    @rpc
    @contract(c.LIST_CATEGORIES)
    def list_categories(self, _req) -> list[dict]:
        return self.store.list_reference("categories")

    @rpc
    @contract(c.LIST_THEMES)
    def list_themes(self, _req) -> list[dict]:
        return self.store.list_reference("themes")
